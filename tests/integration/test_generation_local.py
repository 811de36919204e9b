"""End to end with the local planner and the local renderer: no keys, real everything else."""

from __future__ import annotations

import tempfile
from pathlib import Path

from controller.providers.render import probe_clip
from tests.integration.helpers import Cluster, is_true, wait_project, wait_until


def test_project_with_local_providers_ends_ready_with_playable_clips(
    cluster: Cluster, namespace: str, run_operator, s3
) -> None:
    run_operator(namespace)
    cluster.create_project(
        namespace,
        "demo",
        {
            "prompt": "A lighthouse keeper finds a message in a bottle",
            "mode": "AdCreative",
            "scenes": {"count": 3, "durationSeconds": 2, "aspectRatio": "9:16"},
            "planner": {"provider": "local"},
            "video": {"provider": "local"},
            "generateVideos": True,
        },
    )
    project = wait_project(cluster, namespace, "demo")
    status = project["status"]
    assert status["phase"] == "Completed"
    assert (status["sceneCount"], status["completedScenes"], status["failedScenes"]) == (3, 3, 0)
    assert status["usage"]["generationsStarted"] == 3
    assert status["usage"]["secondsOfVideo"] == 6
    scenes = cluster.scenes(namespace, "demo")
    assert [s["metadata"]["name"] for s in scenes] == [f"demo-scene-00{i}" for i in (1, 2, 3)]
    for scene in scenes:
        st = scene["status"]
        assert st["phase"] == "Completed" and is_true(scene, "Ready")
        assert scene["metadata"]["ownerReferences"][0]["uid"] == project["metadata"]["uid"]
        key = st["originalVideoClipS3Key"]
        assert key == st["workingVideoClipS3Key"] == st["clip"]["key"]
        head = s3.client.head_object(Bucket=s3.bucket, Key=key)
        assert head["ContentLength"] == st["clip"]["size"]
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "clip.mp4"
            s3.client.download_file(s3.bucket, key, str(path))
            info = probe_clip(path)
        assert info.codec == "h264"
        assert abs(info.duration_seconds - 2) < 0.2
        assert info.height > info.width  # 9:16
    # Routine progress goes on the Project (SCENE_OPERATOR_SCENE_EVENTS=project, the
    # default): one Event per reason counting the 3 Scenes, posted once they are done.
    reasons = cluster.event_reasons(namespace, "demo-scene-001")
    assert "GenerationStarted" not in reasons and "ClipUploaded" not in reasons

    def routine() -> dict[str, int]:
        events = cluster.events(namespace, "demo")
        counts = {e.reason: e.count for e in events if e.involved_object.kind == "Project"}
        return counts if {"GenerationStarted", "ClipUploaded"} <= counts.keys() else {}

    counts = wait_until(routine, timeout=30, what="routine Events on the Project")
    assert counts["GenerationStarted"] == counts["ClipUploaded"] == 3
    assert "ScenesPlanned" in counts


def test_generate_videos_false_plans_only(
    cluster: Cluster, namespace: str, run_operator, s3
) -> None:
    op = run_operator(namespace)
    cluster.create_project(
        namespace,
        "plan-only",
        {"prompt": "City at dawn", "scenes": {"count": 2}, "planner": {"provider": "local"}},
    )
    project = wait_project(cluster, namespace, "plan-only")
    assert project["status"]["phase"] == "ScenesReady"
    assert is_true(project, "ScenesPlanned")
    scenes = cluster.scenes(namespace, "plan-only")
    assert len(scenes) == 2
    assert all(s["status"]["phase"] == "Pending" for s in scenes)
    assert "jobs_total" not in op.metrics() or 'outcome="started"' not in op.metrics()


def test_scene_events_warnings_posts_no_normal_scene_events(
    cluster: Cluster, namespace: str, run_operator, s3
) -> None:
    op = run_operator(namespace, {"SCENE_OPERATOR_SCENE_EVENTS": "warnings"})
    cluster.create_project(
        namespace,
        "quiet",
        {
            "prompt": "City at dawn",
            "scenes": {"count": 2, "durationSeconds": 1},
            "planner": {"provider": "local"},
            "video": {"provider": "local"},
            "generateVideos": True,
        },
    )
    project = wait_project(cluster, namespace, "quiet")
    assert project["status"]["completedScenes"] == 2
    for scene in cluster.scenes(namespace, "quiet"):
        assert cluster.event_reasons(namespace, scene["metadata"]["name"]) == []
    assert "ScenesPlanned" in cluster.event_reasons(namespace, "quiet")
    # still counted (and logged) where operators look
    assert 'scene_operator_events_total{reason="ClipUploaded"} 2.0' in op.metrics()
