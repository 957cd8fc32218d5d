"""Hostile tus requests on raw sockets against a real gunicorn: each gets its exact status and
leaves the upload folder, the tree around the data folder and the capture table as they were."""

from __future__ import annotations

import base64
import json
import socket
import time

import pytest

from tests.adversarial.conftest import (
    MAX_UPLOAD,
    OCTETS,
    Hostile,
    Operator,
    build_request,
    chunked,
    head_offset,
    nothing_changes,
    nothing_escapes,
    raw,
    send_raw,
    stored,
)


def b64(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return base64.b64encode(data).decode()


# --- numbers ----------------------------------------------------------------------------------

BAD_NUMBERS = {
    "negative": "-1",
    "plus-sign": "+5",
    "underscore": "5_000",
    "arabic-indic-digit": "\u0665",
    "fullwidth-digit": "\uff15",
    "thirty-digits": "1" * 30,
    "over-int64": "9223372036854775808",
    "empty": "",
    "two-numbers": "5 5",
    "hex": "0x5",
    "exponent": "1e3",
    "decimal": "5.0",
    "list": "5,5",
}


@pytest.mark.parametrize("value", BAD_NUMBERS.values(), ids=BAD_NUMBERS.keys())
def test_post_with_a_malformed_upload_length_is_400_and_creates_nothing(
    hostile: Hostile, shared: Operator, value: str
) -> None:
    headers = {**shared.auth, "Upload-Length": value, "Upload-Metadata": shared.metadata()}
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "POST", "/files/", headers)
    assert r.status == 400, r
    assert json.loads(r.body)["error"] == "invalid-header"


def test_a_negative_upload_length_never_completes_an_upload_early(
    hostile: Hostile, shared: Operator
) -> None:
    headers = {**shared.auth, "Upload-Length": "-1", "Upload-Metadata": shared.metadata()}
    headers["Content-Type"] = OCTETS
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "POST", "/files/", headers, b"abc")
    assert r.status == 400
    assert r.header("Location") is None


def test_whitespace_around_a_number_is_http_ows_and_means_that_number(
    hostile: Hostile, op: Operator
) -> None:
    """' 5' reaches the app as '5' (RFC 9110 strips optional whitespace): the length is 5,
    and a sixth byte is refused."""
    headers = {**op.auth, "Upload-Length": " 5", "Upload-Metadata": op.metadata()}
    r = raw(hostile.server.port, "POST", "/files/", headers)
    assert r.status == 201
    upload_id = r.header("Location").rsplit("/", 1)[1]
    head = op.tus.head(f"{op.base}/files/{upload_id}")
    assert head.headers["Upload-Length"] == "5"
    assert op.tus.patch(f"{op.base}/files/{upload_id}", 0, b"123456").status_code == 413
    assert stored(hostile, upload_id) == b""


@pytest.mark.parametrize(
    "value", [*BAD_NUMBERS.values(), "+0", "0_0"], ids=[*BAD_NUMBERS.keys(), "plus-0", "0_0"]
)
def test_patch_with_a_malformed_upload_offset_is_400_and_stores_nothing(
    hostile: Hostile, op: Operator, value: str
) -> None:
    upload_id = op.create(10)
    headers = {**op.auth, "Content-Type": OCTETS, "Upload-Offset": value}
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "PATCH", f"/files/{upload_id}", headers, b"0123456789")
    assert r.status == 400, r
    assert head_offset(op, upload_id) == 0


def test_patch_without_upload_offset_is_400(hostile: Hostile, op: Operator) -> None:
    upload_id = op.create(10)
    headers = {**op.auth, "Content-Type": OCTETS}
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "PATCH", f"/files/{upload_id}", headers, b"0123456789")
    assert r.status == 400
    assert json.loads(r.body)["error"] == "missing-header"


