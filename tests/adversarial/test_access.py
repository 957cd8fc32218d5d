"""No one gets in: another user's upload on every verb, cookies sent from another origin, CORS
preflights from unlisted origins, terminated uploads, and no route that serves an upload inline
(every GET route of the application is walked with an HTML upload and a markup filename)."""

from __future__ import annotations

import base64
import json
import re
import secrets
from email.message import Message

import pytest
import requests
from flask import Flask

from tests.adversarial.conftest import (
    ALLOWED_ORIGIN,
    OCTETS,
    Hostile,
    Operator,
    build_request,
    captures_of,
    head_offset,
    login_cookie_session,
    new_cookie_operator,
    nothing_changes,
    raw,
    send_raw,
    stored,
)
from tests.support import images
from tests.support.tus import capture_metadata, encode_metadata

EVIL = "http://evil.example"


def _half_upload(op: Operator) -> str:
    upload_id = op.create(10)
    assert op.tus.patch(f"{op.base}/files/{upload_id}", 0, b"12345").status_code == 204
    return upload_id


# --- another user's upload --------------------------------------------------------------------

VERBS = {
    "head": ("HEAD", {}, b""),
    "patch": ("PATCH", {"Content-Type": OCTETS, "Upload-Offset": "5"}, b"67890"),
    "patch-wrong-offset": ("PATCH", {"Content-Type": OCTETS, "Upload-Offset": "0"}, b"abc"),
    "delete": ("DELETE", {}, b""),
    "get": ("GET", {}, b""),
    "override-delete": ("POST", {"X-HTTP-Method-Override": "DELETE"}, b""),
}


@pytest.mark.parametrize("method,extra,body", VERBS.values(), ids=VERBS.keys())
def test_another_users_upload_is_404_on_every_verb(
    hostile: Hostile, op: Operator, other: Operator, method: str, extra: dict, body: bytes
) -> None:
    upload_id = _half_upload(op)
    with nothing_changes(hostile):
        r = raw(hostile.server.port, method, f"/files/{upload_id}", {**other.auth, **extra}, body)
    assert r.status == 404, r
    assert r.header("Upload-Offset") is None
    assert head_offset(op, upload_id) == 5
    assert stored(hostile, upload_id) == b"12345"


def test_another_users_partial_cannot_be_concatenated_and_their_capture_is_hidden(
    hostile: Hostile, op: Operator, other: Operator
) -> None:
    data = images.jpeg(color=(3, 4, 5))
    url, last = op.tus.upload(data, capture_metadata(op.session_id))
    upload_id = url.rsplit("/", 1)[1]
    assert last.headers["Tuscam-Capture-Status"] == "accepted"
    partial = op.tus.create(3, {}, **{"Upload-Concat": "partial"})
    assert op.tus.patch(partial, 0, b"abc").status_code == 204
    headers = {**other.auth, "Upload-Concat": f"final;{partial}"}
    headers["Upload-Metadata"] = other.metadata()
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "POST", "/files/", headers)
        assert r.status == 404
        api = hostile.server.api(other.token)
        assert api.get(f"/api/uploads/{upload_id}").status_code == 404
        capture_id = last.headers["Tuscam-Capture-Id"]
        assert api.get(f"/api/captures/{capture_id}").status_code == 404
        assert api.get(f"/captures/{capture_id}/original").status_code == 404


def test_a_terminated_upload_is_410_for_its_owner_and_404_for_others(
    hostile: Hostile, op: Operator, other: Operator
) -> None:
    upload_id = _half_upload(op)
    url = f"{op.base}/files/{upload_id}"
    assert op.tus.http.delete(url, timeout=30).status_code == 204
    assert not (hostile.uploads / upload_id).exists()
    patch = {"Content-Type": OCTETS, "Upload-Offset": "5"}
    for method, extra in (("HEAD", {}), ("PATCH", patch), ("GET", {}), ("DELETE", {})):
        with nothing_changes(hostile):
            mine = raw(hostile.server.port, method, f"/files/{upload_id}", {**op.auth, **extra})
            theirs = raw(
                hostile.server.port, method, f"/files/{upload_id}", {**other.auth, **extra}
            )
        assert mine.status == 410, (method, mine)
        assert mine.header("Upload-Offset") is None
        assert theirs.status == 404, (method, theirs)


