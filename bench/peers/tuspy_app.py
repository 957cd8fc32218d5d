"""tuspyserver (a FastAPI router) as an ASGI app, for uvicorn: the Python asyncio tus peer.

Runs in its own venv (bench/.peers/venv); the upload folder comes from BENCH_TUSPY_DIR.
"""

import os

from fastapi import FastAPI
from tuspyserver import create_tus_router

app = FastAPI()
app.include_router(
    create_tus_router(
        prefix="files",
        files_dir=os.environ["BENCH_TUSPY_DIR"],
        max_size=8 * 1024**3,
    )
)
