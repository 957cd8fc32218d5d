"""The reviewer pages: who may see and do what, the forms, and what each page shows."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask

from app import review
from services.models import utcnow
from tests.app.helpers import csrf_token as page_csrf
from tests.review.conftest import Factory


@pytest.fixture
def world(make: Factory) -> dict[str, int]:
    """An assessment with one session of op (3 captures) and one of op2 (1 capture)."""
    a = make.assessment("Bridge survey")
    s = make.session(a, "north pier", "op")
    s2 = make.session(a, "south pier", "op2")
    ids = make.captures(s, 3)
    other = make.captures(s2, 1)
    return {"assessment": a, "session": s, "session2": s2, "capture": ids[0], "other": other[0]}


def test_every_role_sees_the_pages_of_what_it_may_see(as_user, world) -> None:  # noqa: ANN001
    s, c = world["session"], world["capture"]
    for who in ["op", "rev", "adm"]:
        client = as_user(who)
        for path, text in [
            ("/review/", "Bridge survey"),
            (f"/review/assessments/{world['assessment']}", "north pier"),
            (f"/review/sessions/{s}", "IMG_00001.jpg"),
            (f"/review/captures/{c}", "IMG_00001.jpg"),
        ]:
            r = client.get(path)
            assert r.status_code == 200, (who, path)
            assert text in r.get_data(as_text=True), (who, path)


def test_anonymous_visitors_are_sent_to_the_login_page(app: Flask, world) -> None:  # noqa: ANN001
    client = app.test_client()
    for path in ["/review/", f"/review/sessions/{world['session']}"]:
        r = client.get(path)
        assert r.status_code == 302
        assert r.headers["Location"].startswith("/auth/login")


def test_an_operator_sees_only_its_own_sessions(as_user, world) -> None:  # noqa: ANN001
    client = as_user("op")
    page = client.get(f"/review/assessments/{world['assessment']}").get_data(as_text=True)
    assert "north pier" in page and "south pier" not in page
    for path in [
        f"/review/sessions/{world['session2']}",
        f"/review/sessions/{world['session2']}/since?after_id=0",
        f"/review/captures/{world['other']}",
    ]:
        assert client.get(path).status_code == 404, path
    # Reviewers see both sessions.
    page = as_user("rev").get(f"/review/assessments/{world['assessment']}").get_data(as_text=True)
    assert "north pier" in page and "south pier" in page


def test_an_operator_cannot_review(as_user, make: Factory, world) -> None:  # noqa: ANN001
    client = as_user("op")
    path = f"/review/captures/{world['capture']}"
    page = client.get(path).get_data(as_text=True)
    assert 'id="review-form"' not in page
    token = page_csrf(client, path)
    r = client.post(path + "/review", data={"csrf_token": token, "decision": "approve"})
    assert r.status_code == 403
    assert make.get(world["capture"]).review_status == "pending"


def test_a_reviewer_cannot_create_assessments_or_sessions(as_user, make: Factory, world) -> None:  # noqa: ANN001
    client = as_user("rev")
    index = client.get("/review/").get_data(as_text=True)
    assert "New assessment" not in index
    apage = client.get(f"/review/assessments/{world['assessment']}").get_data(as_text=True)
    assert "New capture session" not in apage
    token = page_csrf(client, f"/review/captures/{world['capture']}")
    r = client.post("/review/assessments", data={"csrf_token": token, "title": "Nope"})
    assert r.status_code == 403
    r = client.post(
        f"/review/assessments/{world['assessment']}/sessions",
        data={"csrf_token": token, "label": "nope"},
    )
    assert r.status_code == 403
    assert "Nope" not in client.get("/review/").get_data(as_text=True)


def test_an_operator_creates_an_assessment_then_a_session_for_itself(as_user, users) -> None:  # noqa: ANN001
    client = as_user("op")
    token = page_csrf(client, "/review/")
    r = client.post(
        "/review/assessments",
        data={"csrf_token": token, "title": "  Dam inspection ", "description": "Spillway"},
    )
    assert r.status_code == 303
    apath = r.headers["Location"]
    assert re.fullmatch(r"/review/assessments/\d+", apath)
    page = client.get(apath).get_data(as_text=True)
    assert "Dam inspection" in page and "Spillway" in page
    assert 'name="operator_id"' not in page  # only admins choose the operator
    r = client.post(apath + "/sessions", data={"csrf_token": token, "label": "Gate 3"})
    assert r.status_code == 303
    session_id = int(r.headers["Location"].rsplit("/", 1)[1])
    api = client.get(f"/api/sessions/{session_id}").json
    assert api["label"] == "Gate 3" and api["operator_id"] == users["op"]


def test_an_admin_assigns_a_new_session_to_an_operator(as_user, users, world) -> None:  # noqa: ANN001
    client = as_user("adm")
    apath = f"/review/assessments/{world['assessment']}"
    page = client.get(apath).get_data(as_text=True)
    assert f'<option value="{users["op2"]}">op2</option>' in page
    token = page_csrf(client, apath)
    r = client.post(
        apath + "/sessions",
        data={"csrf_token": token, "label": "east", "operator_id": str(users["op2"])},
    )
    assert r.status_code == 303
    session_id = int(r.headers["Location"].rsplit("/", 1)[1])
    assert client.get(f"/api/sessions/{session_id}").json["operator_id"] == users["op2"]
    # A reviewer's id is not an operator choice.
    r = client.post(
        apath + "/sessions",
        data={"csrf_token": token, "label": "x", "operator_id": str(users["rev"])},
    )
    assert r.status_code == 400
    assert "Not a valid choice" in r.get_data(as_text=True)


@pytest.mark.parametrize(
    "who,path,data",
    [
        ("op", "/review/assessments", {"title": "No token"}),
        ("op", "/review/assessments/{assessment}/sessions", {"label": "No token"}),
        ("rev", "/review/captures/{capture}/review", {"decision": "approve", "note": "x"}),
    ],
)
def test_forms_without_a_csrf_token_are_refused(as_user, make, world, who, path, data) -> None:  # noqa: ANN001
    client = as_user(who)
    before = client.get("/review/").get_data(as_text=True)
    r = client.post(path.format(**world), data=data)
    assert r.status_code == 400
    assert "CSRF" in r.get_data(as_text=True)
    r = client.post(path.format(**world), data={**data, "csrf_token": "forged"})
    assert r.status_code == 400
    assert client.get("/review/").get_data(as_text=True).count("No token") == 0
    assert before.count("<tr>") == client.get("/review/").get_data(as_text=True).count("<tr>")
    assert make.get(world["capture"]).review_status == "pending"


def test_an_empty_title_shows_the_form_again_with_the_error(as_user) -> None:  # noqa: ANN001
    client = as_user("op")
    token = page_csrf(client, "/review/")
    r = client.post("/review/assessments", data={"csrf_token": token, "title": "  "})
    assert r.status_code == 400
    assert "This field is required." in r.get_data(as_text=True)


def test_a_reviewer_approves_with_a_note_and_lands_on_the_next_pending_capture(
    as_user,  # noqa: ANN001
    make: Factory,
    users,  # noqa: ANN001
    world,  # noqa: ANN001
) -> None:
    client = as_user("rev")
    first = world["capture"]
    path = f"/review/captures/{first}"
    token = page_csrf(client, path)
    r = client.post(
        path + "/review", data={"csrf_token": token, "decision": "approve", "note": "sharp"}
    )
    assert r.status_code == 303
    assert r.headers["Location"] == f"/review/captures/{first + 1}"
    api = client.get(f"/api/captures/{first}").json
    assert api["review_status"] == "approved"
    assert api["reviewer_note"] == "sharp"
    assert api["reviewed_by_id"] == users["rev"]
    page = client.get(f"/review/captures/{first + 1}").get_data(as_text=True)
    assert f"Approved capture {first}." in page
    # The third is rejected, then the wrap-around finds nothing but the second, then nothing.
    r = client.post(
        f"/review/captures/{first + 2}/review",
        data={"csrf_token": token, "decision": "reject", "note": "blurred"},
    )
    assert r.headers["Location"] == f"/review/captures/{first + 1}"
    r = client.post(
        f"/review/captures/{first + 1}/review", data={"csrf_token": token, "decision": "approve"}
    )
    assert r.headers["Location"] == f"/review/captures/{first + 1}"
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "Nothing left to review in this session." in page
    assert make.get(first + 2).review_status == "rejected"
    assert make.get(first + 2).reviewer_note == "blurred"


def test_an_unknown_decision_is_refused(as_user, make: Factory, world) -> None:  # noqa: ANN001
    client = as_user("adm")
    path = f"/review/captures/{world['capture']}"
    token = page_csrf(client, path)
    r = client.post(path + "/review", data={"csrf_token": token, "decision": "maybe"})
    assert r.status_code == 400
    assert make.get(world["capture"]).review_status == "pending"


def test_the_start_page_counts_sessions_captures_and_pending_reviews(
    as_user,  # noqa: ANN001
    make: Factory,
) -> None:
    a = make.assessment("Counted")
    s1 = make.session(a, "one", "op")
    s2 = make.session(a, "two", "op2")
    make.captures(s1, 4)
    make.captures(s1, 2, review_status="approved")
    make.captures(s2, 3)
    make.session(make.assessment("Empty one"), "nothing yet")
    late = utcnow() + timedelta(days=1)
    make.captures(s2, 1, created_at=late)

    def row(page: str, title: str) -> list[str]:
        match = re.search(rf"{title}</a>.*?</tr>", page, re.S)
        assert match, title
        return re.findall(r'class="num">(?:<span[^>]*>)?([\d,]+)', match.group(0))

    page = as_user("rev").get("/review/").get_data(as_text=True)
    assert row(page, "Counted") == ["2", "10", "8"]
    assert late.strftime("%Y-%m-%d %H:%M:%S UTC") in page
    assert row(page, "Empty one") == ["1", "0", "0"]
    # The operator counts only what it may see: its own session.
    page = as_user("op").get("/review/").get_data(as_text=True)
    assert row(page, "Counted") == ["1", "6", "4"]


def test_the_assessment_page_counts_per_session(as_user, make: Factory) -> None:  # noqa: ANN001
    a = make.assessment("Per session")
    s = make.session(a, "with problems", None)
    make.captures(s, 2)
    make.captures(s, 1, status="rejected", reject_reason="not an image", thumbnail_path=None)
    page = as_user("rev").get(f"/review/assessments/{a}").get_data(as_text=True)
    cells = re.findall(r'class="num">(?:<span[^>]*>)?([\d,]+)', page)
    assert cells == ["3", "3", "1"]
    assert "any operator" in page


def test_the_gallery_filters_sorts_and_lazy_loads(as_user, make: Factory) -> None:  # noqa: ANN001
    a = make.assessment()
    s = make.session(a)
    manual = make.captures(s, 3)
    timer = make.captures(s, 2, capture_trigger="timer")
    bad = make.captures(s, 1, status="rejected", thumbnail_path=None, reject_reason="broken")
    client = as_user("rev")

    def ids(query: str) -> list[int]:
        page = client.get(f"/review/sessions/{s}?{query}").get_data(as_text=True)
        return [int(i) for i in re.findall(r'data-capture-id="(\d+)"', page)]

    everything = manual + timer + bad
    assert ids("") == everything[::-1]
    assert ids("order=asc") == everything
    assert ids("trigger=timer") == timer[::-1]
    assert ids("status=rejected") == bad
    assert ids("trigger=timer&review_status=approved") == []
    page = client.get(f"/review/sessions/{s}").get_data(as_text=True)
    imgs = re.findall(r"<img [^>]*>", page)
    assert len(imgs) == 5 and all('loading="lazy"' in i for i in imgs)
    assert "Upload rejected" in page  # the card without a thumbnail
    assert '<option value="timer">timer</option>' in page  # filter choices from the data
    page = client.get(f"/review/sessions/{s}?trigger=timer").get_data(as_text=True)
    assert "2 matching" in page


def test_keyset_pages_visit_every_capture_once_in_both_directions(
    as_user,  # noqa: ANN001
    make: Factory,
) -> None:
    s = make.session(make.assessment())
    same_time = utcnow() - timedelta(minutes=5)
    created = make.captures(s, 7) + make.captures(s, 6, created_at=same_time)
    client = as_user("rev")
    for order in ["desc", "asc"]:
        seen: list[int] = []
        pages: list[str] = []
        url = f"/review/sessions/{s}?order={order}&per_page=4"
        while url:
            page = client.get(url).get_data(as_text=True).replace("&amp;", "&")
            pages.append(url)
            seen += [int(i) for i in re.findall(r'data-capture-id="(\d+)"', page)]
            nxt = re.search(r'rel="next" href="([^"]+)"', page)
            url = nxt.group(1) if nxt else ""
        assert sorted(seen) == sorted(created) and len(seen) == len(created), order
        assert len(pages) == 4
        # Walking back from the last page returns to the first.
        back: list[int] = []
        url = pages[-1]
        while url:
            page = client.get(url).get_data(as_text=True).replace("&amp;", "&")
            back = [int(i) for i in re.findall(r'data-capture-id="(\d+)"', page)] + back
            prev = re.search(r'rel="prev" href="([^"]+)"', page)
            url = prev.group(1) if prev else ""
        assert back == seen, order


@pytest.mark.parametrize(
    "query",
    ["order=sideways", "per_page=0", "per_page=201", "after=abc", "after=%2B5", "after={other}"],
)
def test_bad_gallery_parameters_are_a_400(as_user, world, query) -> None:  # noqa: ANN001
    r = as_user("rev").get(f"/review/sessions/{world['session']}?{query.format(**world)}")
    assert r.status_code == 400


def test_since_returns_only_new_matching_cards_newest_first(as_user, make: Factory) -> None:  # noqa: ANN001
    s = make.session(make.assessment())
    old = make.captures(s, 2)
    client = as_user("rev")
    data = client.get(f"/review/sessions/{s}/since?after_id={old[-1]}").json
    assert data == {"last_id": old[-1], "count": 0, "more": False, "html": "\n", "open": True}
    new = make.captures(s, 2) + make.captures(s, 1, capture_trigger="timer")
    data = client.get(f"/review/sessions/{s}/since?after_id={old[-1]}").json
    assert data["count"] == 3 and data["last_id"] == new[-1]
    assert [int(i) for i in re.findall(r'data-capture-id="(\d+)"', data["html"])] == new[::-1]
    data = client.get(f"/review/sessions/{s}/since?after_id={old[-1]}&trigger=timer").json
    assert data["count"] == 1 and data["last_id"] == new[-1]
    # Non-matching arrivals still move last_id on, so the next poll starts after them.
    later = make.captures(s, 2)
    data = client.get(f"/review/sessions/{s}/since?after_id={new[-1]}&trigger=timer").json
    assert data["count"] == 0 and data["last_id"] == later[-1]


def test_a_poll_finds_a_capture_committed_late_with_an_earlier_time(
    as_user,  # noqa: ANN001
    make: Factory,
) -> None:
    """Ids and created_at can disagree (created before a slower commit): ids decide."""
    s = make.session(make.assessment())
    (seen,) = make.captures(s, 1, created_at=utcnow())
    (late,) = make.captures(s, 1, created_at=utcnow() - timedelta(minutes=2))
    data = as_user("rev").get(f"/review/sessions/{s}/since?after_id={seen}").json
    assert data["count"] == 1 and data["last_id"] == late


def test_a_live_session_gallery_polls_and_a_closed_one_does_not(as_user, make: Factory) -> None:  # noqa: ANN001
    s = make.session(make.assessment())
    ids = make.captures(s, 2)
    client = as_user("rev")
    page = client.get(f"/review/sessions/{s}").get_data(as_text=True)
    assert 'data-poll="on"' in page and 'data-mode="prepend"' in page
    assert f'data-last-id="{ids[-1]}"' in page
    assert '<script type="module" src="/static/dist/assets/review-' in page  # frontend/review.js
    page = client.get(f"/review/sessions/{s}?order=asc").get_data(as_text=True)
    assert 'data-mode="notice"' in page
    op = as_user("op")
    csrf = {"X-CSRFToken": page_csrf(op, "/review/")}
    assert op.patch(f"/api/sessions/{s}", json={"ended": True}, headers=csrf).status_code == 200
    assert 'data-poll="off"' in client.get(f"/review/sessions/{s}").get_data(as_text=True)


def test_the_capture_page_shows_upload_facts_settings_and_exif(
    as_user, make: Factory, users
) -> None:  # noqa: ANN001
    s = make.session(make.assessment())
    first, dup = make.captures(s, 2)
    with make.db() as db:
        from services.models import Capture

        c = db.get(Capture, dup)
        c.status = "duplicate"
        c.duplicate_of_id = first
        c.camera_settings = {"zoom": 2.5, "torch": False, "resolution": {"w": 1920, "h": 1080}}
        c.exif = {"model": "Cam 1", "make": "Fake", "orientation": 6, "gps": True, "extra": 72}
        c.bytes = 2_500_000
        db.commit()
        sha = c.sha256
    page = as_user("rev").get(f"/review/captures/{dup}").get_data(as_text=True)
    for text in [
        "2.4 MiB (2,500,000 bytes)",
        sha,
        "<td>op</td>",  # who uploaded
        "1.50 s",  # created_at - upload_started_at
        '<th scope="row">zoom</th><td>2.5</td>',
        '<th scope="row">torch</th><td>false</td>',
        "{&#34;h&#34;: 1080, &#34;w&#34;: 1920}",
        "Other EXIF fields (1)",
        "6 (rotated 90° clockwise; the preview is upright)",
        "recorded (kept in the original only)",
        f'href="/review/captures/{first}">capture #{first}</a>',
        f'href="/captures/{dup}/original" download',
        f'src="/captures/{dup}/thumbnail"',
        f'id="prev-capture" rel="prev" href="/review/captures/{first}"',
    ]:
        assert text in page, text
    assert page.index(">Camera make</th>") < page.index(">Camera model</th>")
    assert 'id="next-capture"' not in page


def test_a_rejected_upload_shows_its_reason_and_no_image(as_user, make: Factory) -> None:  # noqa: ANN001
    s = make.session(make.assessment())
    (cid,) = make.captures(
        s,
        1,
        status="rejected",
        reject_reason="not a JPEG, PNG or WebP image",
        thumbnail_path=None,
        original_path=None,
        width=None,
        height=None,
    )
    page = as_user("rev").get(f"/review/captures/{cid}").get_data(as_text=True)
    assert "Upload rejected:</strong> not a JPEG, PNG or WebP image" in page
    assert "<img" not in page and "Download original" not in page


def test_counts_above_the_summary_cap_read_as_a_lower_bound(
    as_user,  # noqa: ANN001
    make: Factory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(review.queries, "SUMMARY_CAP", 10)
    s = make.session(make.assessment())
    make.captures(s, 12)
    page = as_user("rev").get(f"/review/sessions/{s}").get_data(as_text=True)
    assert "<strong>10+</strong> captures" in page
    assert "Counts cover the newest 10 captures." in page
