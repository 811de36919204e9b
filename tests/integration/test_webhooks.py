"""Replicate webhooks end to end: the operator process with its receiver on, the real
replicate SDK against the local protocol server, which calls back signed on completion.

- With webhooks on, each job is read at most once (the GET after its webhook), instead of
  being polled while it runs.
- A forged, stale, replayed or unknown webhook changes nothing (no GET, no status write).
- With webhooks lost, Scenes still complete through the slow safety-net poll.
"""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Iterator

import pytest
import yaml

from controller.demo.cluster import Kubectl
from controller.demo.free_ports import free_port
from controller.webhooks.receiver import PATH
from controller.webhooks.verify import sign
from tests.integration.clips import replicate_video
from tests.integration.helpers import Cluster, metric_sum, wait_project, wait_until
from tests.support.replicate_server import ReplicateServer
from tests.support.repo import REPO_ROOT
from tests.support.webhook_sender import new_secret, post

WEBHOOKS = "scene_operator_webhooks_total"


@pytest.fixture
def replicate() -> Iterator[ReplicateServer]:
    with ReplicateServer(latency_seconds=2.0, video_bytes=replicate_video) as server:
        yield server


def spec(count: int) -> dict[str, object]:
    return {
        "prompt": "A paper boat sails down a rainy street",
        "scenes": {"count": count, "durationSeconds": 2},
        "planner": {"provider": "local"},
        "video": {"provider": "replicate"},
        "generateVideos": True,
    }


def webhook_env(server: ReplicateServer, port: int, **extra: str) -> dict[str, str]:
    return {
        **server.env(),
        "SCENE_OPERATOR_WEBHOOK_URL": f"http://127.0.0.1:{port}",
        "SCENE_OPERATOR_WEBHOOK_PORT": str(port),
        **extra,
    }


def gets_per_job(server: ReplicateServer) -> collections.Counter[str]:
    with server.lock:
        return collections.Counter(
            path.rsplit("/", 1)[-1] for route, _, path in server.requests if route == "get"
        )


@pytest.mark.parametrize("latency", [2.0, 0.0], ids=["jobs-of-2s", "jobs-done-at-once"])
def test_with_webhooks_each_job_is_read_at_most_once(
    latency: float, cluster: Cluster, namespace: str, run_operator, replicate: ReplicateServer
) -> None:
    # Jobs done at once: a webhook may arrive before the job id is in status; it is then
    # answered 503 (pending) and Replicate's retry wakes the Scene.
    replicate.latency_seconds = latency
    replicate.webhooks.lag = 0.05 if latency else 0.0  # done at once: sent with the create
    op = run_operator(namespace, env=webhook_env(replicate, free_port()))
    cluster.create_project(namespace, "pushed", spec(3))
    completed_at: dict[str, float] = {}

    def all_completed() -> bool:
        for scene in cluster.scenes(namespace, "pushed"):
            if (scene.get("status") or {}).get("phase") == "Completed":
                completed_at.setdefault(scene["status"]["clip"]["jobId"], time.time())
        return len(completed_at) == 3

    try:
        wait_until(all_completed, timeout=120, interval=0.1, what="3 scenes Completed")
    except AssertionError:
        answers = {d.prediction_id: d.answers for d in replicate.webhooks.deliveries}
        print(f"deliveries: {answers}; GETs: {dict(gets_per_job(replicate))}")
        raise
    project = wait_project(cluster, namespace, "pushed")
    assert project["status"]["completedScenes"] == 3
    assert len(replicate.created) == 3
    jobs = {c["id"] for c in replicate.created}
    assert set(completed_at) == jobs
    # Each job was read once at most: after its webhook (the poll is only a safety net).
    gets = gets_per_job(replicate)
    assert set(gets) <= jobs and all(n <= 1 for n in gets.values()), gets
    deliveries = {d.prediction_id: d for d in replicate.webhooks.deliveries}
    assert set(deliveries) == jobs
    for d in deliveries.values():
        assert d.answers[-1] == 200 and set(d.answers[:-1]) <= {503}, d.answers
    pending = sum(len(d.answers) - 1 for d in deliveries.values())
    assert replicate.count("secret") == 1  # fetched once at start
    metrics = op.metrics()
    assert metric_sum(metrics, WEBHOOKS, outcome="accepted") == 3
    assert metric_sum(metrics, WEBHOOKS, outcome="pending") == pending
    assert metric_sum(metrics, WEBHOOKS) == 3 + pending
    delays = sorted(round(completed_at[j] - (deliveries[j].answered_at or 0), 2) for j in jobs)
    print(
        f"jobs of {latency}s: webhook answered -> Scene Completed seen (s): {delays}; "
        f"GETs per job: {sorted(gets.values())}; answered 503 (pending) first: {pending}"
    )