@pytest.mark.parametrize("value", ["-1", "+3", "3_0", "1" * 30, "abc"])
def test_a_malformed_content_length_is_refused_by_the_server_before_the_app(
    hostile: Hostile, op: Operator, value: str
) -> None:
    upload_id = op.create(10)
    headers = {
        **op.auth,
        "Content-Type": OCTETS,
        "Upload-Offset": "0",
        "Content-Length": value,
    }
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "PATCH", f"/files/{upload_id}", headers, b"abc")
    assert r.status == 400
    assert head_offset(op, upload_id) == 0


@pytest.mark.parametrize("value", ["2", "0", "true", "1,1", "-1"])
def test_upload_defer_length_other_than_1_is_400(
    hostile: Hostile, shared: Operator, value: str
) -> None:
    headers = {**shared.auth, "Upload-Defer-Length": value, "Upload-Metadata": shared.metadata()}
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "POST", "/files/", headers)
    assert r.status == 400


def test_both_upload_length_and_defer_length_is_400(hostile: Hostile, shared: Operator) -> None:
    headers = {
        **shared.auth,
        "Upload-Length": "5",
        "Upload-Defer-Length": "1",
        "Upload-Metadata": shared.metadata(),
    }
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "POST", "/files/", headers)
    assert r.status == 400
    assert json.loads(r.body)["error"] == "conflicting-headers"


def test_repeated_upload_length_headers_are_400(hostile: Hostile, shared: Operator) -> None:
    headers = [*shared.auth.items(), ("Upload-Length", "5"), ("Upload-Length", "6")]
    headers.append(("Upload-Metadata", shared.metadata()))
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "POST", "/files/", headers)
    assert r.status == 400


def test_upload_length_over_the_maximum_is_413(hostile: Hostile, shared: Operator) -> None:
    headers = {
        **shared.auth,
        "Upload-Length": str(MAX_UPLOAD + 1),
        "Upload-Metadata": shared.metadata(),
    }
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "POST", "/files/", headers)
    assert r.status == 413


# --- metadata ---------------------------------------------------------------------------------

BAD_METADATA = {
    "not-base64": "filename !!!",
    "bad-padding": "filename a",
    "duplicate-key": "filename {f},filename {f}",
    "empty-key": ",filename {f}",
    "key-with-latin1": "fil\u00e9name {f}",
    "key-with-quote-only-comma": "filename {f},,session_id {s}",
    "base64-with-space-inside": "filename cGhv dG8=",
}


@pytest.mark.parametrize("template", BAD_METADATA.values(), ids=BAD_METADATA.keys())
def test_malformed_upload_metadata_is_400_invalid_metadata(
    hostile: Hostile, shared: Operator, template: str
) -> None:
    value = template.format(f=b64("photo.jpg"), s=b64(str(shared.session_id)))
    value = value.encode("latin-1")  # on the wire as one latin-1 byte per character
    headers = {**shared.auth, "Upload-Length": "5", "Upload-Metadata": value}
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "POST", "/files/", headers)
    assert r.status == 400, r
    assert json.loads(r.body)["error"] == "invalid-metadata"


def test_metadata_over_the_app_limit_in_repeated_headers_is_400(
    hostile: Hostile, shared: Operator
) -> None:
    """gunicorn caps one header at 8190 bytes; three headers joined pass 16 KiB, the app's cap."""
    filler = [("Upload-Metadata", f"pad{i} {'A' * 7000}") for i in range(3)]
    headers = [*shared.auth.items(), ("Upload-Length", "5"), ("Upload-Metadata", shared.metadata())]
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "POST", "/files/", headers + filler)
    assert r.status == 400
    assert "over 16384" in json.loads(r.body)["message"]


def test_one_metadata_header_over_8_kib_is_431_from_gunicorn(
    hostile: Hostile, shared: Operator
) -> None:
    value = shared.metadata(filename="n" * 10_000)
    headers = {**shared.auth, "Upload-Length": "5", "Upload-Metadata": value}
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "POST", "/files/", headers)
    assert r.status == 431


