"""The owner index counts what the records say: SQLite's sums against a count done by hand
over any mix of owners, lengths, deferred uploads, completion and expiry (hypothesis)."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from app.tus.ownerindex import OwnerIndex
from app.tus.storage import OwnerUsage, UploadRecord

NOW = datetime(2030, 1, 1, tzinfo=UTC)

upload = st.tuples(
    st.sampled_from(["ana", "bo"]),  # owner
    st.one_of(st.none(), st.integers(min_value=0, max_value=10**12)),  # length; None: deferred
    st.integers(min_value=0, max_value=10**6),  # bytes stored
    st.one_of(st.none(), st.integers(min_value=-100, max_value=100)),  # expiry, s from now
)


@given(st.lists(upload, max_size=30))
def test_usage_is_what_the_records_add_up_to(
    uploads: list[tuple[str, int | None, int, int | None]],
) -> None:
    stored: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        index = OwnerIndex(Path(tmp) / "owners.sqlite3", lambda upload_id: stored[upload_id])
        expected = {"ana": OwnerUsage(0, 0), "bo": OwnerUsage(0, 0)}
        for n, (owner, length, offset, expires_in) in enumerate(uploads):
            if length is not None:
                offset = min(offset, length)
            upload_id = f"{n:032x}"
            stored[upload_id] = offset
            expires = None if expires_in is None else NOW + timedelta(seconds=expires_in)
            index.put(
                UploadRecord(upload_id, owner, length, NOW, expires_at=expires, offset=offset)
            )
            is_open = length is None or offset < length
            live = expires is None or expires > NOW
            before = expected[owner]
            expected[owner] = OwnerUsage(
                before.unfinished + (1 if is_open and live else 0),
                before.bytes + (offset if length is None else length),
            )
        for owner, usage in expected.items():
            assert index.usage(owner, NOW) == usage
