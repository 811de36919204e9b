"""What the operator refuses, end to end: provider output that is not the clip asked for,
output URLs outside the provider, long provider error texts, and an unanswered create at
a provider that cannot list its jobs. The operator runs as a separate process against the
real API server, S3 server and provider protocol servers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from controller.api import vocabulary as v
from tests.integration.clips import mp4, probe_s3_clip, replicate_video, veo_video
from tests.integration.helpers import lose_completion, metric_sum, wait_project, wait_until
from tests.support.protocol import LocalHTTPServer, Reply
from tests.support.replicate_server import ReplicateServer
from tests.support.veo_server import VeoServer

HTML = b"<!doctype html><html><body><h1>Internal admin</h1></body></html>"
CUDA = "RuntimeError: CUDA error: an illegal memory access was encountered"
TRACEBACK = (
    "Traceback (most recent call last):\n"
    + '  File "/src/predict.py", line 120, in predict\n    frames = self.pipe(**inputs)\n' * 80
    + CUDA
)


class InternalService(LocalHTTPServer):
    """An HTML page on loopback: what a hostile output URL would point at."""

    def __init__(self) -> None:
        super().__init__()
        self.hits = 0

    def dispatch(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        with self.lock:
            self.hits += 1
        return Reply(200, HTML, {"Content-Type": "text/html"})


@pytest.fixture
def replicate() -> Iterator[ReplicateServer]:
    with ReplicateServer(latency_seconds=0.3, video_bytes=replicate_video) as server:
        yield server


def spec(limit: int = 3, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt": "A kite over a windy beach",
        "scenes": {"count": 1, "durationSeconds": 2},
        "planner": {"provider": "local"},
        "video": {"provider": "replicate"},
        "generateVideos": True,
        "retry": {"limit": limit, "backoff": {"initialSeconds": 1, "factor": 1, "maxSeconds": 1}},
    }
    out.update(extra)
    return out


def settled(cluster, ns: str, project: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        scenes = cluster.scenes(ns, project)
        st = (scenes[0].get("status") or {}) if scenes else {}
        return scenes[0] if st.get("phase") in ("Completed", "Failed") else None

    return wait_until(done, timeout=90, what=f"scene of {project} Completed or Failed")


def stored_keys(s3, request: pytest.FixtureRequest) -> list[str]:
    prefix = f"t/{request.node.name[:40]}"
    page = s3.client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix)
    return [o["Key"] for o in page.get("Contents", [])]


def event_messages(cluster, ns: str, name: str, reason: str) -> list[str]:
    return [e.message for e in cluster.events(ns, name) if e.reason == reason]


def no_crash(op) -> None:
    assert '"reconcile failed"' not in op.logs(), op.logs()[-3000:]


def test_output_url_at_an_internal_address_is_never_fetched_nor_stored(
    cluster, namespace, run_operator, s3, replicate, request
) -> None:
    with InternalService() as internal:
        replicate.output_url = lambda job: f"{internal.base_url}/admin/{job['id']}.mp4"
        op = run_operator(namespace, env=replicate.env())
        cluster.create_project(namespace, "ssrf", spec())
        scene = settled(cluster, namespace, "ssrf")
        err = scene["status"]["lastError"]
        assert scene["status"]["phase"] == "Failed", scene["status"]
        assert err["reason"] == v.Reason.INVALID_OUTPUT and "refused" in err["message"]
        assert internal.hits == 0  # the internal page was never even asked for
        assert len(replicate.created) == 1  # a refused URL is permanent: no job paid again
        assert stored_keys(s3, request) == []
        no_crash(op)


def test_output_that_is_not_a_video_is_retried_and_never_stored(
    cluster, namespace, run_operator, s3, replicate
) -> None:
    first: list[str] = []

    def html_then_video(job: dict[str, Any]) -> bytes:
        if not first or first[0] == job["id"]:
            first[:] = [job["id"]]
            return HTML
        return replicate_video(job)

    replicate.video_bytes = html_then_video
    op = run_operator(namespace, env=replicate.env())
    cluster.create_project(namespace, "html", spec())
    wait_project(cluster, namespace, "html", timeout=90)
    scene = cluster.scenes(namespace, "html")[0]
    name = scene["metadata"]["name"]
    retries = event_messages(cluster, namespace, name, v.Reason.RETRY_SCHEDULED)
    assert any(v.Reason.INVALID_OUTPUT in m and "not a readable video" in m for m in retries)
    assert len(replicate.created) == 2 and scene["status"]["attempts"] == 2
    info = probe_s3_clip(s3, scene["status"]["clip"]["key"])
    assert info.codec == "h264" and abs(info.duration_seconds - 2) < 0.2
    no_crash(op)


def test_a_clip_of_the_wrong_length_fails_without_paying_again(
    cluster, namespace, run_operator, s3, replicate, request
) -> None:
    replicate.video_bytes = lambda job: mp4("too long", 5, "16:9")
    op = run_operator(namespace, env=replicate.env())
    cluster.create_project(namespace, "long", spec())
    scene = settled(cluster, namespace, "long")
    err = scene["status"]["lastError"]
    assert scene["status"]["phase"] == "Failed"
    assert err["reason"] == v.Reason.INVALID_OUTPUT and "2s were asked" in err["message"]
    assert len(replicate.created) == 1
    assert stored_keys(s3, request) == []
    no_crash(op)


def test_an_object_at_the_key_that_is_not_a_video_is_not_adopted(
    cluster, namespace, run_operator, s3, replicate
) -> None:
    op = run_operator(namespace, env=replicate.env())
    cluster.create_project(namespace, "swap", spec())
    wait_project(cluster, namespace, "swap")
    op.stop()
    scene = cluster.scenes(namespace, "swap")[0]
    name, key = scene["metadata"]["name"], scene["status"]["clip"]["key"]
    # The status write of an upload was lost, and the object is not a video (any more).
    s3.client.put_object(Bucket=s3.bucket, Key=key, Body=HTML, ContentType="video/mp4")
    lose_completion(cluster, namespace, name)
    adopted_before = event_messages(cluster, namespace, name, v.Reason.CLIP_ADOPTED)
    op.start()
    op.wait_healthy()

    def regenerated() -> dict[str, Any] | None:
        s = cluster.scenes(namespace, "swap")[0]
        return s if (s.get("status") or {}).get("phase") == "Completed" else None

    s = wait_until(regenerated, timeout=60, what="scene regenerated")
    assert len(replicate.created) == 2
    refused = event_messages(cluster, namespace, name, v.Reason.INVALID_OUTPUT)
    assert refused and "not adopted" in refused[0]
    assert event_messages(cluster, namespace, name, v.Reason.CLIP_ADOPTED) == adopted_before
    info = probe_s3_clip(s3, s["status"]["clip"]["key"])
    assert info.codec == "h264"
    no_crash(op)


def test_a_6kb_traceback_ends_the_scene_failed_with_a_bounded_message(
    cluster, namespace, run_operator, s3, replicate
) -> None:
    assert len(TRACEBACK) > 6000
    replicate.prediction_outcomes = [f"failed:{TRACEBACK}", f"failed:{TRACEBACK}"]
    op = run_operator(namespace, env=replicate.env())
    cluster.create_project(namespace, "trace", spec(limit=2))
    scene = settled(cluster, namespace, "trace")
    st = scene["status"]
    err = st["lastError"]
    assert st["phase"] == "Failed" and err["reason"] == v.Reason.RETRIES_EXHAUSTED
    assert len(err["message"]) < 4096 and "characters cut" in err["message"]
    assert err["message"].endswith(CUDA)  # the line that says what failed is kept
    name = scene["metadata"]["name"]
    assert event_messages(cluster, namespace, name, v.Reason.RETRY_SCHEDULED)  # retried once
    failed = event_messages(cluster, namespace, name, v.Reason.GENERATION_FAILED)
    assert failed and failed[0].startswith(f"{v.Reason.RETRIES_EXHAUSTED}: 2 attempts failed")
    assert len(replicate.created) == 2 and st["attempts"] == 2
    assert len(json.dumps(st)) < 20_000
    no_crash(op)


def test_veo_unanswered_create_is_reported_as_may_be_orphaned_and_counted(
    cluster, namespace, run_operator, s3
) -> None:
    with VeoServer(latency_seconds=0.3, video_bytes=veo_video) as veo:
        veo.drop_connections_next = 1  # the first create gets no answer at all
        op = run_operator(namespace, env=veo.env())
        cluster.create_project(namespace, "veo", spec(video={"provider": "veo"}))
        wait_project(cluster, namespace, "veo", timeout=90)
        scene = cluster.scenes(namespace, "veo")[0]
        name = scene["metadata"]["name"]
        orphaned = event_messages(cluster, namespace, name, v.Reason.JOB_MAY_BE_ORPHANED)
        assert orphaned and "the create got no answer" in orphaned[0]
        assert "cannot list jobs" in orphaned[0]
        metrics = op.metrics()
        assert metric_sum(metrics, "scene_operator_orphan_window_total", outcome="again") == 1
        assert scene["status"]["attempts"] == 2 and len(veo.created) == 1
        no_crash(op)