def test_no_credentials_or_a_bad_token_is_401(hostile: Hostile, op: Operator) -> None:
    upload_id = _half_upload(op)
    for auth in ({}, {"Authorization": "Bearer tcm_not-a-token"}, {"Authorization": "Basic eDp5"}):
        headers = {"Tus-Resumable": "1.0.0", **auth, "Content-Type": OCTETS}
        headers["Upload-Offset"] = "5"
        with nothing_changes(hostile):
            r = raw(hostile.server.port, "PATCH", f"/files/{upload_id}", headers, b"67890")
        assert r.status == 401


# --- cookies from another origin, CORS --------------------------------------------------------


@pytest.fixture(scope="module")
def browser(hostile: Hostile) -> tuple[requests.Session, Operator]:
    return new_cookie_operator(hostile.server)


def _cookie_request(
    hostile: Hostile,
    browser: tuple[requests.Session, Operator],
    method: str,
    path: str,
    origin: str | None,
    **headers: str,
) -> requests.Response:
    session, _op = browser
    hdrs = {"Tus-Resumable": "1.0.0", **headers}
    if origin is not None:
        hdrs["Origin"] = origin
    return session.request(method, hostile.server.url + path, headers=hdrs, timeout=30)


@pytest.mark.parametrize("origin", [EVIL, "null", "http://127.0.0.1.evil.example"])
def test_a_cookie_session_from_another_origin_cannot_create_an_upload(
    hostile: Hostile, browser: tuple[requests.Session, Operator], origin: str
) -> None:
    _s, op = browser
    with nothing_changes(hostile):
        r = _cookie_request(
            hostile,
            browser,
            "POST",
            "/files/",
            origin,
            **{"Upload-Length": "5", "Upload-Metadata": op.metadata()},
        )
    assert r.status_code == 403
    assert r.json()["error"] == "cross-origin"
    assert "Access-Control-Allow-Origin" not in r.headers


@pytest.mark.parametrize("method", ["HEAD", "PATCH", "DELETE", "GET"])
def test_a_cookie_session_from_another_origin_cannot_touch_its_own_upload(
    hostile: Hostile, browser: tuple[requests.Session, Operator], method: str
) -> None:
    _s, op = browser
    upload_id = _half_upload(op)
    with nothing_changes(hostile):
        r = _cookie_request(
            hostile,
            browser,
            method,
            f"/files/{upload_id}",
            EVIL,
            **{"Content-Type": OCTETS, "Upload-Offset": "5"},
        )
    assert r.status_code == 403
    assert head_offset(op, upload_id) == 5


def test_the_same_cookie_from_our_own_or_a_listed_origin_works(
    hostile: Hostile, browser: tuple[requests.Session, Operator]
) -> None:
    _s, op = browser
    headers = {"Upload-Length": "5", "Upload-Metadata": op.metadata()}
    own = _cookie_request(hostile, browser, "POST", "/files/", hostile.server.url, **headers)
    assert own.status_code == 201
    listed = _cookie_request(hostile, browser, "POST", "/files/", ALLOWED_ORIGIN, **headers)
    assert listed.status_code == 201
    assert listed.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert listed.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Tuscam-Capture-Status" in listed.headers["Access-Control-Expose-Headers"]


def test_a_cookie_session_cannot_post_to_the_api_from_another_origin(
    hostile: Hostile, browser: tuple[requests.Session, Operator]
) -> None:
    session, _op = browser
    with nothing_changes(hostile):
        r = session.post(
            hostile.server.url + "/api/assessments",
            json={"title": "csrf"},
            headers={"Origin": EVIL},
            timeout=30,
        )
    assert r.status_code in (400, 403)


@pytest.mark.parametrize("path", ["/files/", "/files/0123456789abcdef0123456789abcdef"])
def test_a_preflight_from_an_unlisted_origin_gets_no_allow_origin(
    hostile: Hostile, path: str
) -> None:
    headers = {
        "Origin": EVIL,
        "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "upload-offset, tus-resumable, content-type",
    }
    r = raw(hostile.server.port, "OPTIONS", path, headers)
    assert r.status == 204
    assert r.header("Access-Control-Allow-Origin") is None
    assert r.header("Access-Control-Allow-Credentials") is None
    assert r.header("Access-Control-Allow-Methods") is None
    listed = raw(hostile.server.port, "OPTIONS", path, {**headers, "Origin": ALLOWED_ORIGIN})
    assert listed.header("Access-Control-Allow-Origin") == ALLOWED_ORIGIN
    assert "PATCH" in listed.header("Access-Control-Allow-Methods")


