"""An uninstall never destroys data, against a real API server: deleting the CRDs (the
last, manual step of docs/operations.md, or a mistake) deletes every Project, and the
operator keeps the objects of each whatever its deletionPolicy (Event ClipsRetained),
releasing its finalizer so the CRD goes.

Deleting a CRD would break every other test on the session's control plane: this one
starts its own (same binaries) and runs the operator as its ServiceAccount with the base's
RBAC, so the read of the CRD is checked too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.api import vocabulary as v
from controller.demo.cluster import Kubectl, install_crds
from controller.demo.controlplane import ControlPlane
from tests.integration.helpers import wait_until
from tests.integration.test_manifests import IDENTITY_KINDS, PERMISSION_PROBLEMS, render
from tests.support.kubeconfigs import service_account_kubeconfig
from tests.support.operator_process import OperatorProcess
from tests.support.repo import REPO_ROOT

NS = "videos"


@pytest.fixture(scope="module")
def own_cluster(control_plane: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    if not isinstance(control_plane, ControlPlane):
        pytest.skip("deletes the CRDs: needs a control plane of its own (run without --kubeconfig)")
    with ControlPlane() as cp:
        kubectl = Kubectl(cp.kubeconfig, cache_dir=tmp_path_factory.mktemp("kubectl-cache"))
        install_crds(cp.kubeconfig, sorted((REPO_ROOT / "crds").glob("*.yaml")), kubectl=kubectl)
        docs = [d for d in render() if d["kind"] in IDENTITY_KINDS]
        kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
        kubectl("create", "namespace", NS)
        yield kubectl


def project(kubectl: Kubectl, name: str, policy: str) -> None:
    body = {
        "apiVersion": v.API_VERSION,
        "kind": v.PROJECT_KIND,
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "prompt": "A kite over a windy beach",
            "scenes": {"count": 1, "durationSeconds": 1},
            "planner": {"provider": "local"},
            "video": {"provider": "local"},
            "generateVideos": True,
            "assembly": {"enabled": False},
            "deletionPolicy": policy,
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(body))


def ready(kubectl: Kubectl, name: str) -> dict[str, Any] | None:
    out = kubectl("get", f"project/{name}", "-n", NS, "-o", "json", check=False)
    if out.returncode != 0:
        return None
    body = json.loads(out.stdout)
    conds = (body.get("status") or {}).get("conditions") or []
    return body if any(c["type"] == "Ready" and c["status"] == "True" for c in conds) else None


def test_deleting_the_crds_keeps_every_object_whatever_the_deletion_policy(
    own_cluster: Kubectl, s3: Any, tmp_path: Path
) -> None:
    kubectl = own_cluster
    sa = service_account_kubeconfig(kubectl, "scene-operator", "scene-operator", tmp_path / "sa")
    op = OperatorProcess(
        sa,
        env={
            **s3.env(),
            "SCENE_OPERATOR_BUCKET": s3.bucket,
            "SCENE_OPERATOR_S3_PREFIX": "t/uninstall",
            "SCENE_OPERATOR_WORKERS": "4",
        },
        log_path=tmp_path / "operator.log",
    )
    op.start()
    try:
        op.wait_healthy()
        project(kubectl, "purge-me", "Delete")
        project(kubectl, "keep-me", "Retain")
        for name in ("purge-me", "keep-me"):
            wait_until(lambda n=name: ready(kubectl, n), timeout=120, what=f"{name} Ready")
        uid = json.loads(kubectl("get", "project/purge-me", "-n", NS, "-o", "json").stdout)[
            "metadata"
        ]["uid"]
        prefix = f"t/uninstall/{NS}/{uid}/"
        before = s3.client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix).get("KeyCount", 0)
        assert before >= 1

        # The last step of an uninstall, done too early: the operator is still running.
        kubectl("delete", "-k", str(REPO_ROOT / "crds"), "--wait=false")
        wait_until(
            lambda: not kubectl("get", "crd", "-o", "name").stdout.strip(),
            timeout=60,
            what="both CRDs gone (the finalizer released at once)",
        )
        after = s3.client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix).get("KeyCount", 0)
        assert after == before, "objects deleted by an uninstall"
        events = json.loads(kubectl("get", "events", "-n", NS, "-o", "json").stdout)["items"]
        retained = [e for e in events if e["reason"] == v.Reason.CLIPS_RETAINED]
        assert [e["involvedObject"]["name"] for e in retained] == ["purge-me"], retained
        assert prefix in retained[0]["message"]
        assert not [e for e in events if e["reason"] == v.Reason.CLIPS_DELETED]
        assert not PERMISSION_PROBLEMS.search(op.logs())
    finally:
        op.stop()
        print(f"--- operator log (last 4000 chars) ---\n{op.logs()[-4000:]}")