def test_forged_stale_replayed_and_unknown_webhooks_change_nothing(
    cluster: Cluster, namespace: str, run_operator, replicate: ReplicateServer
) -> None:
    replicate.latency_seconds = 12.0  # the job runs while the webhooks below arrive
    port = free_port()
    url = f"http://127.0.0.1:{port}{PATH}"
    op = run_operator(namespace, env=webhook_env(replicate, port))
    cluster.create_project(namespace, "guarded", spec(1))

    def recorded() -> dict[str, object] | None:
        scenes = cluster.scenes(namespace, "guarded")
        g = (scenes[0].get("status") or {}).get("generation") if scenes else None
        return scenes[0] if g and g.get("jobId") else None

    scene = wait_until(recorded, timeout=60, interval=0.1, what="job id recorded")
    job_id = scene["status"]["generation"]["jobId"]
    rv = scene["metadata"]["resourceVersion"]
    body = json.dumps({"id": job_id, "status": "succeeded", "output": "x"}).encode()

    def signed(data: bytes, webhook_id: str, secret: str | None = None, age: int = 0):
        ts = int(time.time()) - age
        return {
            "Content-Type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": sign(secret or replicate.webhooks.secret, webhook_id, ts, data),
        }

    def gets() -> int:
        return gets_per_job(replicate)[job_id]

    assert post(url, body, signed(body, "msg_forged", secret=new_secret())) == 401
    assert post(url, body, signed(body, "msg_forged2", secret=new_secret())) == 401
    assert post(url, body, signed(body, "msg_stale", age=600)) == 400
    assert post(url, body, {"Content-Type": "application/json"}) == 400
    # An authentic webhook that claims too much: it only wakes the Scene, which reads the
    # job once and finds it still running; nothing is written.
    authentic = signed(body, "msg_early")
    assert post(url, body, authentic) == 200
    wait_until(lambda: gets() == 1, timeout=10, interval=0.05, what="one GET after the webhook")
    assert post(url, body, authentic) == 200  # replayed: dropped
    other = json.dumps({"id": "not-ours", "status": "succeeded"}).encode()
    assert post(url, other, signed(other, "msg_other")) == 200  # unknown prediction
    # A fresh authentic one reads once more: so the three before it read nothing.
    assert post(url, body, signed(body, "msg_late")) == 200
    wait_until(lambda: gets() == 2, timeout=10, interval=0.05, what="a second GET")
    time.sleep(0.5)
    assert gets() == 2
    (scene,) = cluster.scenes(namespace, "guarded")
    assert scene["metadata"]["resourceVersion"] == rv  # no status write
    assert scene["status"]["phase"] == "Processing"
    # The forged ones made the operator fetch the secret again, once (a rotation check).
    assert replicate.count("secret") == 2
    metrics = op.metrics()
    assert metric_sum(metrics, WEBHOOKS, outcome="bad_signature") == 2
    assert metric_sum(metrics, WEBHOOKS, outcome="stale") == 1
    assert metric_sum(metrics, WEBHOOKS, outcome="malformed") == 1
    assert metric_sum(metrics, WEBHOOKS, outcome="replay") == 1
    assert metric_sum(metrics, WEBHOOKS, outcome="unknown") == 1
    assert metric_sum(metrics, WEBHOOKS, outcome="accepted") == 2
    # The real completion still finishes the Scene, with one more read.
    wait_project(cluster, namespace, "guarded", timeout=60)
    assert gets() == 3
    assert len(replicate.created) == 1