def test_a_bearer_token_from_another_origin_gets_no_cors_headers(
    hostile: Hostile, op: Operator
) -> None:
    upload_id = _half_upload(op)
    r = raw(hostile.server.port, "HEAD", f"/files/{upload_id}", {**op.auth, "Origin": EVIL})
    assert r.status == 200  # a token is never sent implicitly: not a CSRF vector
    assert r.header("Access-Control-Allow-Origin") is None


# --- serving uploads --------------------------------------------------------------------------

MARKER = "name-" + secrets.token_hex(4)  # in filenames
BYTES_MARKER = "bytes-" + secrets.token_hex(4)  # in uploaded bytes
HTML = f"<!doctype html><html><body><script>alert('{BYTES_MARKER}')</script></body></html>"
HTML = HTML.encode()
MARKUP_NAME = f'<script>alert("{MARKER}")</script>".jpg'


def _jpeg_with_comment() -> bytes:
    """An accepted JPEG whose COM segment holds HTML (survives in the original only)."""
    data = images.jpeg(color=(9, 8, 7))
    comment = HTML
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return data[:2] + segment + data[2:]


def _assert_attachment(response: requests.Response) -> None:
    assert response.headers["Content-Disposition"].startswith("attachment"), response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert not response.headers["Content-Type"].startswith(("text/", "image/svg"))


def test_downloads_of_an_html_upload_are_sandboxed_attachments(
    hostile: Hostile, op: Operator
) -> None:
    url, last = op.tus.upload(HTML, capture_metadata(op.session_id, "page.html"))
    assert last.headers["Tuscam-Capture-Status"] == "rejected"
    download = op.tus.http.get(url, timeout=30)
    assert download.content == HTML
    assert download.headers["Content-Type"] == "application/octet-stream"
    _assert_attachment(download)
    original = hostile.server.api(op.token).get(
        f"/captures/{last.headers['Tuscam-Capture-Id']}/original"
    )
    assert original.content == HTML
    assert original.headers["Content-Type"] == "application/octet-stream"
    _assert_attachment(original)


def test_no_route_serves_an_upload_inline_and_no_page_shows_a_filename_unescaped(
    hostile: Hostile, op: Operator, app: Flask
) -> None:
    """Walk every GET route of the app (and the tus download URL) with ids of an HTML upload,
    an accepted JPEG holding HTML in a comment, and a markup filename: whatever carries the
    uploaded bytes is a sandboxed attachment, and no HTML page holds the filename unescaped."""
    html_url, html_last = op.tus.upload(HTML, capture_metadata(op.session_id, MARKUP_NAME))
    jpeg_url, jpeg_last = op.tus.upload(
        _jpeg_with_comment(), capture_metadata(op.session_id, MARKUP_NAME)
    )
    assert jpeg_last.headers["Tuscam-Capture-Status"] == "accepted"
    admin = f"admin-{secrets.token_hex(4)}"
    hostile.server.create_user(admin, "admin")
    api = hostile.server.api(hostile.server.create_token(admin))
    cases = [
        (html_url, html_last.headers["Tuscam-Capture-Id"]),
        (jpeg_url, jpeg_last.headers["Tuscam-Capture-Id"]),
    ]
    served_bytes = set()
    pages = 0
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or rule.endpoint == "static":
            continue
        for upload_url, capture_id in cases:
            values = {
                "upload_id": upload_url.rsplit("/", 1)[1],
                "capture_id": int(capture_id),
                "session_id": op.session_id,
                "assessment_id": op.assessment_id,
            }
            if not set(rule.arguments) <= set(values):
                pytest.fail(f"route {rule.rule} takes arguments this walk does not know")
            path = rule.build({k: values[k] for k in rule.arguments})[1]
            r = api.get(path, headers={"Tus-Resumable": "1.0.0", "Accept": "text/html"})
            if BYTES_MARKER.encode() in r.content:  # the uploaded bytes themselves
                _assert_attachment(r)
                served_bytes.add(rule.endpoint)
            if r.headers.get("Content-Type", "").startswith("text/html"):
                pages += MARKER in r.text
                assert f'<script>alert("{MARKER}")' not in r.text, rule.rule
            elif MARKER in r.text:  # JSON: never rendered as a page
                assert r.headers["Content-Type"].startswith("application/json"), rule.rule
    for upload_url, _capture_id in cases:  # the tus server is WSGI in front of Flask's routes
        r = api.get(upload_url, headers={"Accept": "text/html"})
        assert r.status_code == 200 and BYTES_MARKER.encode() in r.content
        _assert_attachment(r)
        served_bytes.add("tus.upload")
    assert served_bytes == {"tus.upload", "capture_files.original"}
    assert pages >= 3
    thumb = api.get(f"/captures/{jpeg_last.headers['Tuscam-Capture-Id']}/thumbnail")
    assert thumb.status_code == 200 and BYTES_MARKER.encode() not in thumb.content


