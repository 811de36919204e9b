#!/usr/bin/env bash
# The test command: set up what is missing, lint, then run every test (unit, integration
# against a real kube-apiserver + etcd, S3 server, provider protocol servers).
#
# The tests run on TEST_WORKERS parallel pytest-xdist workers (default 4; the integration
# tests mostly wait), each with its own control plane and S3 server (session fixtures are
# per worker); the timing-sensitive tests share one worker (tests/conftest.py). Arguments
# go to pytest after these options, so `-n 0` runs everything in this one process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check controller tests benchmarks
.venv/bin/ruff format --check controller tests benchmarks
.venv/bin/lint-imports --no-cache  # the layers contracts ([tool.importlinter] in pyproject.toml)
.venv/bin/mypy  # [tool.mypy] in pyproject.toml: strict for decide/ and api/
.venv/bin/python -m controller crds --output "$(mktemp -d)" >/dev/null
exec .venv/bin/python -m pytest -q -p no:cacheprovider --durations=15 \
  -n "${TEST_WORKERS:-4}" --dist loadgroup "$@"
