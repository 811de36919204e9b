"""Smoke test of the test control plane itself: API, RBAC, garbage collection, restart."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from controller.demo.cluster import ExistingCluster, Kubectl
from controller.demo.controlplane import ControlPlane, binaries


def configmap(name: str, namespace: str, **extra: object) -> str:
    metadata = {"name": name, "namespace": namespace, **extra}
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata})


def wait_gone(kubectl: Kubectl, *args: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while kubectl("get", *args, "--ignore-not-found", "-o", "name").stdout.strip():
        assert time.monotonic() < deadline, f"{args} still exists after {timeout:.0f}s"
        time.sleep(0.5)


def test_api_server_answers(kubectl: Kubectl) -> None:
    version = kubectl.json("version")
    assert version["serverVersion"]["gitVersion"].startswith("v1.")
    names = kubectl("get", "namespaces", "-o", "name").stdout.split()
    assert {"namespace/default", "namespace/kube-system"} <= set(names)


def test_configmap_round_trip(kubectl: Kubectl, namespace: str) -> None:
    manifest = json.loads(configmap("greeting", namespace))
    manifest["data"] = {"hello": "world"}
    kubectl("create", "-f", "-", input=json.dumps(manifest))
    got = kubectl.json("get", "configmap", "greeting", "-n", namespace)
    assert got["data"] == {"hello": "world"}


def test_rbac_is_enforced(kubectl: Kubectl, namespace: str) -> None:
    nobody = f"--as=system:serviceaccount:{namespace}:nobody"
    denied = kubectl("auth", "can-i", "create", "configmaps", "-n", namespace, nobody, check=False)
    assert denied.stdout.strip() == "no"
    assert denied.returncode == 1
    assert kubectl("auth", "can-i", "create", "configmaps", "-n", namespace).stdout.strip() == "yes"
    # Not just the review API: a real request as that identity is refused.
    forbidden = kubectl(
        "create", "configmap", "x", "-n", namespace, nobody, check=False
    )  # fmt: skip
    assert forbidden.returncode != 0
    assert "forbidden" in forbidden.stderr.lower()


def assert_garbage_collected(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "-f", "-", input=configmap("owner", namespace))
    owner_uid = kubectl.json("get", "configmap", "owner", "-n", namespace)["metadata"]["uid"]
    owner_ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}
    kubectl("create", "-f", "-", input=configmap("owned", namespace, ownerReferences=[owner_ref]))
    kubectl("delete", "configmap", "owner", "-n", namespace)  # background propagation
    wait_gone(kubectl, "configmap", "owned", "-n", namespace, timeout=60)


@pytest.mark.usefixtures("garbage_collection")
def test_garbage_collection(kubectl: Kubectl, namespace: str) -> None:
    assert_garbage_collected(kubectl, namespace)


def test_kubebuilder_assets_without_a_controller_manager_give_a_control_plane_without_gc(
    control_plane: ControlPlane | ExistingCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """envtest's asset bundles hold etcd and kube-apiserver only: that is enough to start."""
    if isinstance(control_plane, ExistingCluster):
        pytest.skip(
            "builds its own control plane from the local binaries: not run against an existing cluster (--kubeconfig)"
        )
    assets = tmp_path / "assets"
    assets.mkdir()
    for name in ("etcd", "kube-apiserver"):
        (assets / name).symlink_to((binaries() / name).resolve())
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(assets))
    assert binaries() == assets  # taken as it is, nothing built
    with ControlPlane() as cp:
        assert cp.garbage_collection is False
        kubectl = Kubectl(cp.kubeconfig, cache_dir=tmp_path / "cache")
        assert kubectl.json("version")["serverVersion"]["gitVersion"].startswith("v1.")
        kubectl("create", "-f", "-", input=configmap("no-kcm", "default"))
        assert kubectl.json("get", "configmap", "no-kcm", "-n", "default")["metadata"]["uid"]
        assert cp.dir is not None and not (cp.dir / "kube-controller-manager.log").exists()
    assert control_plane.garbage_collection  # the session's own control plane has one


# Last in this module on purpose: later tests then see a control plane that has already
# been through a restart, which is what the resilience tests need to be true anyway.
@pytest.mark.resilience
def test_restart_apiserver_keeps_state(
    control_plane: ControlPlane | ExistingCluster, kubectl: Kubectl, namespace: str
) -> None:
    if isinstance(control_plane, ExistingCluster):
        pytest.skip("cannot restart the API server of an existing cluster")
    kubectl("create", "-f", "-", input=configmap("survivor", namespace))
    server = control_plane.server
    began = time.monotonic()
    control_plane.restart_apiserver()
    assert time.monotonic() - began < 30
    assert control_plane.server == server  # same port: clients keep their kubeconfig
    kubectl("get", "configmap", "survivor", "-n", namespace)  # state lives in etcd
    # The controller manager reconnects on its own: garbage collection still works.
    if control_plane.garbage_collection:
        assert_garbage_collected(kubectl, namespace)
