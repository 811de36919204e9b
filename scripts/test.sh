#!/usr/bin/env bash
# The test command: set up what is missing, lint, then run every test (unit, integration
# against a real kube-apiserver + etcd, S3 server, provider protocol servers).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check controller tests benchmarks
.venv/bin/lint-imports --no-cache  # the layers contracts ([tool.importlinter] in pyproject.toml)
.venv/bin/mypy  # [tool.mypy] in pyproject.toml: strict for decide/ and api/
.venv/bin/python -m controller crds --output "$(mktemp -d)" >/dev/null
exec .venv/bin/python -m pytest -q -p no:cacheprovider --durations=15 "$@"