CAPTURE_REFUSALS = {
    "filename-crlf": ({"filename": "a\r\nSet-Cookie: x=1.jpg"}, 400, "control characters"),
    "filename-nul": ({"filename": "a\x00.jpg"}, 400, "control characters"),
    "filename-6000-chars": ({"filename": "n" * 6000}, 400, "at most 255"),
    "no-filename": ({"filename": ""}, 400, "filename is required"),
    "session-plus": ({"session_id": "+1"}, 400, "positive integer"),
    "session-unknown": ({"session_id": "2147483000"}, 404, "does not exist"),
    "settings-not-json": ({"camera_settings": "{nope"}, 400, "JSON object"),
    "settings-array": ({"camera_settings": "[1]"}, 400, "JSON object"),
    "settings-deep": ({"camera_settings": "[" * 3000 + "]" * 3000}, 400, "camera_settings"),
    "settings-nan": ({"camera_settings": '{"a": NaN}'}, 400, "camera_settings"),
    "trigger-markup": ({"capture_trigger": "<b>"}, 400, "capture_trigger"),
    "filetype-injection": ({"filetype": "image/jpeg\r\nX: y"}, 400, "filetype"),
    "sha256-short": ({"sha256": "abc"}, 400, "64 hexadecimal"),
}


@pytest.mark.parametrize(
    "changes,status,reason", CAPTURE_REFUSALS.values(), ids=CAPTURE_REFUSALS.keys()
)
def test_hostile_capture_metadata_is_refused_before_a_byte_is_stored(
    hostile: Hostile, shared: Operator, changes: dict[str, str], status: int, reason: str
) -> None:
    values = {"filename": "photo.jpg", "session_id": str(shared.session_id), **changes}
    metadata = ",".join(f"{k} {b64(v)}" for k, v in values.items())
    headers = {**shared.auth, "Upload-Length": "5", "Upload-Metadata": metadata}
    headers["Content-Type"] = OCTETS
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "POST", "/files/", headers, b"12345")
    assert r.status == status, r
    assert reason in json.loads(r.body)["message"]


def test_another_operators_session_is_404_as_if_missing_and_creates_nothing(
    hostile: Hostile, op: Operator, other: Operator
) -> None:
    headers = {**other.auth, "Upload-Length": "5", "Upload-Metadata": op.metadata()}
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "POST", "/files/", headers)
    assert r.status == 404
    assert json.loads(r.body)["message"] == f"session {op.session_id} does not exist"


def test_metadata_is_echoed_on_head_exactly_and_never_splits_headers(
    hostile: Hostile, op: Operator
) -> None:
    """A value that decodes to CRLF and markup travels base64-encoded: echoed as received."""
    metadata = op.metadata() + f",note {b64(chr(13) + chr(10) + 'X-Evil: 1 <script>')}"
    upload_id = op.tus.create(3, {}, **{"Upload-Metadata": metadata}).rsplit("/", 1)[1]
    r = raw(hostile.server.port, "HEAD", f"/files/{upload_id}", op.auth)
    assert r.status == 200
    assert r.header("Upload-Metadata") == metadata
    assert r.header("X-Evil") is None


# --- upload ids -------------------------------------------------------------------------------

HOSTILE_IDS = {
    "encoded-dotdot-slash": "..%2Ffile",
    "encoded-dotdot-backslash": "..%5Cfile",
    "dotdot": "..",
    "encoded-dotdot": "%2e%2e",
    "double-encoded": "..%252Ffile",
    "nul": "%00",
    "id-then-nul": "0123456789abcdef0123456789abcdef%00",
    "uppercase-hex": "0123456789ABCDEF0123456789ABCDEF",
    "dotdot-x": "..%2F..%2Fx",
    "info-suffix": "0123456789abcdef0123456789abcdef.info",
    "owners-folder": ".owners",
    "long-3000": "a" * 3000,
}


