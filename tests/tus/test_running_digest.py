"""RunningDigests: a digest covers an upload only while every byte since offset 0 went through
it, in order; any other write drops it (the S3 store then reads the object back)."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from app.tus.running_digest import RunningDigests


def test_writes_in_order_give_the_digest_of_the_whole_upload() -> None:
    digests = RunningDigests()
    offset = 0
    for piece in (b"abc", b"", b"defgh"):
        state = digests.take("u", offset)
        assert state is not None
        state.update(piece)
        offset += len(piece)
        digests.keep("u", offset, state)
    assert digests.finished("u", 8) == hashlib.sha256(b"abcdefgh").hexdigest()
    assert digests.finished("u", 8) is None  # used once


def test_a_write_at_another_offset_drops_the_digest() -> None:
    digests = RunningDigests()
    state = digests.take("u", 0)
    assert state is not None
    state.update(b"abc")
    digests.keep("u", 3, state)
    assert digests.take("u", 5) is None  # bytes 3..5 went elsewhere
    assert digests.take("u", 3) is None  # and the digest is gone for good
    assert digests.finished("u", 3) is None


def test_only_a_digest_of_every_byte_is_finished() -> None:
    digests = RunningDigests()
    state = digests.take("u", 0)
    assert state is not None
    state.update(b"abc")
    digests.keep("u", 3, state)
    assert digests.finished("u", 4) is None  # a byte is missing
    assert digests.take("u", 7) is None  # nothing to resume after 0


def test_the_least_recently_written_upload_is_dropped_beyond_capacity() -> None:
    digests = RunningDigests(capacity=2)
    for name in ("a", "b", "c"):
        state = digests.take(name, 0)
        assert state is not None
        digests.keep(name, 0, state)
    assert digests.finished("a", 0) is None
    assert digests.finished("b", 0) == digests.finished("c", 0) == hashlib.sha256().hexdigest()


@given(
    pieces=st.lists(st.binary(max_size=64), max_size=8),
    stray=st.one_of(st.none(), st.integers(min_value=0, max_value=7)),
)
def test_the_digest_is_exact_or_absent(pieces: list[bytes], stray: int | None) -> None:
    """A write at a wrong offset (another node's) anywhere in the sequence never leaves a
    wrong digest behind."""
    digests = RunningDigests()
    offset = 0
    for index, piece in enumerate(pieces):
        at = offset + 1 if index == stray else offset
        state = digests.take("u", at)
        if state is not None:
            state.update(piece)
            digests.keep("u", at + len(piece), state)
        offset += len(piece)
    whole = b"".join(pieces)
    got = digests.finished("u", len(whole))
    assert got in (None, hashlib.sha256(whole).hexdigest())
    if pieces and (stray is None or stray >= len(pieces)):  # every write went through here
        assert got == hashlib.sha256(whole).hexdigest()
