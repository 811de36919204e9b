#!/usr/bin/env bash
# The main job on an embedded default: local control plane, S3 server, local providers.
# --keep leaves it all running once the first Project is Ready (Ctrl-C stops it);
# `scene-operator demo --help` lists the other options.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m controller demo "$@"
