"""The release: one version everywhere, and scripts/release.sh's dist/crds.yaml and
dist/install.yaml, applied to a real API server as a user installs them (CRDs first)."""

from __future__ import annotations

import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import controller
from controller.demo.cluster import Kubectl
from tests.support.kustomize import kustomize_build

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "ghcr.io/scene-operator/scene-operator"
NAMESPACE = "scene-operator"


def pyproject_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def ref(doc: dict[str, Any]) -> tuple[str, str, str | None]:
    return doc["kind"], doc["metadata"]["name"], doc["metadata"].get("namespace")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "release.sh"), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return out


def test_one_version() -> None:
    assert controller.__version__ == pyproject_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", controller.__version__)
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    assert re.search(
        rf"^## \[{re.escape(controller.__version__)}\] - \d{{4}}-\d\d-\d\d$", changelog, re.M
    )
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]


def test_release_splits_the_base_into_crds_and_the_operator(dist: Path) -> None:
    crds, install = docs(dist / "crds.yaml"), docs(dist / "install.yaml")
    assert {d["kind"] for d in crds} == {"CustomResourceDefinition"}
    assert "CustomResourceDefinition" not in {d["kind"] for d in install}
    # Together: the two kustomizations (crds/, manifests/), nothing lost or added; only
    # the image tag differs.
    base = kustomize_build(ROOT / "crds") + kustomize_build(ROOT / "manifests")
    assert sorted(map(ref, crds + install)) == sorted(map(ref, base))
    (deployment,) = [d for d in install if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{IMAGE}:{controller.__version__}"
    # the CRDs as generated (crds/*.yaml), unchanged
    generated = {d["metadata"]["name"]: d for p in (ROOT / "crds").glob("*.yaml") for d in docs(p)}
    assert {d["metadata"]["name"]: d for d in crds} == generated
    for name in ("crds.yaml", "install.yaml"):
        assert (dist / name).read_text().startswith(f"# scene-operator {controller.__version__}: ")


@pytest.fixture
def applied(kubectl: Kubectl, control_plane, crds_installed: list[str]) -> Iterator[list[tuple]]:
    """The objects the test applies: those it created are removed afterwards, the namespace
    waited for (when a controller manager runs to empty it; without one it would stay
    Terminating, and is left as it is)."""
    existing = set(
        kubectl("get", "namespace,clusterrole,clusterrolebinding", "-o", "name").stdout.split()
    )
    objects: list[tuple] = []
    yield objects
    cluster_scoped = {
        ("Namespace", "namespace"),
        ("ClusterRole", "clusterrole.rbac.authorization.k8s.io"),
        ("ClusterRoleBinding", "clusterrolebinding.rbac.authorization.k8s.io"),
    }
    namespace_created = f"namespace/{NAMESPACE}" not in existing
    for kind, name, ns in reversed(objects):
        if ns is not None:
            if namespace_created:  # else: they may have been there before
                kubectl("delete", kind.lower(), name, f"--namespace={ns}", "--ignore-not-found",
                        check=False)  # fmt: skip
            continue
        (full,) = [f for k, f in cluster_scoped if k == kind]
        if f"{full}/{name}" in existing:
            continue
        if kind == "Namespace":
            if control_plane.garbage_collection:
                kubectl("delete", "namespace", name, "--timeout=120s", check=False, timeout=150)
        else:
            kubectl("delete", kind.lower(), name, "--ignore-not-found", check=False)


def test_install_applies_to_the_api_server_crds_first(
    dist: Path, kubectl: Kubectl, applied: list[tuple], control_plane
) -> None:
    # 1. The CRDs (server-side: no last-applied annotation of their size), then Established.
    out = kubectl("apply", "--server-side", "-f", str(dist / "crds.yaml")).stdout
    names = [d["metadata"]["name"] for d in docs(dist / "crds.yaml")]
    for name in names:
        assert f"customresourcedefinition.apiextensions.k8s.io/{name} serverside-applied" in out
        kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    # 2. The operator.
    install = docs(dist / "install.yaml")
    served = kubectl("api-versions").stdout.split()
    if "policy/v1" not in served:
        # The test control plane (1.20) serves PodDisruptionBudget only as policy/v1beta1
        # (the release needs Kubernetes >= 1.21): the PDB is dry-run there in that version.
        (pdb,) = [d for d in install if d["kind"] == "PodDisruptionBudget"]
        install.remove(pdb)
    else:
        pdb = None
    applied.extend(ref(d) for d in install)
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(install))
    if pdb is not None:
        old = {**pdb, "apiVersion": "policy/v1beta1"}
        kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(old))
    # What the API server now holds is what the release says.
    deployment = kubectl.json("get", "deployment", "scene-operator", f"--namespace={NAMESPACE}")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{IMAGE}:{controller.__version__}"
    for kind, name, ns in applied:
        scope = [f"--namespace={ns}"] if ns else []
        kubectl("get", kind.lower(), name, *scope)
    # Applying again changes nothing.
    again = kubectl("apply", "-f", "-", input=yaml.safe_dump_all(install)).stdout
    assert all(line.endswith(" unchanged") for line in again.splitlines()), again