def test_the_gallery_update_json_escapes_the_filename(hostile: Hostile, op: Operator) -> None:
    data = images.jpeg(color=(1, 99, 7))
    op.tus.upload(data, capture_metadata(op.session_id, MARKUP_NAME))
    r = hostile.server.api(op.token).get(f"/review/sessions/{op.session_id}/since?after_id=0")
    if r.status_code == 403:  # operators may not review: look as an admin
        admin = f"admin-{secrets.token_hex(4)}"
        hostile.server.create_user(admin, "admin")
        r = hostile.server.api(hostile.server.create_token(admin)).get(
            f"/review/sessions/{op.session_id}/since?after_id=0"
        )
    assert r.status_code == 200
    text = json.dumps(r.json())
    assert MARKER in text
    assert f'<script>alert(\\"{MARKER}' not in text and f'<script>alert("{MARKER}' not in text
    assert re.search(r"&lt;script&gt;alert\(&#34;|&lt;script&gt;alert\(&quot;", r.json()["html"])


def test_a_filename_with_a_quote_cannot_break_content_disposition(
    hostile: Hostile, op: Operator
) -> None:
    name = 'evil";filename=x.html;.jpg'
    url, last = op.tus.upload(images.jpeg(color=(5, 5, 5)), capture_metadata(op.session_id, name))
    for r in (
        op.tus.http.get(url, timeout=30),
        hostile.server.api(op.token).get(f"/captures/{last.headers['Tuscam-Capture-Id']}/original"),
    ):
        disposition = r.headers["Content-Disposition"]
        assert disposition.startswith("attachment")
        # One filename parameter only: the quote is escaped (or replaced), never closes it.
        message = Message()
        message["Content-Disposition"] = disposition
        params = message.get_params(header="content-disposition") or []
        assert [key for key, _value in params] == ["attachment", "filename"], disposition
        assert message.get_filename() in (name, name.replace('"', "_")), disposition
    assert captures_of(hostile.server, url.rsplit("/", 1)[1])[0].filename == name


def test_metadata_values_never_become_headers_of_a_download(hostile: Hostile, op: Operator) -> None:
    name = base64.b64encode(b"a.jpg").decode()
    metadata = op.metadata() + f",filename2 {name}"
    url = op.tus.create(1, {}, **{"Upload-Metadata": metadata})
    assert op.tus.patch(url, 0, b"z").status_code == 204
    r = op.tus.http.get(url, timeout=30)
    assert "filename2" not in r.headers and r.content == b"z"


# --- sessions, probing, stale credentials, headers, body sizes (issue 16) ----------------------


def _without(text: str, number: int) -> str:
    return text.replace(str(number), "N")


def test_another_operators_session_id_cannot_be_told_from_a_missing_one(
    hostile: Hostile, op: Operator, other: Operator
) -> None:
    missing = op.session_id + 10_000
    tus = []
    for session_id in (op.session_id, missing):
        metadata = encode_metadata(capture_metadata(session_id, "probe.jpg"))
        with nothing_changes(hostile):
            r = raw(
                hostile.server.port,
                "POST",
                "/files/",
                {**other.auth, "Upload-Length": "5", "Upload-Metadata": metadata},
            )
        tus.append((r.status, _without(r.body.decode(), session_id)))
    assert tus[0] == tus[1] and tus[0][0] == 404, tus
    api = hostile.server.api(other.token)
    for suffix in ("", "/captures"):
        theirs = api.get(f"/api/sessions/{op.session_id}{suffix}")
        absent = api.get(f"/api/sessions/{missing}{suffix}")
        assert theirs.status_code == absent.status_code == 404
        assert _without(theirs.text, op.session_id) == _without(absent.text, missing)


