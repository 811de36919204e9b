#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: the control-plane binaries (built once, cached)
# and a virtualenv in .venv with the package and its test dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl; }
if ! command -v kubectl >/dev/null; then
  echo "kubectl is needed (it ships with the machine image; or install it from your distribution)" >&2
  exit 1
fi
bash scripts/build-control-plane.sh >/dev/null
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  touch "$stamp"
fi
