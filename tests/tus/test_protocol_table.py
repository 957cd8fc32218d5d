"""The tus 1.0.0 protocol as a table: (upload state, method, headers) -> status and headers,
driven against TusHandler with in-memory bodies."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from app.tus.handler import TusHandler
from tests.tus.conftest import OCTETS, Client, Clock, meta

ANY = object()


@dataclass
class Case:
    target: str  # which URL: collection, fresh, half, complete, deferred, final, partial, ...
    method: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200
    present: dict[str, object] = field(default_factory=dict)  # header -> value or ANY
    absent: tuple[str, ...] = ()
    body: bytes = b""
    tus: bool = True  # send Tus-Resumable: 1.0.0
    owner: str = "alice"


def patch(offset: str = "0", **extra: str) -> dict[str, str]:
    return {"Content-Type": OCTETS, "Upload-Offset": offset, **extra}


def post(**extra: str) -> dict[str, str]:
    return {"Upload-Length": "10", **extra}


CASES = {
    # Core: versions (items 1-3).
    "options needs no Tus-Resumable": Case(
        "collection",
        "OPTIONS",
        tus=False,
        status=204,
        present={"Tus-Version": "1.0.0", "Tus-Extension": ANY, "Tus-Max-Size": "10000000"},
        absent=("Tus-Resumable",),
    ),
    "options ignores a wrong Tus-Resumable": Case(
        "fresh", "OPTIONS", {"Tus-Resumable": "0.2"}, tus=False, status=204
    ),
    "post without Tus-Resumable is 412": Case(
        "collection",
        "POST",
        post(),
        tus=False,
        status=412,
        present={"Tus-Version": "1.0.0", "Tus-Resumable": "1.0.0"},
    ),
    "post with an old Tus-Resumable is 412": Case(
        "collection", "POST", post(**{"Tus-Resumable": "0.2.2"}), tus=False, status=412
    ),
    "head without Tus-Resumable is 412": Case("fresh", "HEAD", tus=False, status=412),
    "patch without Tus-Resumable is 412 before anything": Case(
        "unknown", "PATCH", patch(), tus=False, status=412
    ),
    "get may skip Tus-Resumable": Case("fresh", "GET", tus=False, status=200),
    # creation (items 18-21).
    "post creates": Case(
        "collection",
        "POST",
        post(),
        status=201,
        present={"Location": ANY, "Upload-Expires": ANY, "Tus-Resumable": "1.0.0"},
    ),
    "post without a length is 400": Case("collection", "POST", {}, status=400),
    "post with both lengths is 400": Case(
        "collection", "POST", post(**{"Upload-Defer-Length": "1"}), status=400
    ),
    "post with Upload-Defer-Length 2 is 400": Case(
        "collection", "POST", {"Upload-Defer-Length": "2"}, status=400
    ),
    "post over Tus-Max-Size is 413": Case(
        "collection", "POST", {"Upload-Length": "10000001"}, status=413
    ),
    "post on an upload URL is 405": Case("fresh", "POST", post(), status=405),
    "an unknown method is 405": Case("fresh", "PUT", status=405, present={"Allow": ANY}),
    # Upload-Metadata (item 21).
    "metadata with bad base64 is 400": Case(
        "collection", "POST", post(**{"Upload-Metadata": "name !!!"}), status=400
    ),
    "metadata with a duplicate key is 400": Case(
        "collection", "POST", post(**{"Upload-Metadata": "a YQ==,a Yg=="}), status=400
    ),
    "metadata with an empty key is 400": Case(
        "collection", "POST", post(**{"Upload-Metadata": "a YQ==,,b"}), status=400
    ),
    "metadata with two spaces is 400": Case(
        "collection", "POST", post(**{"Upload-Metadata": "a  YQ=="}), status=400
    ),
    "metadata over the size cap is 400": Case(
        "collection", "POST", post(**{"Upload-Metadata": "k " + "QUFB" * 300}), status=400
    ),
    # Strict integers (PITFALLS: int() accepts more).
    **{
        f"Upload-Length {bad!r} is 400": Case(
            "collection", "POST", {"Upload-Length": bad}, status=400
        )
        for bad in ["+5", "5_000", "\u0665", "-1", "1e3", "0x10", "9" * 20, "", "5 5"]
    },
    **{
        f"Upload-Offset {bad!r} is 400": Case("fresh", "PATCH", patch(bad), status=400)
        for bad in ["+0", "0_0", "\u0660", "-0", "abc", ""]
    },
    # HEAD (items 6-8, 29, 50-51).
    "head reports offset and length": Case(
        "half",
        "HEAD",
        status=200,
        present={
            "Upload-Offset": "5",
            "Upload-Length": "10",
            "Cache-Control": "no-store",
            "Upload-Metadata": "filename YS50eHQ=,bare",
        },
        absent=("Upload-Defer-Length", "Content-Type"),
    ),
    "head of a deferred upload": Case(
        "deferred",
        "HEAD",
        status=200,
        present={"Upload-Defer-Length": "1", "Upload-Offset": "0"},
        absent=("Upload-Length",),
    ),
    "head of a partial upload": Case(
        "partial", "HEAD", status=200, present={"Upload-Concat": "partial", "Upload-Offset": "4"}
    ),
    "head of a final upload": Case(
        "final",
        "HEAD",
        status=200,
        present={"Upload-Concat": ANY, "Upload-Offset": "8", "Upload-Length": "8"},
        absent=("Upload-Expires",),
    ),
    "head of an unknown upload is 404": Case(
        "unknown", "HEAD", status=404, absent=("Upload-Offset",)
    ),
    "head of a malformed id is 404": Case("badid", "HEAD", status=404),
    "head of another user's upload is 404": Case("fresh", "HEAD", status=404, owner="mallory"),
    "head of a terminated upload is 410": Case("terminated", "HEAD", status=410),
    "head of an expired upload is 410": Case("expired", "HEAD", status=410),
    # PATCH (items 9-14).
    "patch appends": Case(
        "fresh",
        "PATCH",
        patch(**{"Content-Length": "5"}),
        body=b"12345",
        status=204,
        present={"Upload-Offset": "5", "Upload-Expires": ANY},
    ),
    "patch without Content-Type is 415": Case("fresh", "PATCH", {"Upload-Offset": "0"}, status=415),
    "patch with another Content-Type is 415": Case(
        "fresh", "PATCH", {**patch(), "Content-Type": "application/octet-stream"}, status=415
    ),
    "patch without Upload-Offset is 400": Case(
        "fresh", "PATCH", {"Content-Type": OCTETS}, status=400
    ),
    "patch at the wrong offset is 409": Case("half", "PATCH", patch("3"), status=409),
    "patch of an unknown upload is 404": Case("unknown", "PATCH", patch(), status=404),
    "patch of a path-like id is 404": Case("badid", "PATCH", patch(), status=404),
    "patch of a terminated upload is 410": Case("terminated", "PATCH", patch(), status=410),
    "patch of an expired upload is 410": Case("expired", "PATCH", patch(), status=410),
    "patch of a final upload is 403": Case("final", "PATCH", patch("8"), status=403),
    "patch past Upload-Length is 413": Case(
        "fresh", "PATCH", patch(**{"Content-Length": "11"}), body=b"x" * 11, status=413
    ),
    "patch of the collection is 405": Case("collection", "PATCH", patch(), status=405),
    "patch with an unknown checksum algorithm is 400": Case(
        "fresh", "PATCH", patch(**{"Upload-Checksum": "whirlpool AAAA"}), status=400
    ),
    "patch with a non-base64 checksum is 400": Case(
        "fresh", "PATCH", patch(**{"Upload-Checksum": "sha1 !!!!"}), status=400
    ),
    "patch with a checksum of the wrong size is 400": Case(
        "fresh", "PATCH", patch(**{"Upload-Checksum": "sha1 AAAA"}), status=400
    ),
    "patch with a wrong checksum is 460": Case(
        "fresh",
        "PATCH",
        patch(**{"Upload-Checksum": "crc32 AAAAAA==", "Content-Length": "3"}),
        body=b"abc",
        status=460,
    ),
    # termination (item 42).
    "delete terminates": Case("half", "DELETE", status=204),
    "delete of an unknown upload is 404": Case("unknown", "DELETE", status=404),
    "delete of a terminated upload is 410": Case("terminated", "DELETE", status=410),
    # X-HTTP-Method-Override (item 5).
    "method override to HEAD": Case(
        "half",
        "POST",
        {"X-HTTP-Method-Override": "HEAD"},
        status=200,
        present={"Upload-Offset": "5"},
    ),
    "method override to DELETE": Case(
        "fresh", "POST", {"X-HTTP-Method-Override": "DELETE"}, status=204
    ),
}


def make_target(client: Client, clock: Clock, kind: str) -> str | None:
    if kind == "collection":
        return None
    if kind == "unknown":
        return "0" * 32
    if kind == "badid":
        return "../../etc/passwd"
    if kind == "deferred":
        return client.create(None)
    if kind in ("partial", "final"):
        parts = []
        for data in (b"abcd", b"efgh"):
            part = client.create(4, **{"Upload-Concat": "partial"})
            assert client.patch(part, 0, data).status == 204
            parts.append(part)
        if kind == "partial":
            return parts[0]
        r = client.request("POST", None, {"Upload-Concat": f"final;/files/{parts[0]} {parts[1]}"})
        assert r.status == 201, r
        return r.headers["Location"].rsplit("/", 1)[1]
    upload_id = client.create(10, meta(filename="a.txt", bare=None))
    if kind == "half":
        assert client.patch(upload_id, 0, b"12345").status == 204
    elif kind == "terminated":
        assert client.request("DELETE", upload_id).status == 204
    elif kind == "expired":
        clock.advance(days=2)
    return upload_id


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_protocol(handler: TusHandler, clock: Clock, case: Case) -> None:
    upload_id = make_target(Client(handler), clock, case.target)
    response = Client(handler, owner=case.owner).request(
        case.method, upload_id, case.headers, case.body, tus=case.tus
    )
    assert response.status == case.status, response
    for name, value in case.present.items():
        assert name in response.headers, (name, response.headers)
        if value is not ANY:
            assert response.headers[name] == value
    for name in case.absent:
        assert name not in response.headers
    if case.method == "HEAD":
        assert response.body == b""
    elif response.status >= 400:
        error = json.loads(response.body)
        assert set(error) == {"error", "message"} and error["message"].endswith(".")
    if case.method != "OPTIONS":
        assert response.headers["Tus-Resumable"] == "1.0.0"
