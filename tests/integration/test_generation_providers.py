"""Clip generation through the real replicate and google-genai SDKs, against local servers
that speak their HTTP protocols; the operator runs as a separate process."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.integration.clips import probe_s3_clip, replicate_video, veo_video
from tests.integration.helpers import (
    Cluster,
    condition,
    is_true,
    lose_completion,
    wait_project,
    wait_until,
)
from tests.support.replicate_server import ReplicateServer
from tests.support.veo_server import VeoServer


@pytest.fixture
def replicate() -> Iterator[ReplicateServer]:
    with ReplicateServer(latency_seconds=0.5, video_bytes=replicate_video) as server:
        yield server


@pytest.fixture
def veo() -> Iterator[VeoServer]:
    with VeoServer(latency_seconds=0.5, video_bytes=veo_video) as server:
        yield server


def project_spec(provider: str, count: int = 3, **extra: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "prompt": "A paper boat sails down a rainy street",
        "scenes": {"count": count, "durationSeconds": 2},
        "planner": {"provider": "local"},
        "video": {"provider": provider},
        "generateVideos": True,
        "retry": {"limit": 3, "backoff": {"initialSeconds": 1, "factor": 1, "maxSeconds": 1}},
    }
    spec.update(extra)
    return spec


def assert_all_clips_verified(
    cluster: Cluster, s3, namespace: str, project: str, count: int
) -> None:
    p = wait_project(cluster, namespace, project, timeout=120)
    st = p["status"]
    assert (st["phase"], st["sceneCount"], st["completedScenes"], st["failedScenes"]) == (
        "Completed",
        count,
        count,
        0,
    )
    for scene in cluster.scenes(namespace, project):
        ss = scene["status"]
        assert ss["phase"] == "Completed" and is_true(scene, "Ready")
        info = probe_s3_clip(s3, ss["originalVideoClipS3Key"])
        assert info.codec == "h264" and abs(info.duration_seconds - 2) < 0.2


@pytest.mark.parametrize("provider", ["replicate", "veo"])
def test_three_scenes_end_ready_with_decodable_clips(
    provider, cluster, namespace, run_operator, s3, replicate, veo
) -> None:
    server = replicate if provider == "replicate" else veo
    run_operator(namespace, env={**replicate.env(), **veo.env()})
    cluster.create_project(namespace, "boat", project_spec(provider))
    assert_all_clips_verified(cluster, s3, namespace, "boat", 3)
    assert len(server.created) == 3  # exactly one job per scene
    other = veo if provider == "replicate" else replicate
    assert other.created == []
    job_ids = {s["status"]["clip"]["jobId"] for s in cluster.scenes(namespace, "boat")}
    assert len(job_ids) == 3


def test_sigkill_with_jobs_in_flight_resumes_and_never_pays_twice(
    cluster, namespace, run_operator, s3, replicate
) -> None:
    replicate.latency_seconds = 4.0
    op = run_operator(namespace, env=replicate.env())
    cluster.create_project(namespace, "crash", project_spec("replicate", count=4))

    def all_recorded() -> bool:
        scenes = cluster.scenes(namespace, "crash")
        return len(scenes) == 4 and all(
            ((s.get("status") or {}).get("generation") or {}).get("jobId") for s in scenes
        )

    wait_until(all_recorded, timeout=30, interval=0.1, what="4 job ids recorded")
    op.kill()
    assert len(replicate.created) == 4
    time.sleep(1.0)
    op.start()
    op.wait_healthy()
    assert_all_clips_verified(cluster, s3, namespace, "crash", 4)
    assert len(replicate.created) == 4, replicate.created


def test_lost_status_write_is_adopted_without_a_new_job(
    cluster, namespace, run_operator, s3, replicate
) -> None:
    """An upload that succeeded but whose Completed write was lost: simulated by stopping
    the operator after completion and rewinding status to 'Processing' with no job."""
    op = run_operator(namespace, env=replicate.env())
    cluster.create_project(namespace, "adopt", project_spec("replicate", count=1))
    wait_project(cluster, namespace, "adopt")
    op.stop()
    scene = cluster.scenes(namespace, "adopt")[0]
    name = scene["metadata"]["name"]
    lose_completion(cluster, namespace, name)
    op.start()
    op.wait_healthy()

    def adopted() -> dict | None:
        s = cluster.scenes(namespace, "adopt")[0]
        return s if (s.get("status") or {}).get("phase") == "Completed" else None

    s = wait_until(adopted, timeout=30, what="scene adopted")
    assert s["status"]["clip"]["key"] == scene["status"]["clip"]["key"]
    assert len(replicate.created) == 1
    cluster.wait_event(namespace, name, "ClipAdopted")


def test_429_and_500_bursts_are_retried_and_complete(
    cluster, namespace, run_operator, s3, replicate
) -> None:
    replicate.fail_next_creates = [429, 500, 429]
    replicate.fail_next_gets = [500, 503]
    run_operator(namespace, env=replicate.env())
    cluster.create_project(namespace, "bursts", project_spec("replicate", count=2))
    assert_all_clips_verified(cluster, s3, namespace, "bursts", 2)
    assert len(replicate.created) == 2


def test_permanent_400_fails_with_the_providers_message(
    cluster, namespace, run_operator, s3, replicate
) -> None:
    replicate.fail_next_creates = [(422, "input.duration must be one of 4, 6, 8")]
    run_operator(namespace, env=replicate.env())
    cluster.create_project(namespace, "bad", project_spec("replicate", count=1))

    def failed() -> dict | None:
        p = cluster.project(namespace, "bad")
        return p if (p.get("status") or {}).get("failedScenes") == 1 else None

    p = wait_until(failed, timeout=60, what="1 failed scene")
    assert p["status"]["phase"] == "Failed"
    assert condition(p, "Ready")["status"] == "False"
    scene = cluster.scenes(namespace, "bad")[0]
    assert scene["status"]["phase"] == "Failed"
    assert "input.duration must be one of 4, 6, 8" in scene["status"]["lastError"]["message"]
    assert condition(scene, "Failed")["status"] == "True"
    cluster.wait_event(namespace, scene["metadata"]["name"], "GenerationFailed")
    assert replicate.created == []


def test_failed_prediction_is_retried_then_completes(
    cluster, namespace, run_operator, s3, replicate
) -> None:
    replicate.prediction_outcomes = ["failed:worker unavailable, please try again"]
    run_operator(namespace, env=replicate.env())
    cluster.create_project(namespace, "retry", project_spec("replicate", count=1))
    assert_all_clips_verified(cluster, s3, namespace, "retry", 1)
    scene = cluster.scenes(namespace, "retry")[0]
    assert scene["status"]["attempts"] == 2
    assert len(replicate.created) == 2
    cluster.wait_event(namespace, scene["metadata"]["name"], "RetryScheduled")


def test_generate_videos_false_makes_no_provider_call(
    cluster, namespace, run_operator, s3, replicate
) -> None:
    run_operator(namespace, env=replicate.env())
    cluster.create_project(
        namespace, "quiet", project_spec("replicate", count=2, generateVideos=False)
    )
    p = wait_project(cluster, namespace, "quiet")
    assert p["status"]["phase"] == "ScenesReady"
    time.sleep(2)
    assert replicate.created == [] and sum(replicate.counts.values()) == 0
