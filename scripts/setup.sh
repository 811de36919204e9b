#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: the control-plane binaries (built once, cached)
# and a virtualenv in .venv with the package and its test dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl; }
# promtool runs the alert tests (`promtool test rules`); Debian ships it in `prometheus`.
# Only the tool is wanted: where systemd runs, the server the package starts would take
# port 9090 (the operator's metrics port), so it is stopped and disabled again.
if ! command -v promtool >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
  if [ -d /run/systemd/system ]; then systemctl disable --now prometheus.service || true; fi
fi
# faketime (libfaketime) runs an operator process with its wall clock set wrong, for the
# never-pay-twice tests under clock skew (tests/resilience/test_clock_skew.py).
if ! command -v faketime >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends faketime
fi
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