def test_with_webhooks_lost_scenes_complete_through_the_safety_net_poll(
    cluster: Cluster, namespace: str, run_operator, replicate: ReplicateServer
) -> None:
    replicate.webhooks.drop = True
    env = webhook_env(replicate, free_port(), SCENE_OPERATOR_WEBHOOK_POLL_SECONDS="3")
    op = run_operator(namespace, env=env)
    cluster.create_project(namespace, "lost", spec(2))
    project = wait_project(cluster, namespace, "lost", timeout=120)
    assert project["status"]["completedScenes"] == 2
    assert replicate.webhooks.deliveries == []
    assert len(replicate.created) == 2
    gets = gets_per_job(replicate)
    # Polled at the slow safety-net pace: a job of 2 s is read once or twice, not every 0.3 s.
    assert set(gets) == {c["id"] for c in replicate.created}
    assert all(1 <= n <= 3 for n in gets.values()), gets
    assert metric_sum(op.metrics(), WEBHOOKS) == 0


def test_component_objects_are_accepted_by_the_api_server(kubectl: Kubectl, namespace: str) -> None:
    component = REPO_ROOT / "manifests" / "components" / "webhooks"
    docs = []
    for name in ("service.yaml", "ingress.yaml", "networkpolicy.yaml"):
        (doc,) = [d for d in yaml.safe_load_all((component / name).read_text()) if d]
        doc["metadata"]["namespace"] = namespace
        docs.append(doc)
    proc = kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(docs))
    assert proc.stdout.count("(server dry run)") == 3, proc.stdout


def test_a_standby_answers_503_and_the_leader_completes_the_scene(
    cluster: Cluster, namespace: str, run_operator, replicate: ReplicateServer
) -> None:
    """Two processes with leader election: a completion delivered to the standby is
    answered 503 (Replicate retries, and a retry reaches the leader) and changes nothing;
    the leader's own webhook completes the Scene."""
    from tests.integration.election import election_env

    replicate.latency_seconds = 4.0
    ports = {"a": free_port(), "b": free_port()}
    common = election_env(namespace, "scene-operator")
    a = run_operator(namespace, env={**common, **webhook_env(replicate, ports["a"])})
    wait_until(lambda: metric_sum(a.metrics(), "scene_operator_leader") == 1, timeout=30)
    b = run_operator(namespace, env={**common, **webhook_env(replicate, ports["b"])})
    time.sleep(1.0)  # b campaigns, and loses
    assert metric_sum(b.metrics(), "scene_operator_leader") == 0
    cluster.create_project(namespace, "led", spec(1))

    def recorded() -> str | None:
        scenes = cluster.scenes(namespace, "led")
        g = (scenes[0].get("status") or {}).get("generation") if scenes else None
        return g.get("jobId") if g else None

    job_id = wait_until(recorded, timeout=60, interval=0.1, what="job id recorded")
    body = json.dumps({"id": job_id, "status": "succeeded", "output": "x"}).encode()
    ts = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "webhook-id": "msg_to_standby",
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(replicate.webhooks.secret, "msg_to_standby", ts, body),
    }
    assert post(f"http://127.0.0.1:{ports['b']}{PATH}", body, headers) == 503
    assert metric_sum(b.metrics(), WEBHOOKS, outcome="standby") == 1
    wait_project(cluster, namespace, "led", timeout=60)
    (delivery,) = replicate.webhooks.deliveries
    assert delivery.url == f"http://127.0.0.1:{ports['a']}{PATH}"  # created by the leader
    assert delivery.answers == [200]
    assert gets_per_job(replicate)[job_id] == 1
    assert metric_sum(b.metrics(), WEBHOOKS, outcome="accepted") == 0
    assert metric_sum(a.metrics(), WEBHOOKS, outcome="accepted") == 1
