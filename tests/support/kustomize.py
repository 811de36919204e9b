"""`kubectl kustomize` for tests: render a kustomization (no cluster needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from controller.demo.cluster import kubectl_path


def kustomize_build(path: Path) -> list[dict[str, Any]]:
    """The documents `kubectl kustomize PATH` renders; fails with kustomize's message."""
    proc = subprocess.run(
        [kubectl_path(), "kustomize", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"kubectl kustomize {path}: {proc.stderr.strip()}"
    return [d for d in yaml.safe_load_all(proc.stdout) if d]