def test_an_operator_cannot_reopen_a_session_an_admin_closed(
    hostile: Hostile, op: Operator
) -> None:
    server = hostile.server
    admin = f"admin-{secrets.token_hex(4)}"
    server.create_user(admin, "admin")
    as_admin, as_op = server.api(server.create_token(admin)), server.api(op.token)
    session = f"/api/sessions/{op.session_id}"
    assert as_admin.patch(session, json={"ended": True}).status_code == 200
    for change in ({"ended": False}, {"label": "mine again"}, {"operator_id": None}):
        r = as_op.patch(session, json=change)
        assert r.status_code == 403, (change, r.text)
    after = as_admin.get(session).json()
    assert after["open"] is False and after["label"] == "session"
    with nothing_changes(hostile):
        r = raw(
            server.port,
            "POST",
            "/files/",
            {**op.auth, "Upload-Length": "5", "Upload-Metadata": op.metadata()},
        )
    assert r.status == 409


def test_a_copied_session_cookie_is_worthless_after_logout(hostile: Hostile) -> None:
    browser, op = new_cookie_operator(hostile.server)
    copy = {"Cookie": f"session={browser.cookies['session']}", "Tus-Resumable": "1.0.0"}
    create = {"Upload-Length": "5", "Upload-Metadata": op.metadata()}
    assert raw(hostile.server.port, "POST", "/files/", {**copy, **create}).status == 201
    start = browser.get(hostile.server.url + "/", timeout=30).text
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', start)
    assert csrf
    r = browser.post(
        hostile.server.url + "/auth/logout",
        data={"csrf_token": csrf.group(1)},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 302
    with nothing_changes(hostile):
        replayed = raw(hostile.server.port, "POST", "/files/", {**copy, **create})
    assert replayed.status == 401
    api = raw(
        hostile.server.port, "GET", "/api/assessments", {**copy, "Accept": "application/json"}
    )
    assert api.status == 401


def test_ten_wrong_passwords_lock_the_username_for_everyone(hostile: Hostile) -> None:
    name = f"guess-{secrets.token_hex(4)}"
    password = hostile.server.create_user(name, "operator")
    for i in range(10):
        with pytest.raises(AssertionError, match="401"):
            login_cookie_session(hostile.server, name, f"guess-{i}")
    with requests.Session() as s:
        page = s.get(hostile.server.url + "/auth/login", timeout=30).text
        csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
        assert csrf
        r = s.post(
            hostile.server.url + "/auth/login",
            data={"username": name, "password": password, "csrf_token": csrf.group(1)},
            allow_redirects=False,
            timeout=30,
        )
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


@pytest.mark.parametrize(
    "method,path,expect_csp",
    [
        ("GET", "/auth/login", True),
        ("GET", "/no-such-page", True),
        ("GET", "/api/assessments", False),
        ("OPTIONS", "/files/", False),
        ("HEAD", "/files/0123456789abcdef0123456789abcdef", False),
        ("GET", "/static/site.css", False),
    ],
)
def test_every_answer_is_nosniff_and_pages_carry_the_policy(
    hostile: Hostile, shared: Operator, method: str, path: str, expect_csp: bool
) -> None:
    headers = {"Tus-Resumable": "1.0.0"}
    if not expect_csp:  # pages are asked for as a browser would, without a token
        headers["Authorization"] = f"Bearer {shared.token}"
    r = raw(hostile.server.port, method, path, headers)
    assert r.header("X-Content-Type-Options") == "nosniff", (path, r.headers)
    assert r.header("Referrer-Policy") == "same-origin"
    csp = r.header("Content-Security-Policy") or ""
    assert ("frame-ancestors 'none'" in csp and "script-src 'self'" in csp) is expect_csp, csp


def test_a_60_mib_api_body_is_refused_before_it_is_read(hostile: Hostile, shared: Operator) -> None:
    head = build_request(
        "POST",
        "/api/assessments",
        {
            "Authorization": f"Bearer {shared.token}",
            "Content-Type": "application/json",
            "Content-Length": str(60 * 1024 * 1024),
        },
    )
    reply = send_raw(hostile.server.port, head + b"{" + b" " * 65535, method="POST")
    assert reply.status == 413
    assert "at most 1048576 bytes" in json.loads(reply.body)["message"]
