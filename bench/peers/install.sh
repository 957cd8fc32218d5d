#!/usr/bin/env bash
# Install the tus peers of the benchmarks into bench/.peers/ (git-ignored), from the registries:
#   node/  @tus/server + @tus/file-store + @tus/s3-store (npm)
#   venv/  tuspyserver + uvicorn (PyPI), a venv of its own so its deps never touch .venv
# The plain Flask app and the tus sink run with the project's own .venv (Flask, gunicorn).
# Idempotent: a second run only checks what is there.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
peers="$here/../.peers"
TUS_SERVER_VERSION="${TUS_SERVER_VERSION:-2.4.5}"
TUS_FILE_STORE_VERSION="${TUS_FILE_STORE_VERSION:-2.1.1}"
TUS_S3_STORE_VERSION="${TUS_S3_STORE_VERSION:-2.0.7}"
TUSPYSERVER_VERSION="${TUSPYSERVER_VERSION:-4.4.3}"
UVICORN_VERSION="${UVICORN_VERSION:-0.54.0}"
PYTHON="${PYTHON:-python3}"

mkdir -p "$peers/node"
stamp="$peers/node/.installed-$TUS_SERVER_VERSION-$TUS_FILE_STORE_VERSION-$TUS_S3_STORE_VERSION"
if [ ! -e "$stamp" ]; then
  echo "installing @tus/server@$TUS_SERVER_VERSION @tus/file-store@$TUS_FILE_STORE_VERSION" \
       "@tus/s3-store@$TUS_S3_STORE_VERSION"
  [ -e "$peers/node/package.json" ] || echo '{"private": true}' > "$peers/node/package.json"
  (cd "$peers/node" && npm install --no-audit --no-fund --loglevel=error \
     "@tus/server@$TUS_SERVER_VERSION" "@tus/file-store@$TUS_FILE_STORE_VERSION" \
     "@tus/s3-store@$TUS_S3_STORE_VERSION")
  touch "$stamp"
fi

stamp="$peers/venv/.installed-$TUSPYSERVER_VERSION-$UVICORN_VERSION"
if [ ! -e "$stamp" ]; then
  echo "installing tuspyserver==$TUSPYSERVER_VERSION uvicorn==$UVICORN_VERSION"
  "$PYTHON" -m venv "$peers/venv"
  "$peers/venv/bin/pip" install -q --disable-pip-version-check \
     "tuspyserver==$TUSPYSERVER_VERSION" "uvicorn==$UVICORN_VERSION"
  touch "$stamp"
fi
echo "peers ready in $peers"