@pytest.mark.parametrize("method", ["HEAD", "PATCH", "DELETE", "GET"])
@pytest.mark.parametrize("path_id", HOSTILE_IDS.values(), ids=HOSTILE_IDS.keys())
def test_a_hostile_upload_id_is_404_on_every_verb_and_touches_no_file(
    hostile: Hostile, shared: Operator, method: str, path_id: str
) -> None:
    headers = {**shared.auth, "Content-Type": OCTETS, "Upload-Offset": "0"}
    with nothing_changes(hostile):
        r = raw(hostile.server.port, method, f"/files/{path_id}", headers, b"x")
    assert r.status == 404, r
    for canary in ("server/data/file", "server/data/x", "server/x", "x"):
        assert (hostile.root / canary).exists()


def test_an_upload_id_longer_than_the_request_line_limit_is_414(
    hostile: Hostile, shared: Operator
) -> None:
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "DELETE", "/files/" + "a" * 5000, shared.auth)
    assert r.status == 414


def test_the_upload_folders_bookkeeping_files_are_not_uploads(
    hostile: Hostile, op: Operator
) -> None:
    upload_id = op.create(10)
    for suffix in (".info", ".lock", ".gone", ".release"):
        with nothing_changes(hostile):
            r = raw(hostile.server.port, "GET", f"/files/{upload_id}{suffix}", op.auth)
        assert r.status == 404


# --- concatenation ----------------------------------------------------------------------------

CONCAT_PATHS = {
    "dotdot": ("final;../x", 400),
    "dotdot-file": ("final;../file", 400),
    "deep-dotdot": ("final;/files/../../x", 400),
    "absolute-path": ("final;/etc/passwd", 400),
    "file-url": ("final;file:///etc/passwd", 400),
    "encoded": ("final;..%2F..%2Fx", 400),
    "empty": ("final;", 400),
    "not-final": ("finale;/files/0123456789abcdef0123456789abcdef", 400),
    "no-semicolon": ("final /files/0123456789abcdef0123456789abcdef", 400),
    "unknown-id": ("final;/files/0123456789abcdef0123456789abcdef", 404),
}


@pytest.mark.parametrize("value,status", CONCAT_PATHS.values(), ids=CONCAT_PATHS.keys())
def test_upload_concat_never_reads_a_file_outside_the_folder(
    hostile: Hostile, shared: Operator, value: str, status: int
) -> None:
    headers = {**shared.auth, "Upload-Concat": value, "Upload-Metadata": shared.metadata()}
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "POST", "/files/", headers)
    assert r.status == status, r
    assert json.loads(r.body)["error"] == "invalid-concat"


def _partial(op: Operator, data: bytes) -> str:
    url = op.tus.create(len(data), {}, **{"Upload-Concat": "partial"})
    assert op.tus.patch(url, 0, data).status_code == 204
    return url.rsplit("/", 1)[1]


def test_concat_of_another_users_partial_is_404(
    hostile: Hostile, op: Operator, other: Operator
) -> None:
    theirs = _partial(other, b"secret bytes of another user")
    headers = {**op.auth, "Upload-Concat": f"final;/files/{theirs}"}
    headers["Upload-Metadata"] = op.metadata()
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "POST", "/files/", headers)
    assert r.status == 404


def test_concat_of_a_non_partial_or_unfinished_partial_is_400(
    hostile: Hostile, op: Operator
) -> None:
    plain = op.create(10)
    unfinished = op.tus.create(10, {}, **{"Upload-Concat": "partial"}).rsplit("/", 1)[1]
    for part in (plain, unfinished):
        headers = {**op.auth, "Upload-Concat": f"final;/files/{part}"}
        headers["Upload-Metadata"] = op.metadata()
        with nothing_changes(hostile):
            r = raw(hostile.server.port, "POST", "/files/", headers)
        assert r.status == 400, r


