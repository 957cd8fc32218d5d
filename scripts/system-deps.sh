#!/usr/bin/env bash
# Installs what the test suite needs from Debian's packages when it is missing:
# Chromium (browser tests), PostgreSQL (database tests), Prometheus with promtool (operations
# tests) and nginx (cluster tests, make cluster). Needs root or sudo.
set -euo pipefail

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
{ [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; } || missing+=(prometheus)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "Installing from Debian packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "Run as root or install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
# The Debian package starts a cluster of its own; the tests start their own servers.
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
  $SUDO service postgresql stop >/dev/null 2>&1 || true
fi
if [[ " ${missing[*]} " == *" prometheus "* ]]; then
  $SUDO service prometheus stop >/dev/null 2>&1 || true
fi
# nginx's own server on port 80 likewise: the cluster tests and make cluster start theirs.
if [[ " ${missing[*]} " == *" nginx-light "* ]]; then
  $SUDO service nginx stop >/dev/null 2>&1 || true
fi
