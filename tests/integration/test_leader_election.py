"""Two operator processes with leader election on one Lease: one works, the other waits
warm; a normal stop hands over at once; shards whose namespaces overlap are refused.
(SIGKILL and SIGSTOP of the leader: tests/resilience/test_leader_failover.py.)"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime

from controller.api import vocabulary as v
from tests.integration.clips import replicate_video
from tests.integration.election import (
    TaggedReplicate,
    election_env,
    lease_spec,
    max_running,
)
from tests.integration.helpers import api_writes, condition, is_true, metric_sum, wait_until
from tests.support.operator_process import OperatorProcess

LATENCY = 3.0  # seconds a provider job runs
CONCURRENCY = 4  # SCENE_OPERATOR_CONCURRENCY_REPLICATE of each process
BUDGET = 4


def spec(prompt: str, count: int, **extra: object) -> dict:
    return {
        "prompt": prompt,
        "scenes": {"count": count, "durationSeconds": 1},
        "planner": {"provider": "local"},
        "video": {"provider": "replicate"},
        "generateVideos": True,
        **extra,
    }


def log_time(text: str, message: str) -> float:
    """Wall time of the last JSON log record with this message."""
    (last, *_) = [
        json.loads(line)["time"] for line in reversed(text.splitlines()) if f'"{message}"' in line
    ]
    return datetime.fromisoformat(last).timestamp()


def leader_events(cluster, namespace: str) -> list[str]:
    return [
        e.message
        for e in sorted(cluster.events(namespace, "scene-operator"), key=lambda e: e.metadata.name)
        if e.reason == v.Reason.LEADER_ELECTION and e.involved_object.kind == "Lease"
    ]


def test_two_processes_one_leader_one_job_per_scene_and_limits_kept(
    cluster, namespace, run_operator, s3, kubectl
) -> None:
    with TaggedReplicate(["a", "b"], latency_seconds=LATENCY, video_bytes=replicate_video) as rep:
        common = {
            **election_env(namespace, "scene-operator"),
            "SCENE_OPERATOR_CONCURRENCY_REPLICATE": str(CONCURRENCY),
        }
        a = run_operator(namespace, env={**common, **rep.env_for("a")})
        wait_until(
            lambda: metric_sum(a.metrics(), "scene_operator_leader") == 1,
            timeout=30,
            what="a leads",
        )
        b = run_operator(namespace, env={**common, **rep.env_for("b")})
        time.sleep(1.0)  # b campaigns (and must lose) before any work exists
        assert metric_sum(b.metrics(), "scene_operator_leader") == 0

        # 20 Scenes: 14 in one Project, 6 in a Project whose budget allows 4 jobs.
        cluster.create_project(namespace, "many", spec("A heron fishing at dawn", 14))
        cluster.create_project(
            namespace, "capped", spec("A fox in fresh snow", 6, budget={"maxGenerations": BUDGET})
        )

        def done() -> bool:
            many, capped = cluster.project(namespace, "many"), cluster.project(namespace, "capped")
            return (
                is_true(many, "Ready")
                and (capped.get("status") or {}).get("completedScenes") == BUDGET
                and is_true(capped, "BudgetExhausted")
            )

        wait_until(done, timeout=150, interval=1.0, what="every Scene done or capped")
        time.sleep(2 * LATENCY)  # anything the standby (or a late start) would do shows now

        scenes = cluster.scenes(namespace)
        assert len(scenes) == 20
        jobs = Counter(job["input"]["prompt"] for job in rep.created)
        by_scene = {s["metadata"]["name"]: jobs[s["spec"]["prompt"]] for s in scenes}
        assert sum(jobs.values()) == len(rep.created)  # every job belongs to a Scene
        duplicates = {n: c for n, c in by_scene.items() if c > 1}
        assert not duplicates, f"paid twice: {duplicates}"
        many = [n for n in by_scene if n.startswith("many-")]
        capped = [n for n in by_scene if n.startswith("capped-")]
        assert all(by_scene[n] == 1 for n in many)
        assert sum(by_scene[n] for n in capped) == BUDGET  # budget.maxGenerations kept
        project = cluster.project(namespace, "capped")
        assert project["status"]["usage"]["generationsStarted"] == BUDGET
        peak = max_running(list(rep.created), LATENCY)
        print(f"\n[leader] provider concurrency peak {peak} (limit {CONCURRENCY})")
        assert peak <= CONCURRENCY, f"{peak} jobs ran at once at the provider"

        # Only the leader called the provider and wrote to the API server.
        assert rep.calls_by("b") == []
        assert {label for _, label, _ in rep.calls} == {"a"}
        assert api_writes(b.metrics()) == 0
        assert api_writes(a.metrics()) > 0

        # The Lease as client-go writes it, and one hand-over Event.
        lease = lease_spec(cluster, namespace, "scene-operator")
        assert lease["leaseDurationSeconds"] == 15
        assert lease["leaseTransitions"] == 0
        assert lease["acquireTime"] and lease["renewTime"] > lease["acquireTime"]
        (message,) = leader_events(cluster, namespace)
        assert message == f"{lease['holderIdentity']} became leader"
        assert metric_sum(a.metrics(), "scene_operator_lease_transitions") == 0

        # A normal stop (rolling update, drain) releases the Lease: b takes over at its
        # next retry, not after the lease duration.
        stopped = time.monotonic()
        a.stop()
        wait_until(
            lambda: metric_sum(b.metrics(), "scene_operator_leader") == 1,
            timeout=15,
            interval=0.1,
            what="b leads",
        )
        took = time.monotonic() - stopped
        released = log_time(a.logs(), "released the lease")
        elected = log_time(b.logs(), "became leader")
        print(
            f"[leader] hand-over after a normal stop: {took:.1f}s after SIGTERM, "
            f"{elected - released:.2f}s after a released the Lease"
        )
        # Released, the Lease is taken at the standby's next retry (2 s x 1.2 jitter), not
        # after the lease duration (15 s) that a Lease left to expire would need.
        assert 0 < elected - released < 2.0 * 1.2 + 2.0
        lease = lease_spec(cluster, namespace, "scene-operator")
        assert lease["leaseTransitions"] == 1
        assert len(leader_events(cluster, namespace)) == 2
        assert metric_sum(b.metrics(), "scene_operator_lease_transitions") == 1
        # The new leader re-lists nothing it need not, and starts no job: all is done.
        time.sleep(2.0)
        assert len(rep.created) == sum(jobs.values())
        assert condition(cluster.project(namespace, "many"), "Ready")["status"] == "True"


def test_overlapping_shards_are_refused_naming_the_namespace(
    cluster, namespace, run_operator, kubectl, kubeconfig, s3, tmp_path
) -> None:
    """Shard a serves this namespace; shard b claims it too (with another): b must refuse
    to start and say which namespace; shard c, on another namespace, runs alongside."""
    other = f"{namespace}-x"[:63]
    kubectl("create", "namespace", other)
    try:
        shard_a = run_operator(namespace, env=election_env(namespace, "shard-a"))
        wait_until(
            lambda: metric_sum(shard_a.metrics(), "scene_operator_leader") == 1,
            timeout=30,
            what="shard a leads",
        )
        shard_b = OperatorProcess(
            kubeconfig,
            env={**s3.env(), **election_env(namespace, "shard-b")},
            namespaces=[other, namespace],
            log_path=tmp_path / "shard-b.log",
        ).start()
        assert shard_b.proc is not None
        code = shard_b.proc.wait(timeout=60)
        log = shard_b.logs()
        assert code == 78, log[-3000:]
        refusal = [json.loads(line) for line in log.splitlines() if "must not overlap" in line]
        assert refusal, log[-3000:]
        message = refusal[-1]["message"]
        assert f"namespace '{namespace}' already served by shard 'shard-a'" in message
        assert other not in message.split("claims", 1)[1]  # only the overlapping one is named
        # b released its Lease on the way out; a kept working.
        assert not lease_spec(cluster, namespace, "shard-b").get("holderIdentity")
        assert shard_a.alive()
        assert metric_sum(shard_a.metrics(), "scene_operator_leader") == 1

        shard_c = run_operator(other, env=election_env(namespace, "shard-c"))
        wait_until(
            lambda: metric_sum(shard_c.metrics(), "scene_operator_leader") == 1,
            timeout=30,
            what="shard c leads",
        )
        time.sleep(1.0)
        assert shard_c.alive() and shard_a.alive()
    finally:
        kubectl("delete", "namespace", other, "--wait=false", "--ignore-not-found", check=False)