def test_a_final_with_upload_length_is_400(hostile: Hostile, op: Operator) -> None:
    part = _partial(op, b"abc")
    headers = {**op.auth, "Upload-Concat": f"final;/files/{part}", "Upload-Length": "3"}
    headers["Upload-Metadata"] = op.metadata()
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "POST", "/files/", headers)
    assert r.status == 400


def test_a_final_over_the_maximum_size_is_413(hostile: Hostile, op: Operator) -> None:
    parts = [_partial(op, b"z" * 1_000_001) for _ in range(4)]
    value = "final;" + " ".join(f"/files/{part}" for part in parts)
    headers = {**op.auth, "Upload-Concat": value, "Upload-Metadata": op.metadata()}
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "POST", "/files/", headers)
    assert r.status == 413


# --- PATCH content types and bodies -----------------------------------------------------------

BAD_TYPES = {
    "missing": None,
    "text-plain": "text/plain",
    "form": "application/x-www-form-urlencoded",
    "multipart": "multipart/form-data; boundary=x",
    "octet-stream": "application/octet-stream",
    "suffixed": "application/offset+octet-stream-x",
    "prefixed": "xapplication/offset+octet-stream",
    "json": "application/json",
}


@pytest.mark.parametrize("content_type", BAD_TYPES.values(), ids=BAD_TYPES.keys())
def test_patch_with_a_wrong_content_type_is_415_and_stores_nothing(
    hostile: Hostile, op: Operator, content_type: str | None
) -> None:
    upload_id = op.create(10)
    headers = {**op.auth, "Upload-Offset": "0"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "PATCH", f"/files/{upload_id}", headers, b"0123456789")
    assert r.status == 415
    assert head_offset(op, upload_id) == 0


def test_a_content_length_past_upload_length_is_413_before_reading(
    hostile: Hostile, op: Operator
) -> None:
    upload_id = op.create(10)
    headers = {**op.auth, "Content-Type": OCTETS, "Upload-Offset": "0"}
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "PATCH", f"/files/{upload_id}", headers, b"x" * 11)
    assert r.status == 413
    assert head_offset(op, upload_id) == 0


def test_bytes_after_the_content_length_are_never_stored(hostile: Hostile, op: Operator) -> None:
    """The extra bytes are the next request on the connection (garbage: 400), not data."""
    upload_id = op.create(10)
    headers = [*op.auth.items(), ("Content-Type", OCTETS), ("Upload-Offset", "0")]
    headers.append(("Content-Length", "4"))
    request = build_request("PATCH", f"/files/{upload_id}", headers, b"abcdEXTRA-BYTES-HERE")
    r = send_raw(hostile.server.port, request, method="PATCH")
    assert r.status == 204
    assert r.header("Upload-Offset") == "4"
    assert stored(hostile, upload_id) == b"abcd"
    assert head_offset(op, upload_id) == 4


def test_a_chunked_body_past_the_length_stores_exactly_the_length(
    hostile: Hostile, op: Operator
) -> None:
    upload_id = op.create(10)
    headers = {**op.auth, "Content-Type": OCTETS, "Upload-Offset": "0"}
    headers["Transfer-Encoding"] = "chunked"
    body = chunked(b"0123456", b"789ABCDEF")
    r = raw(hostile.server.port, "PATCH", f"/files/{upload_id}", headers, body)
    assert r.status == 413
    assert stored(hostile, upload_id) == b"0123456789"
    assert head_offset(op, upload_id) == 10


def test_a_body_shorter_than_its_content_length_keeps_what_arrived(
    hostile: Hostile, op: Operator
) -> None:
    upload_id = op.create(100)
    headers = {**op.auth, "Content-Type": OCTETS, "Upload-Offset": "0", "Content-Length": "100"}
    with nothing_escapes(hostile):
        r = raw(
            hostile.server.port,
            "PATCH",
            f"/files/{upload_id}",
            headers,
            b"y" * 40,
            half_close=True,
        )
    assert r.status == 400
    assert json.loads(r.body)["error"] == "body-incomplete"
    assert stored(hostile, upload_id) == b"y" * 40
    assert head_offset(op, upload_id) == 40


