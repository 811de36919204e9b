"""S3 faults through a fault-injecting proxy in front of the S3 server (503 SlowDown, and
connections reset in the middle of an upload or after S3 stored it): no scene is ever
Completed without its object, and every scene eventually completes."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.integration.helpers import metric_sum
from tests.resilience.conftest import (
    PROJECTS,
    SCENES,
    all_settled,
    check_all_completed,
    check_completed_clip,
    create_projects,
    jobs_by_scene,
    phase,
    snapshot,
    tolerant,
    wait_for,
)
from tests.support.faults import FaultProxy
from tests.support.replicate_server import ReplicateServer

pytestmark = [pytest.mark.resilience, pytest.mark.integration]

# About a third of uploads and a sixth of HEADs and LISTs meet a fault; boto3's own retries
# (the operator allows 5 after the first try) absorb most of them, so the run starts with every PUT failing until the
# operator has seen a whole upload fail, to prove its own retry path too.
STEADY_RULES = {
    "PUT": {"slowdown": 0.15, "reset_request": 0.1, "reset_response": 0.07},
    "HEAD": {"slowdown": 0.1, "reset_response": 0.05},
    "GET": {"slowdown": 0.1, "reset_response": 0.05},
}
OPENING_RULES = {
    **STEADY_RULES,
    "PUT": {"slowdown": 0.4, "reset_request": 0.3, "reset_response": 0.3},
}


def test_s3_faults_never_complete_without_the_object(
    cluster, namespace, run_operator, s3, replicate: ReplicateServer, seed: int
) -> None:
    began = time.monotonic()
    with FaultProxy(s3.endpoint_url, seed=seed, rules=OPENING_RULES) as proxy:
        op = run_operator(
            namespace, env={**replicate.env(), "AWS_ENDPOINT_URL_S3": proxy.endpoint_url}
        )
        counts = create_projects(cluster, namespace, SCENES, PROJECTS, tag=namespace)
        names = list(counts)
        problems: list[str] = []
        samples = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal samples
            while not stop.wait(0.5):
                for scene in tolerant(lambda: cluster.scenes(namespace), []):
                    if phase(scene) == "Completed":
                        problems.extend(check_completed_clip(s3, scene))  # direct, no proxy
                samples += 1

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            # The operator's own retry path: a whole upload (all of boto3's attempts) fails.
            wait_for(
                lambda: (
                    metric_sum(
                        op.metrics(),
                        "scene_operator_s3_operations_total",
                        operation="put",
                        result="error",
                    )
                    >= 1
                ),
                timeout=60,
                interval=0.2,
                what="a failed upload seen by the operator",
            )
            with proxy.lock:
                proxy.rules = dict(STEADY_RULES)
            snap: Any = wait_for(
                lambda: all_settled(cluster, namespace, names),
                timeout=120 + 4 * SCENES,
                what="every project settled",
            )
        finally:
            stop.set()
            sampler.join(timeout=30)
        time.sleep(1.0)
        snap = snapshot(cluster, namespace, names)
        metrics = op.metrics()
        faults = {f"{m} {f}": n for (m, f), n in sorted(proxy.counts.items())}
    print(
        f"[resilience] {SCENES} scenes in {time.monotonic() - began:.1f}s: "
        f"{dict(snap.phases())}; S3 faults injected {faults}; "
        f"operator upload errors "
        f"{metric_sum(metrics, 'scene_operator_s3_operations_total', operation='put', result='error')}"
        f", UploadFailed events {metric_sum(metrics, 'scene_operator_events_total', reason='UploadFailed')}"
        f"; {samples} samples during the run"
    )
    assert op.alive() and op.starts == 1
    problems += check_all_completed(s3, snap, counts)
    assert not problems, "\n".join(problems)
    jobs, unknown = jobs_by_scene(snap, list(replicate.created))
    assert not unknown
    # S3 trouble must not cost a new provider job: the job's output is uploaded again.
    assert all(c == 1 for c in jobs.values()), f"jobs per scene: {jobs}"
