"""Every advertised extension: creation-with-upload, creation-defer-length, expiration,
checksum, termination and concatenation."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from app.tus.config import TusConfig
from app.tus.handler import TusHandler
from app.tus.hooks import Hooks, UploadInfo
from app.tus.maintenance import cleanup
from app.tus.storage import FinishedData
from tests.tus.conftest import OCTETS, Client, Clock, make_handler, meta


def upload_files(upload_dir: Path) -> set[str]:
    return {p.name for p in upload_dir.iterdir() if not p.name.startswith(".")}


Finished = list[tuple[UploadInfo, bytes]]


@pytest.fixture
def finished() -> Finished:
    return []


@pytest.fixture
def hooks(finished: list[tuple[UploadInfo, bytes]]) -> Hooks:
    def finish(info: UploadInfo, data: FinishedData) -> dict[str, str]:
        with data.local_file() as path:
            finished.append((info, path.read_bytes()))
        return {"Tuscam-Capture-Id": str(len(finished))}

    return Hooks(finish=finish)


def test_options_advertise_every_extension_and_algorithm(client: Client) -> None:
    r = client.request("OPTIONS", None, tus=False)
    assert r.headers["Tus-Extension"].split(",") == [
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "termination",
        "concatenation",
        "checksum",
        "expiration",
    ]
    assert r.headers["Tus-Checksum-Algorithm"] == "sha1,md5,sha256,crc32"


def test_without_expiry_expiration_is_not_advertised(tmp_path: Path) -> None:
    handler = make_handler(tmp_path, TusConfig(expiry_seconds=None))
    r = Client(handler).request("OPTIONS", None)
    assert "expiration" not in r.headers["Tus-Extension"]
    assert "Tus-Max-Size" not in r.headers
    assert (
        "Upload-Expires"
        not in Client(handler).request("POST", None, {"Upload-Length": "3"}).headers
    )


# --- creation-with-upload -------------------------------------------------------------------


def test_post_with_the_whole_body_creates_completes_and_finishes(
    client: Client, finished: Finished
) -> None:
    r = client.request(
        "POST",
        None,
        {"Upload-Length": "5", "Content-Type": OCTETS, "Content-Length": "5"},
        b"hello",
    )
    assert r.status == 201
    assert r.headers["Upload-Offset"] == "5"
    assert r.headers["Tuscam-Capture-Id"] == "1"
    assert "Upload-Expires" not in r.headers  # a complete upload no longer expires
    assert [data for _info, data in finished] == [b"hello"]


def test_post_with_part_of_the_body_keeps_it(client: Client, finished: Finished) -> None:
    r = client.request(
        "POST",
        None,
        {"Upload-Length": "10", "Content-Type": OCTETS, "Content-Length": "4"},
        b"abcd",
    )
    upload_id = r.headers["Location"].rsplit("/", 1)[1]
    assert r.headers["Upload-Offset"] == "4" and client.offset(upload_id) == 4
    assert finished == []


def test_post_body_longer_than_the_upload_is_refused_before_anything_is_stored(
    client: Client, config: TusConfig, upload_dir: Path
) -> None:
    r = client.request(
        "POST", None, {"Upload-Length": "3", "Content-Type": OCTETS, "Content-Length": "4"}, b"abcd"
    )
    assert r.status == 413
    assert upload_files(upload_dir) == set()


def test_post_body_of_another_type_is_ignored(client: Client) -> None:
    r = client.request(
        "POST",
        None,
        {"Upload-Length": "3", "Content-Type": "text/plain", "Content-Length": "3"},
        b"abc",
    )
    assert r.status == 201 and r.headers["Upload-Offset"] == "0"


def test_upload_length_zero_finishes_at_creation(client: Client, finished: Finished) -> None:
    r = client.request("POST", None, {"Upload-Length": "0", "Upload-Metadata": meta(filename="e")})
    assert r.status == 201 and r.headers["Tuscam-Capture-Id"] == "1"
    assert finished[0][1] == b"" and finished[0][0].metadata == {"filename": "e"}


# --- creation-defer-length ------------------------------------------------------------------


def test_deferred_length_is_declared_once_by_a_patch(client: Client, finished: Finished) -> None:
    upload_id = client.create(None)
    assert client.patch(upload_id, 0, b"abc").status == 204
    assert client.head(upload_id).headers["Upload-Defer-Length"] == "1"
    r = client.patch(upload_id, 3, b"de", **{"Upload-Length": "5"})
    assert r.status == 204 and r.headers["Tuscam-Capture-Id"] == "1"
    head = client.head(upload_id)
    assert head.headers["Upload-Length"] == "5" and "Upload-Defer-Length" not in head.headers
    assert client.patch(upload_id, 5, b"", **{"Upload-Length": "6"}).status == 400
    assert finished[0][1] == b"abcde"


@pytest.mark.parametrize("declared,status", [("2", 400), ("10000001", 413), ("x", 400)])
def test_a_deferred_length_below_the_offset_or_over_the_limit_is_refused(
    client: Client, declared: str, status: int
) -> None:
    upload_id = client.create(None)
    assert client.patch(upload_id, 0, b"abc").status == 204
    assert client.patch(upload_id, 3, b"", **{"Upload-Length": declared}).status == status
    assert client.head(upload_id).headers["Upload-Defer-Length"] == "1"


# --- expiration -----------------------------------------------------------------------------


def test_upload_expires_is_an_imf_fixdate_on_post_patch_and_head(
    client: Client, clock: Clock
) -> None:
    r = client.request("POST", None, {"Upload-Length": "10"})
    expires = r.headers["Upload-Expires"]
    assert expires.endswith(" GMT") and parsedate_to_datetime(expires) == clock.now.replace(day=2)
    upload_id = r.headers["Location"].rsplit("/", 1)[1]
    clock.advance(hours=5)
    patched = client.patch(upload_id, 0, b"ab").headers["Upload-Expires"]
    assert parsedate_to_datetime(patched) == clock.now.replace(day=2)  # activity postpones it
    assert client.head(upload_id).headers["Upload-Expires"] == patched


def test_cleanup_removes_expired_unfinished_uploads_only(
    handler: TusHandler, client: Client, clock: Clock, upload_dir: Path
) -> None:
    stale = client.create(10)
    done = client.create(2)
    assert client.patch(done, 0, b"ok").status == 204
    clock.advance(hours=23)
    fresh = client.create(10)
    clock.advance(hours=2)
    assert client.head(stale).status == 410  # expired even before cleanup
    assert cleanup(handler).expired == 1
    assert client.head(stale).status == 410  # a tombstone remembers it
    assert client.offset(fresh) == 0
    assert not (upload_dir / stale).exists()
    clock.advance(days=8)
    assert cleanup(handler, clock.now).expired == 1  # fresh has expired by now
    assert client.head(stale).status == 404  # old tombstones are forgotten


def test_cleanup_retires_finished_uploads_after_the_grace_period_and_head_still_answers(
    handler: TusHandler, client: Client, clock: Clock, upload_dir: Path
) -> None:
    done = client.create(2, meta(filename="d"))
    assert client.patch(done, 0, b"ok").status == 204
    clock.advance(seconds=handler.config.retain_seconds - 1)
    assert cleanup(handler).retired == 0
    clock.advance(seconds=2)
    assert cleanup(handler).retired == 1
    assert not (upload_dir / done).exists()
    head = client.head(done)
    assert head.status == 200
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == "2"
    assert head.headers["Upload-Metadata"] == meta(filename="d")
    assert client.request("GET", done).status == 410
    assert client.patch(done, 2, b"").status == 410
    assert Client(handler, "mallory").head(done).status == 404


# --- checksum -------------------------------------------------------------------------------


def _digest(name: str, data: bytes) -> str:
    raw = (
        zlib.crc32(data).to_bytes(4, "big") if name == "crc32" else hashlib.new(name, data).digest()
    )
    return f"{name} {base64.b64encode(raw).decode()}"


@pytest.mark.parametrize("algorithm", ["sha1", "md5", "sha256", "crc32"])
def test_a_matching_checksum_stores_the_chunk(client: Client, algorithm: str) -> None:
    upload_id = client.create(20)
    r = client.patch(
        upload_id, 0, b"0123456789", **{"Upload-Checksum": _digest(algorithm, b"0123456789")}
    )
    assert r.status == 204 and r.headers["Upload-Offset"] == "10"


@pytest.mark.parametrize("algorithm", ["sha1", "md5", "sha256", "crc32"])
def test_a_checksum_mismatch_discards_the_chunk_and_keeps_the_offset(
    client: Client, config: TusConfig, algorithm: str, upload_dir: Path
) -> None:
    upload_id = client.create(20)
    assert client.patch(upload_id, 0, b"first").status == 204
    r = client.patch(upload_id, 5, b"second", **{"Upload-Checksum": _digest(algorithm, b"other!")})
    assert r.status == 460
    assert client.offset(upload_id) == 5
    assert (upload_dir / upload_id).read_bytes() == b"first"
    assert not (upload_dir / f"{upload_id}.chunk").exists()


def test_a_checksummed_chunk_cut_short_is_discarded(client: Client) -> None:
    from tests.tus.test_streaming import CutStream

    upload_id = client.create(20)
    r = client.patch(
        upload_id,
        0,
        CutStream(b"0123456789", 4),
        10,
        **{"Upload-Checksum": _digest("sha1", b"0123456789")},
    )
    assert r.status == 400 and client.offset(upload_id) == 0


def test_a_checksum_mismatch_on_post_leaves_no_upload(
    client: Client, config: TusConfig, upload_dir: Path
) -> None:
    r = client.request(
        "POST",
        None,
        {
            "Upload-Length": "3",
            "Content-Type": OCTETS,
            "Content-Length": "3",
            "Upload-Checksum": _digest("sha1", b"xyz"),
        },
        b"abc",
    )
    assert r.status == 460 and "Location" not in r.headers
    assert not any(name.endswith(".info") for name in upload_files(upload_dir))


# --- termination ----------------------------------------------------------------------------


def test_delete_frees_the_files_and_tells_the_hook(
    handler: TusHandler, client: Client, config: TusConfig, upload_dir: Path
) -> None:
    terminated: list[UploadInfo] = []
    handler.hooks.post_terminate = terminated.append
    upload_id = client.create(10, meta(filename="x"))
    assert client.patch(upload_id, 0, b"abc").status == 204
    assert client.request("DELETE", upload_id).status == 204
    assert upload_files(upload_dir) == {f"{upload_id}.gone"}
    assert [(i.id, i.offset, i.metadata) for i in terminated] == [(upload_id, 3, {"filename": "x"})]
    assert client.patch(upload_id, 3, b"d").status == 410


def test_another_user_cannot_delete_but_an_admin_can(handler: TusHandler, client: Client) -> None:
    upload_id = client.create(10)
    assert Client(handler, "mallory").request("DELETE", upload_id).status == 404
    assert Client(handler, "root", is_admin=True).request("DELETE", upload_id).status == 204


# --- concatenation --------------------------------------------------------------------------


def _partial(client: Client, data: bytes, **meta_values: str) -> str:
    upload_id = client.create(
        len(data), meta(**meta_values) if meta_values else "", **{"Upload-Concat": "partial"}
    )
    if data:
        assert client.patch(upload_id, 0, data).status == 204
    return upload_id


def test_a_final_upload_is_its_partials_in_order(
    client: Client, config: TusConfig, finished: Finished, upload_dir: Path
) -> None:
    a = _partial(client, b"alpha-", filename="a")
    b = _partial(client, b"beta")
    assert finished == []  # partial uploads never run the finish hook
    header = f"final;http://example.test/files/{b} /files/{a}"
    r = client.request(
        "POST", None, {"Upload-Concat": header, "Upload-Metadata": meta(filename="f")}
    )
    assert r.status == 201 and r.headers["Tuscam-Capture-Id"] == "1"
    final = r.headers["Location"].rsplit("/", 1)[1]
    assert (upload_dir / final).read_bytes() == b"betaalpha-"
    info, data = finished[0]
    assert data == b"betaalpha-" and info.is_final and info.length == 10
    assert info.metadata == {"filename": "f"}  # the partials' metadata is not carried over
    head = client.head(final)
    assert head.headers["Upload-Concat"] == header
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == "10"
    assert head.headers["Tuscam-Capture-Id"] == "1"
    assert client.patch(final, 10, b"").status == 403
    assert len(finished) == 1


def test_a_final_without_metadata_of_its_own_has_none(client: Client, finished: Finished) -> None:
    a = _partial(client, b"x", filename="a")
    r = client.request("POST", None, {"Upload-Concat": f"final;{a}"})
    assert r.status == 201 and finished[0][0].metadata == {}


@pytest.mark.parametrize(
    "problem,status",
    [
        ("unknown", 404),
        ("unfinished", 400),
        ("not-partial", 400),
        ("other-owner", 404),
        ("malformed", 400),
        ("path", 400),
        ("empty", 400),
        ("with-length", 400),
        ("terminated", 404),
    ],
)
def test_a_final_naming_an_unusable_upload_is_refused(
    handler: TusHandler,
    client: Client,
    config: TusConfig,
    problem: str,
    status: int,
    upload_dir: Path,
) -> None:
    good = _partial(client, b"ok")
    headers = {}
    if problem == "unknown":
        ref = "f" * 32
    elif problem == "unfinished":
        ref = client.create(5, **{"Upload-Concat": "partial"})
    elif problem == "not-partial":
        ref = client.create(0)
    elif problem == "other-owner":
        ref = _partial(Client(handler, "mallory"), b"theirs")
    elif problem == "terminated":
        ref = _partial(client, b"gone")
        client.request("DELETE", ref)
    elif problem == "path":
        ref = "../../" + good
    else:
        ref = good
    value = {"malformed": f"final,{ref}", "empty": "final;"}.get(problem, f"final;{good} {ref}")
    if problem == "path":
        value = f"final;{good} /files/{good}/.."
    if problem == "with-length":
        headers["Upload-Length"] = "4"
    before = upload_files(upload_dir)
    r = client.request("POST", None, {"Upload-Concat": value, **headers})
    assert r.status == status, r
    assert upload_files(upload_dir) == before


def test_a_partial_may_be_reused_by_several_finals(client: Client, finished: Finished) -> None:
    a = _partial(client, os.urandom(100))
    for _ in range(2):
        assert client.request("POST", None, {"Upload-Concat": f"final;{a}"}).status == 201
    assert len(finished) == 2 and finished[0][1] == finished[1][1]
