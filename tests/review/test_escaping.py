"""Filenames, metadata, notes and titles are user input: every page shows them as text."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient

from app.db import session_factory
from services.models import Capture
from tests.app.helpers import csrf_token as page_csrf
from tests.review.conftest import Factory

SCRIPT = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(2)">'


def test_markup_in_user_input_is_shown_as_text_everywhere(
    as_user: Callable[[str], FlaskClient], make: Factory
) -> None:
    a = make.assessment(f"{SCRIPT} title")
    s = make.session(a, f"{IMG} label")
    (cid,) = make.captures(
        s,
        1,
        filename=f"{SCRIPT}.jpg",
        capture_trigger='"><b>trigger',
        camera_settings={f"<b>key</b>{IMG}": f"{SCRIPT}", "nested": {"x": IMG}},
        exif={"make": SCRIPT, "UserComment": IMG},
        metadata_extra={"note": SCRIPT},
    )
    with session_factory(make.app)() as db:
        capture = db.get(Capture, cid)
        assert capture is not None
        capture.review_status = "rejected"
        capture.reviewer_note = f"{SCRIPT}"
        db.commit()
    op = as_user("op")
    rev = as_user("rev")
    pages = {
        "index": rev.get("/review/").get_data(as_text=True),
        "assessment": rev.get(f"/review/assessments/{a}").get_data(as_text=True),
        "gallery": rev.get(f"/review/sessions/{s}").get_data(as_text=True),
        "filtered": rev.get(
            f"/review/sessions/{s}", query_string={"trigger": '"><b>trigger'}
        ).get_data(as_text=True),
        "capture": rev.get(f"/review/captures/{cid}").get_data(as_text=True),
        "capture as operator": op.get(f"/review/captures/{cid}").get_data(as_text=True),
        "since": rev.get(f"/review/sessions/{s}/since?after_id=0").json["html"],
    }
    for name, html in pages.items():
        for raw in [SCRIPT, IMG, "<b>"]:
            assert raw not in html, (name, raw)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.jpg" in pages["gallery"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; title" in pages["index"]
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt; label" in pages["assessment"]
    capture_page = pages["capture"]
    assert "&lt;b&gt;key&lt;/b&gt;&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in capture_page
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in capture_page  # setting value
    assert "&lt;script&gt;alert(1)&lt;/script&gt;</p>" in pages["capture as operator"]  # note
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.jpg" in pages["since"]
    assert "1 matching" in pages["filtered"]


def test_a_review_note_with_markup_round_trips_as_text(
    as_user: Callable[[str], FlaskClient], make: Factory
) -> None:
    (cid,) = make.captures(make.session(make.assessment()), 1)
    rev = as_user("rev")
    path = f"/review/captures/{cid}"
    token = page_csrf(rev, path)
    r = rev.post(path + "/review", data={"csrf_token": token, "decision": "reject", "note": IMG})
    assert r.status_code == 303
    assert rev.get(f"/api/captures/{cid}").json["reviewer_note"] == IMG
    html = rev.get(path).get_data(as_text=True)
    assert IMG not in html
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;</textarea>" in html