def test_content_length_with_transfer_encoding_is_refused(hostile: Hostile, op: Operator) -> None:
    upload_id = op.create(10)
    headers = [*op.auth.items(), ("Content-Type", OCTETS), ("Upload-Offset", "0")]
    headers += [("Content-Length", "3"), ("Transfer-Encoding", "chunked")]
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "PATCH", f"/files/{upload_id}", headers, chunked(b"abc"))
    assert r.status == 400
    assert head_offset(op, upload_id) == 0


def test_broken_chunk_framing_keeps_only_whole_chunks_and_answers_400(
    hostile: Hostile, op: Operator
) -> None:
    upload_id = op.create(20)
    headers = {**op.auth, "Content-Type": OCTETS, "Upload-Offset": "0"}
    headers["Transfer-Encoding"] = "chunked"
    body = b"5\r\nabcde\r\nZZ\r\nnot-hex\r\n0\r\n\r\n"
    r = raw(hostile.server.port, "PATCH", f"/files/{upload_id}", headers, body)
    assert r.status == 400
    data = stored(hostile, upload_id)
    assert data in (b"", b"abcde")
    assert head_offset(op, upload_id) == len(data)


def test_a_deferred_length_never_lets_an_upload_pass_the_maximum(
    hostile: Hostile, op: Operator
) -> None:
    upload_id = op.create(None)
    url = f"{op.base}/files/{upload_id}"
    headers = {**op.auth, "Content-Type": OCTETS, "Upload-Offset": "0"}
    with nothing_changes(hostile):
        r = raw(
            hostile.server.port,
            "PATCH",
            f"/files/{upload_id}",
            {**headers, "Content-Length": str(MAX_UPLOAD + 1)},
            b"",
            content_length=False,
        )
    assert r.status == 413
    with nothing_changes(hostile):
        assert (
            op.tus.patch(url, 0, b"", **{"Upload-Length": str(MAX_UPLOAD + 1)}).status_code == 413
        )
    # A chunked body has no length to check up front: it is cut at the maximum.
    body = chunked(*([b"q" * 1_000_000] * 4), b"overflow")
    r = raw(
        hostile.server.port,
        "PATCH",
        f"/files/{upload_id}",
        {**headers, "Transfer-Encoding": "chunked"},
        body,
    )
    assert r.status == 413
    assert (hostile.uploads / upload_id).stat().st_size == MAX_UPLOAD
    assert head_offset(op, upload_id) == MAX_UPLOAD
    head = op.tus.head(url)
    assert head.headers.get("Upload-Defer-Length") == "1"


def test_a_refused_deferred_length_is_not_recorded(hostile: Hostile, op: Operator) -> None:
    """Upload-Length 5 with a 10-byte body: 413, and the length stays open (was: recorded)."""
    upload_id = op.create(None)
    url = f"{op.base}/files/{upload_id}"
    with nothing_changes(hostile):
        r = op.tus.patch(url, 0, b"x" * 10, **{"Upload-Length": "5"})
    assert r.status_code == 413
    assert op.tus.head(url).headers.get("Upload-Defer-Length") == "1"
    r = op.tus.patch(url, 0, b"x" * 10, **{"Upload-Length": "10"})
    assert r.status_code == 204
    assert r.headers["Upload-Offset"] == "10"


def test_a_declared_length_cannot_change(hostile: Hostile, op: Operator) -> None:
    upload_id = op.create(None)
    url = f"{op.base}/files/{upload_id}"
    assert op.tus.patch(url, 0, b"abc", **{"Upload-Length": "6"}).status_code == 204
    with nothing_changes(hostile):
        assert op.tus.patch(url, 3, b"d", **{"Upload-Length": "9"}).status_code == 400
        assert op.tus.patch(url, 3, b"d", **{"Upload-Length": "2"}).status_code == 400
    assert op.tus.head(url).headers["Upload-Length"] == "6"


