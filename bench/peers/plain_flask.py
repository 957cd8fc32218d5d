"""A plain Flask app with one streaming POST per file, no tus: the ceiling of a Flask upload.

POST /upload/<name> reads the body in 1 MiB blocks and writes it to BENCH_PLAIN_DIR/<name>.
"""

import os
import re
from pathlib import Path

from flask import Flask, abort, request

BLOCK = 1 << 20
DIRECTORY = Path(os.environ.get("BENCH_PLAIN_DIR", "/tmp/bench-plain"))
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")

app = Flask(__name__)


@app.post("/upload/<name>")
def upload(name: str):  # noqa: ANN201
    if not NAME.fullmatch(name):
        abort(404)
    stream = request.stream
    written = 0
    with open(DIRECTORY / name, "wb") as f:
        while block := stream.read(BLOCK):
            f.write(block)
            written += len(block)
    return {"length": written}, 201
