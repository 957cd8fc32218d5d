"""The concatenation extension's rules for a final upload's parts: each named once, at most
max_parts of them, each a complete partial upload of the same owner."""

from __future__ import annotations

from app.tus import errors
from app.tus.storage import Storage, UploadGone, UploadNotFound, UploadRecord


def check_parts(
    store: Storage, part_ids: tuple[str, ...], owner: str, max_parts: int
) -> list[UploadRecord]:
    """The partial uploads a final names, in order, or a 400/404 saying which one is wrong.
    A part named twice is refused: one short header would otherwise multiply the writes."""
    if len(part_ids) > max_parts:
        raise errors.invalid_concat(
            f"a final upload names {len(part_ids)} partial uploads; at most {max_parts} are allowed"
        )
    seen: set[str] = set()
    for part_id in part_ids:
        if part_id in seen:
            raise errors.invalid_concat(
                f"partial upload {part_id} is named more than once; name each part once"
            )
        seen.add(part_id)
    return [_complete_partial(store, part_id, owner) for part_id in part_ids]


def _complete_partial(store: Storage, part_id: str, owner: str) -> UploadRecord:
    try:
        part: UploadRecord | None = store.get_info(part_id)
    except (UploadNotFound, UploadGone):
        part = None
    if part is None or part.owner != owner:  # never another user's data
        raise errors.invalid_concat(f"there is no upload {part_id}", 404)
    if not part.is_partial:
        raise errors.invalid_concat(f"upload {part_id} is not a partial upload")
    if not part.is_complete:
        raise errors.invalid_concat(
            f"partial upload {part_id} holds {part.offset} of {part.length or '?'} bytes; "
            "finish it first"
        )
    return part
