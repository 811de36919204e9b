"""kubectl bound to one kubeconfig, CRD installation, and a cluster someone else runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml


class ControlPlaneError(RuntimeError):
    pass


def kubectl_path() -> str:
    found = shutil.which("kubectl") or shutil.which("kubectl", path="/usr/bin")
    if not found:
        raise ControlPlaneError("kubectl not found on PATH")
    return found


class ExistingCluster:
    """Same surface as ControlPlane for a cluster someone else runs; start/stop do nothing."""

    def __init__(self, kubeconfig: str | os.PathLike[str]) -> None:
        self._kubeconfig = str(Path(kubeconfig).expanduser().resolve())
        config = yaml.safe_load(Path(self._kubeconfig).read_text()) or {}
        current = config.get("current-context")
        context = named(config.get("contexts"), current).get("context", {})
        self.server: str = (
            named(config.get("clusters"), context.get("cluster"))
            .get("cluster", {})
            .get("server", "")
        )
        self.token: str | None = (
            named(config.get("users"), context.get("user")).get("user", {}).get("token")
        )
        self.startup_seconds: float | None = 0.0
        self.garbage_collection = True  # a real cluster runs its controller manager

    @property
    def kubeconfig(self) -> str:
        return self._kubeconfig

    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": self._kubeconfig}

    def start(self) -> ExistingCluster:
        return self

    def stop(self) -> None:
        pass

    def __enter__(self) -> ExistingCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def restart_apiserver(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError("cannot stop or start the API server of an existing cluster")

    stop_apiserver = start_apiserver = restart_apiserver


def named(items: Iterable[dict[str, Any]] | None, name: str | None) -> dict[str, Any]:
    return next((i for i in items or () if i.get("name") == name), {})


# --- kubectl and CRDs ---------------------------------------------------------------------


class KubectlError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout: {self.stdout}\nstderr: {self.stderr}"


class Kubectl:
    """``kubectl(*args, input=None, check=True)`` bound to one kubeconfig."""

    def __init__(self, kubeconfig: str, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.binary = kubectl_path()
        # A private discovery cache: ports are reused across sessions with different CRDs.
        self.cache_dir = str(cache_dir) if cache_dir else None

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        argv = [self.binary, f"--kubeconfig={self.kubeconfig}"]
        if self.cache_dir:
            argv.append(f"--cache-dir={self.cache_dir}")
        argv += args
        proc = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, argv, proc.stdout, proc.stderr)
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)


def install_crds(
    kubeconfig: str,
    paths: Iterable[str | os.PathLike[str]],
    *,
    timeout: float = 60.0,
    kubectl: Kubectl | None = None,
) -> list[str]:
    """Server-side apply CRD files; wait until Established and listable; return the CRD names."""
    kubectl = kubectl or Kubectl(kubeconfig)
    names: list[str] = []
    for path in paths:
        for doc in yaml.safe_load_all(Path(path).read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                names.append(doc["metadata"]["name"])
        kubectl(
            "apply", "--server-side", "--force-conflicts",
            "--field-manager=scene-operator-tests", "-f", str(path),
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    for name in names:
        kubectl(
            "wait", "--for=condition=Established", f"crd/{name}",
            f"--timeout={max(1, int(deadline - time.monotonic()))}s",
        )  # fmt: skip
        # Established can precede the resource showing up in discovery by a moment.
        while (
            proc := kubectl("get", name, "--all-namespaces", "-o", "name", check=False)
        ).returncode:
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"CRD {name} established but not served: {proc.stderr}")
            time.sleep(0.2)
    return names
