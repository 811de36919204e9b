"""Where the repository is, for tests that read its files (manifests, crds/, docs/).
The package itself finds nothing relative to the repository: an installed one has none."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def control_plane_binaries() -> Path:
    """The control-plane binaries for the test suite: where the package finds them, else
    built once by the repository's script (which prints their folder last)."""
    import subprocess

    from controller.demo.cluster import ControlPlaneError
    from controller.demo.controlplane import binaries

    try:
        return binaries()
    except ControlPlaneError:
        script = REPO_ROOT / "scripts" / "build-control-plane.sh"
        proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            msg = f"{script} failed (exit {proc.returncode}):\n{proc.stderr}"
            raise ControlPlaneError(msg) from None
        return Path(lines[-1])