def test_a_stale_offset_is_409_and_leaves_the_upload_alone(hostile: Hostile, op: Operator) -> None:
    upload_id = op.create(10)
    url = f"{op.base}/files/{upload_id}"
    assert op.tus.patch(url, 0, b"abc").status_code == 204
    with nothing_changes(hostile):
        assert op.tus.patch(url, 0, b"XYZ").status_code == 409
        assert op.tus.patch(url, 4, b"XYZ").status_code == 409
    assert stored(hostile, upload_id) == b"abc"


# --- method override --------------------------------------------------------------------------

OVERRIDES = {
    "dunder": ("__init__", 405),
    "private-method": ("_load", 405),
    "handle": ("handle", 405),
    "trace": ("TRACE", 405),
    "connect": ("CONNECT", 405),
    "post-on-upload": ("POST", 405),
    "empty-after-strip": ("  ", 415),  # no override: the real PATCH, without a Content-Type
}


@pytest.mark.parametrize("override,status", OVERRIDES.values(), ids=OVERRIDES.keys())
def test_a_hostile_method_override_is_refused(
    hostile: Hostile, op: Operator, override: str, status: int
) -> None:
    upload_id = op.create(10)
    headers = {**op.auth, "X-HTTP-Method-Override": override}
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "PATCH", f"/files/{upload_id}", headers, b"abc")
    assert r.status == status, r


def test_override_to_options_answers_discovery_only(hostile: Hostile, op: Operator) -> None:
    upload_id = op.create(10)
    headers = {
        "Tus-Resumable": "1.0.0",
        "X-HTTP-Method-Override": "OPTIONS",
        "Content-Type": OCTETS,
        "Upload-Offset": "0",
    }  # no credentials
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "PATCH", f"/files/{upload_id}", headers, b"abc")
    assert r.status == 401  # authentication comes before the override is looked at
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "PATCH", f"/files/{upload_id}", {**op.auth, **headers}, b"abc")
    assert r.status == 204
    assert r.header("Tus-Version") == "1.0.0"


def test_override_cannot_delete_another_users_upload(
    hostile: Hostile, op: Operator, other: Operator
) -> None:
    theirs = other.create(10)
    headers = {**op.auth, "X-HTTP-Method-Override": "DELETE"}
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "POST", f"/files/{theirs}", headers)
    assert r.status == 404
    assert head_offset(other, theirs) == 0


def test_override_on_a_preflight_is_still_a_preflight(hostile: Hostile, op: Operator) -> None:
    upload_id = op.create(10)
    headers = {**op.auth, "X-HTTP-Method-Override": "DELETE"}
    with nothing_changes(hostile):
        r = raw(hostile.server.port, "OPTIONS", f"/files/{upload_id}", headers)
    assert r.status == 204
    assert head_offset(op, upload_id) == 0


def test_tus_resumable_of_another_version_is_412(hostile: Hostile, op: Operator) -> None:
    upload_id = op.create(10)
    for version in ("0.2.2", "1.0.0, 1.0.0", "1.0.0\t1", ""):
        headers = {**op.auth, "Tus-Resumable": version, "Content-Type": OCTETS}
        headers["Upload-Offset"] = "0"
        with nothing_changes(hostile):
            r = raw(hostile.server.port, "PATCH", f"/files/{upload_id}", headers, b"abc")
        assert r.status == 412, (version, r)


def test_garbage_on_the_connection_is_400_without_a_trace(hostile: Hostile) -> None:
    for junk in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"PATCH\r\n\r\n", b"\x00" * 64):
        with nothing_changes(hostile):
            with socket.create_connection(("127.0.0.1", hostile.server.port), timeout=10) as s:
                s.sendall(junk + b"\r\n\r\n")
                s.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + 10
                answer = b""
                while time.monotonic() < deadline:
                    piece = s.recv(4096)
                    if not piece:
                        break
                    answer += piece
        assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:60]
