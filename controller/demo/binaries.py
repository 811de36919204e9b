"""Where the control-plane binaries are: KUBEBUILDER_ASSETS, the cache, or PATH.

Nothing is built here and nothing is looked up relative to the repository: an installed
package has neither scripts/ nor crds/. From a source checkout,
scripts/build-control-plane.sh builds the binaries once into the cache.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from controller.demo.cluster import ControlPlaneError

CONTROL_PLANE_VERSION = "control-plane-1.20.2-p1"  # scripts/build-control-plane.sh's folder
NEEDED = ("etcd", "kube-apiserver")  # kube-controller-manager is optional (no GC without)


def cache_dir() -> Path:
    """Where scripts/build-control-plane.sh caches the binaries (the same rule)."""
    if os.environ.get("SCENE_OPERATOR_CACHE"):
        return Path(os.environ["SCENE_OPERATOR_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "scene-operator"


def _has(folder: Path, names: tuple[str, ...]) -> bool:
    return all(os.access(folder / name, os.X_OK) for name in names)


def binaries() -> Path:
    """Folder with etcd and kube-apiserver (and kube-controller-manager, if there is one):
    KUBEBUILDER_ASSETS (the envtest convention), else the cache that
    scripts/build-control-plane.sh fills, else both on PATH. Nothing is built here: an
    installed package has no scripts/, so it says how to get them."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and _has(Path(assets), NEEDED):
        return Path(assets)
    cached = cache_dir() / CONTROL_PLANE_VERSION
    if _has(cached, NEEDED):
        return cached
    found = {name: shutil.which(name) for name in (*NEEDED, "kube-controller-manager")}
    if found["etcd"] and found["kube-apiserver"]:
        cached.mkdir(parents=True, exist_ok=True)  # one folder, as the script makes it
        for name, path in found.items():
            if path:
                (cached / name).unlink(missing_ok=True)
                (cached / name).symlink_to(path)
        return cached
    raise ControlPlaneError(
        "no control-plane binaries (etcd and kube-apiserver 1.20, kube-controller-manager "
        f"optional) in KUBEBUILDER_ASSETS, {cached} or PATH. Get them one of these ways: "
        "from a source checkout, `bash scripts/build-control-plane.sh` builds them once "
        f"into {cached} (about 5 minutes); or point KUBEBUILDER_ASSETS at a folder holding "
        "them (envtest's `setup-envtest use 1.20.2 -p path`); or give the demo a cluster "
        "of yours: --kubeconfig PATH"
    )
