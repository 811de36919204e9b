"""Test-only cluster helpers: choose the test cluster, and act as a ServiceAccount."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from controller.demo.cluster import ControlPlaneError, ExistingCluster, Kubectl, named
from controller.demo.controlplane import ControlPlane

EXISTING_KUBECONFIG_ENV = "SCENE_OPERATOR_TEST_KUBECONFIG"


def from_env(kubeconfig: str | None = None) -> ControlPlane | ExistingCluster:
    """ExistingCluster if a kubeconfig is given (or in the env), else an unstarted ControlPlane."""
    kubeconfig = kubeconfig or os.environ.get(EXISTING_KUBECONFIG_ENV)
    if kubeconfig:
        return ExistingCluster(kubeconfig)
    from tests.support.repo import control_plane_binaries

    return ControlPlane(control_plane_binaries())


# --- other identities ---------------------------------------------------------------------
#
# Tests that must act as someone other than the admin (e.g. the operator as its
# ServiceAccount, to prove its RBAC is enough) get a real, bound ServiceAccount token from
# the TokenRequest API rather than a static token: it works the same on the local control
# plane (started with a service-account signing key) and on an existing cluster, and the
# API server authenticates it exactly as it does a Pod's projected token (user
# system:serviceaccount:NS:NAME, groups system:serviceaccounts[:NS], system:authenticated).


def kubeconfig_with_token(
    kubeconfig: str | os.PathLike[str],
    token: str,
    path: str | os.PathLike[str],
    *,
    user: str = "token-user",
) -> str:
    """Write a kubeconfig at ``path``: the cluster of ``kubeconfig``'s current context,
    authenticated only by the bearer ``token``. Returns the path."""
    source = Path(kubeconfig).expanduser().resolve()
    config = yaml.safe_load(source.read_text()) or {}
    current = named(config.get("contexts"), config.get("current-context")).get("context", {})
    cluster_name = current.get("cluster")
    cluster = dict(named(config.get("clusters"), cluster_name).get("cluster", {}))
    if not cluster.get("server"):
        raise ControlPlaneError(f"{source}: no server in the current context's cluster")
    ca = cluster.get("certificate-authority")
    if ca and not Path(ca).is_absolute():  # relative to the file it came from
        cluster["certificate-authority"] = str(source.parent / ca)
    out = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name or "cluster", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": user, "context": {"cluster": cluster_name or "cluster", "user": user}}
        ],
        "current-context": user,
    }
    target = Path(path)
    target.write_text(yaml.safe_dump(out, sort_keys=False))
    target.chmod(0o600)
    return str(target)


def service_account_token(
    kubectl: Kubectl, namespace: str, name: str, *, duration_seconds: int = 3600
) -> str:
    """A bound token for ServiceAccount ``namespace/name`` (TokenRequest API, via
    ``kubectl create token``); the ServiceAccount must exist."""
    proc = kubectl(
        "create", "token", name, f"--namespace={namespace}", f"--duration={duration_seconds}s"
    )
    token = proc.stdout.strip()
    if not token:
        raise ControlPlaneError(f"no token for serviceaccount {namespace}/{name}: {proc.stderr}")
    return token


def service_account_kubeconfig(
    kubectl: Kubectl,
    namespace: str,
    name: str,
    path: str | os.PathLike[str],
    *,
    duration_seconds: int = 3600,
) -> str:
    """A kubeconfig at ``path`` that authenticates as ServiceAccount ``namespace/name`` on
    ``kubectl``'s cluster (what the operator's Pod would use in-cluster). Returns the path."""
    token = service_account_token(kubectl, namespace, name, duration_seconds=duration_seconds)
    return kubeconfig_with_token(
        kubectl.kubeconfig, token, path, user=f"system:serviceaccount:{namespace}:{name}"
    )
