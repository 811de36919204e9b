#!/usr/bin/env bash
# The main job on an embedded default: local control plane, S3 server, local providers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m controller demo "$@"
