"""Gallery benchmark: server time of /review/sessions/<id> for a session of 10,000 captures.

Rows are inserted directly with SQLAlchemy into a temporary SQLite database; the app runs
in-process behind Flask's test client, so the figure is the application's time per request
(routing, auth, queries, templates) without network or gunicorn. Median of 20 requests.

    .venv/bin/python -m bench.gallery [--captures 10000] [--requests 20] [--explain]
"""

from __future__ import annotations

import argparse
import hashlib
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as `python bench/gallery.py`
    sys.path.insert(0, str(ROOT))

from flask.testing import FlaskClient  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from app import create_app, review  # noqa: E402
from app.auth import hash_password  # noqa: E402
from app.cli import upgrade_database  # noqa: E402
from app.db import make_engine  # noqa: E402
from services.models import Assessment, Capture, CaptureSession, User  # noqa: E402

TRIGGERS = ("manual", "timer", "bulk")
# Not in the schema (yet): makes the gallery's grouped counts an index-only scan.
SUMMARY_INDEX = (
    "CREATE INDEX ix_captures_session_review ON captures "
    "(session_id, review_status, status, capture_trigger, capture_type)"
)
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def populate(database_url: str, captures: int) -> tuple[int, int]:
    """Users, one assessment, one session of `captures` rows; returns (session_id, a middle id)."""
    upgrade_database(database_url)
    engine = make_engine(database_url)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(User),
            [
                {"username": "rev", "role": "reviewer", "password_hash": hash_password("bench")},
                {"username": "op", "role": "operator", "password_hash": hash_password("bench")},
            ],
        )
        conn.execute(insert(Assessment), [{"id": 1, "title": "Bench", "created_by_id": 2}])
        conn.execute(insert(CaptureSession), [{"id": 1, "assessment_id": 1, "label": "10k"}])
        rows = []
        for n in range(captures):
            created = start + timedelta(seconds=n)
            rows.append(
                {
                    "session_id": 1,
                    "upload_id": hashlib.md5(str(n).encode()).hexdigest(),
                    "uploaded_by_id": 2,
                    "filename": f"IMG_{n:06d}.jpg",
                    "declared_type": "image/jpeg",
                    "capture_trigger": TRIGGERS[n % 3],
                    "capture_type": "photo",
                    "camera_settings": {"zoom": 1, "iso": 100 + n % 7, "facingMode": "user"},
                    "metadata_extra": {},
                    "sha256": hashlib.sha256(str(n).encode()).hexdigest(),
                    "bytes": 250_000 + n,
                    "width": 1920,
                    "height": 1080,
                    "format": "JPEG",
                    "original_path": f"originals/{n}.jpg",
                    "thumbnail_path": f"thumbnails/{n}.jpg",
                    "exif": {"make": "Bench", "model": "Cam", "orientation": 1},
                    "status": "accepted" if n % 50 else "rejected",
                    "review_status": ("pending", "approved", "rejected")[n % 3 and (n % 5 != 0)],
                    "reviewer_note": "",
                    "upload_started_at": created - timedelta(seconds=2),
                    "created_at": created,
                }
            )
        conn.execute(insert(Capture), rows)
        middle = conn.execute(
            text("SELECT id FROM captures ORDER BY created_at LIMIT 1 OFFSET :n"),
            {"n": captures // 2},
        ).scalar_one()
    engine.dispose()
    return 1, middle


def timed(client: FlaskClient, path: str, requests: int) -> tuple[float, int]:
    response = client.get(path)  # warm-up (template compilation, statement caches)
    assert response.status_code == 200, (path, response.status_code)
    times = []
    for _ in range(requests):
        t0 = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - t0)
        assert response.status_code == 200
    return statistics.median(times) * 1000, len(response.data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gallery", description=__doc__)
    parser.add_argument("--captures", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--explain", action="store_true", help="print SQLite's query plans")
    parser.add_argument(
        "--summary-index",
        action="store_true",
        help=f"first create the proposed covering index: {SUMMARY_INDEX}",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="tuscam-gallery-") as tmp:
        database_url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        t0 = time.perf_counter()
        session_id, middle = populate(database_url, args.captures)
        print(f"inserted {args.captures:,} captures in {time.perf_counter() - t0:.1f} s")
        if args.summary_index:
            engine = make_engine(database_url)
            with engine.begin() as conn:
                conn.execute(text(SUMMARY_INDEX))
            engine.dispose()
            print("with", SUMMARY_INDEX)
        app = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": "bench",
                "DATABASE_URL": database_url,
                "DATA_DIR": str(Path(tmp) / "data"),
            }
        )
        review.init_app(app)
        client = app.test_client()
        token = CSRF_RE.search(client.get("/auth/login").get_data(as_text=True))
        assert token, "no CSRF token on the login page"
        r = client.post(
            "/auth/login", data={"username": "rev", "password": "bench", "csrf_token": token[1]}
        )
        assert r.status_code == 302, "login failed"

        gallery = f"/review/sessions/{session_id}"
        cases = [
            ("gallery page 1 (60 cards, newest first)", gallery),
            ("gallery page in the middle (keyset cursor)", f"{gallery}?after={middle}"),
            ("gallery page 1, oldest first", f"{gallery}?order=asc"),
            ("gallery filtered: pending + timer", f"{gallery}?review_status=pending&trigger=timer"),
            ("gallery page 1, 200 cards", f"{gallery}?per_page=200"),
            ("capture page", f"/review/captures/{middle}"),
            ("live poll (nothing new)", f"{gallery}/since?after_id={args.captures}"),
            ("assessments list", "/review/"),
        ]
        print(f"median of {args.requests} requests, Flask test client, SQLite, in-process:")
        results = {}
        for name, path in cases:
            ms, size = timed(client, path, args.requests)
            results[name] = ms
            print(f"  {name:<45} {ms:7.1f} ms  ({size / 1024:.0f} KiB)")
        if args.explain:
            engine = app.extensions["tuscam.engine"]
            with engine.connect() as conn:
                for sql in [
                    "SELECT id FROM captures WHERE session_id = 1 "
                    "ORDER BY created_at DESC, id DESC LIMIT 61",
                    "SELECT id FROM captures WHERE session_id = 1 AND (created_at, id) < "
                    "('2025-01-01 01:00:00.000000', 5000) ORDER BY created_at DESC, id DESC "
                    "LIMIT 61",
                    "SELECT capture_trigger, count(*) FROM (SELECT capture_trigger FROM captures "
                    "WHERE session_id = 1 ORDER BY created_at DESC LIMIT 20001) GROUP BY 1",
                ]:
                    print(sql)
                    for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql)):
                        print("   ", row[-1])
        app.extensions["tuscam.engine"].dispose()
        print(
            f"RESULT gallery page 1 of a {args.captures:,}-capture session: "
            f"{results[cases[0][0]]:.1f} ms server time (median of {args.requests})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
