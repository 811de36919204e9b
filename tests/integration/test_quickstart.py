"""overlays/quickstart: the base plus MinIO and free providers, rendered by kustomize and
admitted by the API server (a server-side dry run), with what makes it work checked."""

from __future__ import annotations

from typing import Any

import yaml

from controller.demo.cluster import Kubectl
from tests.integration.helpers import wait_until
from tests.integration.test_manifests import MANIFESTS, by_kind
from tests.support.kustomize import kustomize_build

QUICKSTART = MANIFESTS.parent / "overlays" / "quickstart"


def env_of(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deploy,) = [
        d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "scene-operator"
    ]
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_the_quickstart_costs_nothing_and_points_the_operator_at_its_minio() -> None:
    docs = kustomize_build(QUICKSTART)
    env = env_of(docs)
    assert env["SCENE_OPERATOR_DEFAULT_PLANNER"] == "local"
    assert env["SCENE_OPERATOR_DEFAULT_VIDEO_PROVIDER"] == "local"
    assert env["SCENE_OPERATOR_CREATE_BUCKET"] == "true"  # the operator makes its bucket
    (service,) = [
        d for d in by_kind(docs, "Service") if d["metadata"]["name"] == "quickstart-minio"
    ]
    port = service["spec"]["ports"][0]["port"]
    assert env["AWS_ENDPOINT_URL_S3"] == f"http://quickstart-minio.scene-operator.svc:{port}"
    secret = env["AWS_SECRET_ACCESS_KEY"]["secretKeyRef"]
    (minio_secret,) = by_kind(docs, "Secret")
    assert secret["name"] == minio_secret["metadata"]["name"]
    assert secret["key"] in minio_secret["stringData"]


def namespace_active(kubectl: Kubectl, name: str) -> None:
    """The namespace exists and is not terminating (another module may have just deleted
    it: a dry run into a terminating namespace is refused)."""

    def active() -> bool:
        got = kubectl("get", "namespace", name, "-o", "jsonpath={.status.phase}", check=False)
        if got.returncode != 0:
            kubectl("create", "namespace", name, check=False)
            return False
        return got.stdout.strip() == "Active"

    wait_until(active, timeout=120, what=f"namespace {name} active")


def test_the_api_server_admits_the_quickstart(kubectl: Kubectl, crds_installed: list[str]) -> None:
    namespace_active(kubectl, "scene-operator")
    docs = [
        d
        for d in kustomize_build(QUICKSTART)
        # CRDs are applied first and on their own; the 1.20 test control plane serves the
        # PodDisruptionBudget only as policy/v1beta1 (test_manifests dry-runs it there).
        if d["kind"] not in ("CustomResourceDefinition", "PodDisruptionBudget")
    ]
    proc = kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(docs))
    applied = {
        line.split(" ")[0] for line in proc.stdout.splitlines() if "(server dry run)" in line
    }
    assert {
        "deployment.apps/quickstart-minio",
        "service/quickstart-minio",
        "secret/quickstart-minio",
        "deployment.apps/scene-operator",
    } <= applied, proc.stdout
