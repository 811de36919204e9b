"""Deliveries reach the leader, against the real API server: the leader label moves with
the leadership (set by the leader on its own Pod, removed from the previous holder's Pod,
from a restarted container's own Pod at start, and on a normal stop), and a delivery
that reaches the standby is forwarded to the leader and processed at once.

No kubelet runs here: the Pods are API objects only (Pending), which is all the label
needs; the processes pretend to be their containers through POD_NAME and POD_IP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from controller.demo.free_ports import free_port
from controller.webhooks.receiver import PATH
from controller.webhooks.routing import ANNOTATION_ENDPOINT, LABEL_LEADER
from controller.webhooks.verify import sign
from tests.integration.clips import replicate_video
from tests.integration.election import election_env
from tests.integration.helpers import Cluster, metric_sum, wait_project, wait_until
from tests.support.replicate_server import ReplicateServer
from tests.support.webhook_sender import post

LEASE = "scene-operator"
LEASE_SECONDS = 4.5  # client-go's 15/10/2, scaled: a killed leader is replaced in ~5 s


@pytest.fixture
def replicate() -> Iterator[ReplicateServer]:
    with ReplicateServer(latency_seconds=1.0, video_bytes=replicate_video) as server:
        server.webhooks.drop = True  # only the deliveries this test sends arrive
        yield server


def make_pod(cluster: Cluster, namespace: str, name: str, labels: dict[str, str]) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "automountServiceAccountToken": False,  # no token controller runs here
            "containers": [{"name": "operator", "image": "scene-operator:test"}],
        },
    }
    # The ServiceAccount admission wants the namespace's `default` ServiceAccount; this
    # control plane's controller manager runs no ServiceAccount controller to create it.
    if not cluster.core.list_namespaced_service_account(namespace).items:
        account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}
        cluster.core.create_namespaced_service_account(namespace, account)
    cluster.core.create_namespaced_pod(namespace, body)


def leader_label(cluster: Cluster, namespace: str, name: str) -> str | None:
    labels = cluster.core.read_namespaced_pod(name, namespace).metadata.labels or {}
    return labels.get(LABEL_LEADER)


def env_for(namespace: str, pod: str, port: int, replicate: ReplicateServer) -> dict[str, str]:
    return {
        **election_env(namespace, LEASE, LEASE_SECONDS),
        **replicate.env(),
        "SCENE_OPERATOR_WEBHOOK_URL": f"http://127.0.0.1:{port}",
        "SCENE_OPERATOR_WEBHOOK_PORT": str(port),
        "POD_NAME": pod,
        "POD_NAMESPACE": namespace,
        "POD_IP": "127.0.0.1",
    }


def test_the_leader_label_moves_with_the_leadership_and_a_standby_forwards(
    cluster: Cluster, namespace: str, run_operator, replicate: ReplicateServer
) -> None:
    app = {"app.kubernetes.io/name": "scene-operator", "app.kubernetes.io/component": "operator"}
    make_pod(cluster, namespace, "op-a", app)
    # op-b led before its container restarted: its Pod still carries the label.
    make_pod(cluster, namespace, "op-b", {**app, LABEL_LEADER: LEASE})
    ports = {"a": free_port(), "b": free_port()}

    a = run_operator(namespace, env=env_for(namespace, "op-a", ports["a"], replicate))
    wait_until(lambda: metric_sum(a.metrics(), "scene_operator_leader") == 1, timeout=30)
    wait_until(lambda: leader_label(cluster, namespace, "op-a") == LEASE, timeout=10)
    # op-b's stale label goes when op-b's own process starts (a standby, first).
    b = run_operator(namespace, env=env_for(namespace, "op-b", ports["b"], replicate))
    wait_until(lambda: leader_label(cluster, namespace, "op-b") is None, timeout=10)
    assert metric_sum(b.metrics(), "scene_operator_leader") == 0
    assert leader_label(cluster, namespace, "op-a") == LEASE
    lease = cluster_lease(cluster, namespace)
    assert lease["metadata"]["annotations"][ANNOTATION_ENDPOINT] == f"http://127.0.0.1:{ports['a']}"

    # A delivery that reaches the standby is forwarded; the leader processes it at once.
    cluster.create_project(namespace, "routed", spec())
    job_id = wait_until(lambda: recorded_job(cluster, namespace), timeout=60, interval=0.1)
    time.sleep(replicate.latency_seconds + 0.2)  # the job is done at the provider
    body = json.dumps({"id": job_id, "status": "succeeded", "output": "x"}).encode()
    sent = time.monotonic()
    assert post(f"http://127.0.0.1:{ports['b']}{PATH}", body, signed(replicate, body)) == 200
    wait_project(cluster, namespace, "routed", timeout=30)
    took = time.monotonic() - sent
    print(f"\n[routing] delivery to the standby -> Project Ready: {took:.2f} s")
    assert took <= 5.0
    assert metric_sum(b.metrics(), "scene_operator_webhooks_total", outcome="forwarded") == 1
    assert metric_sum(a.metrics(), "scene_operator_webhooks_total", outcome="accepted") == 1

    # The leader dies: the new leader labels itself and unlabels the dead leader's Pod.
    a.kill()
    wait_until(lambda: metric_sum(b.metrics(), "scene_operator_leader") == 1, timeout=30)
    wait_until(lambda: leader_label(cluster, namespace, "op-b") == LEASE, timeout=10)
    wait_until(lambda: leader_label(cluster, namespace, "op-a") is None, timeout=10)

    # A normal stop removes the label before the Lease is released.
    b.stop()
    assert leader_label(cluster, namespace, "op-b") is None


def cluster_lease(cluster: Cluster, namespace: str) -> dict:
    from kubernetes import client as k8s

    api = k8s.CoordinationV1Api(cluster.core.api_client)
    lease = api.read_namespaced_lease(LEASE, namespace)
    return cluster.core.api_client.sanitize_for_serialization(lease)


def spec() -> dict[str, object]:
    return {
        "prompt": "A kite over a windy beach",
        "scenes": {"count": 1, "durationSeconds": 2},
        "planner": {"provider": "local"},
        "video": {"provider": "replicate"},
        "generateVideos": True,
    }


def recorded_job(cluster: Cluster, namespace: str) -> str | None:
    scenes = cluster.scenes(namespace, "routed")
    generation = (scenes[0].get("status") or {}).get("generation") if scenes else None
    return generation.get("jobId") if generation else None


def signed(replicate: ReplicateServer, body: bytes) -> dict[str, str]:
    ts = int(time.time())
    return {
        "Content-Type": "application/json",
        "webhook-id": "msg_routed",
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(replicate.webhooks.secret, "msg_routed", ts, body),
    }
