"""Strict parsing and formatting of tus header values: pure functions, no I/O.

Every parser either returns a value or raises a 4xx TusError; nothing else escapes."""

from __future__ import annotations

import base64
import binascii
import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import urlsplit

from app.tus import errors
from app.tus.checksum import ALGORITHMS, digest_size

MAX_INT = 2**63 - 1

# int() would accept " 5", "+5", "5_000" and "٥" (PITFALLS): only ASCII digits, bounded length.
_INT = re.compile(r"[0-9]{1,19}")
UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
# A metadata key: visible ASCII without comma (protocol: no spaces, no commas, not empty).
_KEY = re.compile(r"[!-+\--~]+")
_OWS = " \t"


def is_upload_id(value: str | None) -> bool:
    return value is not None and UPLOAD_ID.fullmatch(value) is not None


def parse_uint(name: str, value: str | None) -> int | None:
    """A non-negative integer header (Upload-Offset, Upload-Length, Content-Length)."""
    if value is None:
        return None
    text = value.strip(_OWS)
    if not _INT.fullmatch(text) or int(text) > MAX_INT:
        raise errors.invalid_header(name, value, "a non-negative integer of ASCII digits")
    return int(text)


def parse_defer_length(value: str | None) -> bool:
    if value is None:
        return False
    if value.strip(_OWS) != "1":
        raise errors.invalid_header("Upload-Defer-Length", value, "1")
    return True


def media_type(value: str | None) -> str | None:
    if value is None:
        return None
    return value.split(";", 1)[0].strip(_OWS).lower()


@dataclass(frozen=True)
class Metadata:
    header: str  # as received, echoed on HEAD
    values: dict[str, str | None]  # decoded (utf-8, errors="replace"); None for a bare key


def parse_metadata(value: str | None, max_bytes: int) -> Metadata:
    """Upload-Metadata: 'key base64,key2 base64,bare' (protocol section Upload-Metadata)."""
    if value is None or not value.strip(_OWS):
        return Metadata("", {})
    if len(value) > max_bytes:
        raise errors.invalid_metadata(f"it is {len(value)} bytes long, over {max_bytes}")
    decoded: dict[str, str | None] = {}
    for element in value.split(","):
        # Optional whitespace around commas is tolerated; a space after the key separates it
        # from its value, which may be empty ("key " and "key" are both allowed).
        key, sep, encoded = element.lstrip(_OWS).partition(" ")
        encoded = encoded.rstrip(_OWS)
        if not key:
            raise errors.invalid_metadata("a key is empty")
        if not _KEY.fullmatch(key):
            raise errors.invalid_metadata(f"key {key[:40]!r} has characters other than ASCII")
        if key in decoded:
            raise errors.invalid_metadata(f"key {key!r} appears twice")
        if not sep:
            decoded[key] = None
            continue
        try:
            # validate=True: plain b64decode("!!!") returns b"" without an error (PITFALLS).
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise errors.invalid_metadata(f"the value of {key!r} is not base64") from None
        decoded[key] = raw.decode("utf-8", errors="replace")
    return Metadata(value, decoded)


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    digest: bytes


def parse_checksum(value: str | None) -> Checksum | None:
    """Upload-Checksum: '<algorithm> <base64 digest>' (checksum extension)."""
    if value is None:
        return None
    name, sep, encoded = value.strip(_OWS).partition(" ")
    if not sep:
        raise errors.invalid_header("Upload-Checksum", value, "'<algorithm> <base64 digest>'")
    if name not in ALGORITHMS:
        raise errors.unknown_checksum_algorithm(name, ",".join(ALGORITHMS))
    try:
        digest = base64.b64decode(encoded.strip(_OWS), validate=True)
    except (binascii.Error, ValueError):
        raise errors.invalid_header("Upload-Checksum", value, "a base64 digest") from None
    if len(digest) != digest_size(name):
        raise errors.invalid_header(
            "Upload-Checksum", value, f"a {name} digest of {digest_size(name)} bytes"
        )
    return Checksum(name, digest)


@dataclass(frozen=True)
class Concat:
    partial: bool
    parts: tuple[str, ...] = ()  # upload ids of a final, in order
    header: str = ""  # as received


def parse_concat(value: str | None) -> Concat | None:
    """Upload-Concat: 'partial' or 'final;<url> <url>...' (concatenation extension)."""
    if value is None:
        return None
    text = value.strip(_OWS)
    if text == "partial":
        return Concat(True, (), value)
    kind, sep, urls = text.partition(";")
    if kind != "final" or not sep:
        raise errors.invalid_concat(f"{value[:80]!r} is neither 'partial' nor 'final;<urls>'")
    parts = tuple(upload_id_from_url(url) for url in urls.split())
    if not parts:
        raise errors.invalid_concat("a final upload names no partial uploads")
    return Concat(False, parts, value)


def upload_id_from_url(url: str) -> str:
    """The id at the end of an upload URL; never a path built from client input."""
    try:
        path = urlsplit(url).path
    except ValueError:
        path = ""
    upload_id = path.rstrip("/").rsplit("/", 1)[-1]
    if not is_upload_id(upload_id):
        raise errors.invalid_concat(f"{url[:80]!r} is not the URL of an upload")
    return upload_id


def http_date(moment: datetime) -> str:
    """RFC 9110 IMF-fixdate, e.g. 'Wed, 25 Jun 2014 16:00:00 GMT' (Upload-Expires)."""
    return _http_date(int(moment.timestamp()))


@functools.lru_cache(maxsize=8)
def _http_date(seconds: int) -> str:
    # Requests in the same second share a value (formatted once per second).
    return format_datetime(datetime.fromtimestamp(seconds, UTC), usegmt=True)
