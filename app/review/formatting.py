"""Plain-text formatting for the reviewer pages: times, sizes, durations, JSON values, and the
camera settings and EXIF facts of a capture as table rows (the templates escape the text)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

# The EXIF facts the capture service records (services/camera/imaging.py read_exif), in a
# photographer's order with readable labels; any other key is listed after them as it is.
EXIF_LABELS = {
    "make": "Camera make",
    "model": "Camera model",
    "datetime_original": "Taken (camera clock)",
    "offset_time_original": "Camera time zone",
    "orientation": "Orientation",
    "gps": "GPS position",
}
ORIENTATIONS = {
    1: "upright",
    2: "mirrored",
    3: "rotated 180°",
    4: "mirrored, rotated 180°",
    5: "mirrored, rotated 90° counter-clockwise",
    6: "rotated 90° clockwise",
    7: "mirrored, rotated 90° clockwise",
    8: "rotated 90° counter-clockwise",
}
MAX_VALUE_CHARS = 500


def fmt_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def fmt_bytes(size: int | None) -> str:
    if size is None:
        return "—"
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size:,} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size:,} bytes"  # pragma: no cover - the loop always returns


def fmt_duration(delta: timedelta | None) -> str:
    if delta is None:
        return "—"
    seconds = delta.total_seconds()
    if seconds < 0:
        return "—"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"


def fmt_value(value: Any) -> str:
    """Any JSON value as plain text for a table cell (the template escapes it)."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool) or value is None:
        text = json.dumps(value)
    elif isinstance(value, int | float):
        text = str(value)
    else:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"


def settings_rows(data: Any) -> list[tuple[str, str]]:
    """A JSON object as sorted (key, text) rows; anything else as one row."""
    if not data:
        return []
    if not isinstance(data, dict):
        return [("value", fmt_value(data))]
    return [(str(k), fmt_value(v)) for k, v in sorted(data.items(), key=lambda kv: str(kv[0]))]


def exif_rows(exif: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(the recorded facts under readable labels, any other keys as they are)."""
    if not isinstance(exif, dict):
        return [], settings_rows(exif)
    summary = []
    for key, label in EXIF_LABELS.items():
        if key not in exif:
            continue
        value = exif[key]
        if key == "orientation" and value in ORIENTATIONS:
            text = f"{value} ({ORIENTATIONS[value]}; the preview is upright)"
        elif key == "gps":
            text = "recorded (kept in the original only)" if value else "none"
        else:
            text = fmt_value(value)
        summary.append((label, text))
    rest = settings_rows({k: v for k, v in exif.items() if k not in EXIF_LABELS})
    return summary, rest
