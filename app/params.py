"""Query parameters the JSON API and the reviewer pages share: the capture filters (parameter ->
column) and whole-number arguments such as page, per_page and cursors."""

from __future__ import annotations

from collections.abc import Mapping

from app.errors import ApiError
from services.models import Capture

MAX_PER_PAGE = 200
CAPTURE_FILTERS = {
    "trigger": Capture.capture_trigger,
    "type": Capture.capture_type,
    "status": Capture.status,
    "review_status": Capture.review_status,
}


def int_arg(
    args: Mapping[str, str], name: str, default: int | None, *, lo: int = 1, hi: int = 10**12
) -> int | None:
    """A whole-number GET parameter within lo..hi, or default when it is absent or empty."""
    raw = args.get(name, "")
    if raw == "":
        return default
    # Digits only: int() would take " 5", "+5", "5_000" and "٥".
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 13) or not lo <= int(raw) <= hi:
        raise ApiError(400, "bad-request", f"Query parameter '{name}' must be a number {lo}-{hi}.")
    return int(raw)
