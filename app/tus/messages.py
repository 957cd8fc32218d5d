"""Plain request and response facts exchanged between the tus core and a web adapter.

No I/O here: the adapter fills a TusRequest and turns a TusResponse into its own response."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol


class Headers(Mapping[str, str]):
    """A read-only, case-insensitive copy of request headers (HTTP field names are)."""

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for key, value in (items or {}).items():
            self._items[key.lower()] = (key, value)

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (original for original, _value in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._items

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


class RequestBody(Protocol):
    """A request body as the core reads it: in blocks, once. A stream that also has
    readinto() is read with it (no copy)."""

    def read(self, size: int, /) -> bytes: ...


@dataclass(frozen=True)
class TusRequest:
    method: str  # as received; TusHandler.handle applies X-HTTP-Method-Override
    upload_id: str | None  # None for the collection URL /files/
    headers: Mapping[str, str]  # made case-insensitive on construction
    body: RequestBody  # raw input, read in blocks; may raise on disconnect
    owner: str  # authenticated user id, as a string
    is_admin: bool = False
    base_url: str = "/files/"  # URL of the collection, used for Location

    def __post_init__(self) -> None:
        if not isinstance(self.headers, Headers):
            object.__setattr__(self, "headers", Headers(self.headers))


@dataclass
class TusResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stream: Iterator[bytes] | None = None  # GET: the stored bytes, sent instead of body
