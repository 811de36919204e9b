"""Working clips end to end (spec.edit): the real API server, the S3 server, the local
renderer and the operator process. A trim is derived from the original, never generated:
each step checks that no provider job was started and the original was not touched."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from controller.decide.edit import Edit
from tests.integration.helpers import (
    Cluster,
    condition,
    is_true,
    metric_sum,
    wait_project,
    wait_until,
)
from tests.support.video import durations, frame_at, frames

FPS = 12  # the local renderer's


def project_spec() -> dict[str, Any]:
    return {
        "prompt": "A lighthouse keeper finds a message in a bottle",
        "scenes": {"count": 1, "durationSeconds": 4},
        "planner": {"provider": "local"},
        "video": {"provider": "local"},
        "generateVideos": True,
        "repair": {"intervalSeconds": 10},  # every 2 s (conftest.py scales by 0.2)
    }


def download(s3: Any, key: str, folder: str) -> Path:
    path = Path(folder) / key.rsplit("/", 1)[-1]
    s3.client.download_file(s3.bucket, key, str(path))
    return path


def jobs_started(op: Any) -> float:
    return metric_sum(op.metrics(), "scene_operator_provider_jobs_total", outcome="started")


def diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


def test_trim_is_derived_from_the_original_without_a_provider_job(
    cluster: Cluster, namespace: str, run_operator, s3
) -> None:
    op = run_operator(namespace)
    cluster.create_project(namespace, "trim", project_spec())
    wait_project(cluster, namespace, "trim")
    (scene,) = cluster.scenes(namespace, "trim")
    name = scene["metadata"]["name"]
    original = scene["status"]["clip"]
    jobs = jobs_started(op)
    assert jobs == 1

    def scene_when(check) -> dict[str, Any]:
        def look() -> dict[str, Any] | None:
            (s,) = cluster.scenes(namespace, "trim")
            st = s.get("status") or {}
            current = st.get("observedGeneration") == s["metadata"]["generation"]
            return s if current and check(s, st) else None

        return wait_until(look, timeout=60, what=f"scene {name}")

    def unpaid(s: dict[str, Any]) -> None:
        st = s["status"]
        assert st["clip"] == {**original, "verifiedAt": st["clip"]["verifiedAt"]}
        assert st["originalVideoClipS3Key"] == original["key"]
        assert st["generationsStarted"] == 1 and jobs_started(op) == jobs

    # 1. trim 1 s from the start of the 4 s clip
    trim = Edit(trim_start=1.0)
    cluster.patch_scene(namespace, name, {"spec": {"edit": {"trimStartSeconds": 1}}})
    s = scene_when(lambda s, st: (st.get("workingClip") or {}).get("editHash") == trim.hash and is_true(s, "Ready"))  # fmt: skip
    st = s["status"]
    working = st["workingClip"]
    assert st["workingVideoClipS3Key"] == working["key"]
    assert working["key"] == original["key"].removesuffix(".mp4") + f"-w{trim.hash}.mp4"
    assert working["sourceKey"] == original["key"]
    assert abs(working["durationSeconds"] - 3.0) <= 1 / FPS
    unpaid(s)
    with tempfile.TemporaryDirectory() as d:
        src, out = download(s3, original["key"], d), download(s3, working["key"], d)
        assert abs(durations(out)["video"] - 3.0) <= 1 / FPS
        assert abs(durations(src)["video"] - 4.0) <= 1 / FPS  # the original is untouched
        head = s3.client.head_object(Bucket=s3.bucket, Key=working["key"])
        assert (head["ContentLength"], head["Metadata"]["sha256"]) == (
            working["size"],
            working["sha256"],
        )
        src_frames, first = frames(src), frames(out)[0][1]
        at_1s, at_0s = frame_at(src_frames, 1.0), frame_at(src_frames, 0.0)
        assert diff(first, at_1s) < 3.0
        assert diff(first, at_1s) < diff(first, at_0s)
    assert "ClipEdited" in cluster.event_reasons(namespace, name)

    # downstream: the film is assembled again, from the working clip
    def film_of_three_seconds() -> dict[str, Any] | None:
        p = cluster.project(namespace, "trim")
        final = (p.get("status") or {}).get("finalVideo") or {}
        return p if abs(final.get("durationSeconds", 0) - 3.0) < 0.2 else None

    project = wait_until(film_of_three_seconds, timeout=60, what="the film of the trimmed clip")
    assert is_true(project, "Ready")

    # 2. the working object deleted: derived again, for free
    s3.client.delete_object(Bucket=s3.bucket, Key=working["key"])

    def back() -> bool:
        try:
            s3.client.head_object(Bucket=s3.bucket, Key=working["key"])
        except s3.client.exceptions.ClientError:
            return False
        return True

    wait_until(back, timeout=60, what="the working clip derived again")
    s = scene_when(lambda s, st: is_true(s, "Ready"))
    assert s["status"]["workingVideoClipS3Key"] == working["key"]
    head = s3.client.head_object(Bucket=s3.bucket, Key=working["key"])
    assert head["ContentLength"] == s["status"]["workingClip"]["size"]
    unpaid(s)

    # 3. a trim longer than the clip: InvalidSpec, nothing changed
    too_long = Edit(trim_start=5.0)
    cluster.patch_scene(namespace, name, {"spec": {"edit": {"trimStartSeconds": 5}}})
    s = scene_when(lambda s, st: (condition(s, "Ready") or {}).get("reason") == "InvalidSpec")
    ready = condition(s, "Ready") or {}
    assert ready["status"] == "False" and "leaves nothing" in ready["message"]
    assert (condition(s, "Stalled") or {}).get("reason") == "InvalidSpec"
    assert s["status"]["workingVideoClipS3Key"] == working["key"]
    assert s["status"]["workingClip"]["editHash"] == trim.hash
    assert "InvalidSpec" in cluster.event_reasons(namespace, name)
    listing = s3.client.list_objects_v2(Bucket=s3.bucket, Prefix=original["key"].rsplit("/", 1)[0])
    assert not any(too_long.hash in o["Key"] for o in listing.get("Contents", []))
    unpaid(s)
    # the film keeps the last working clip
    assert film_of_three_seconds() is not None

    # 4. the edit removed: the working key is the original again
    cluster.patch_scene(namespace, name, {"spec": {"edit": None}})
    s = scene_when(
        lambda s, st: st.get("workingVideoClipS3Key") == original["key"] and is_true(s, "Ready")
    )
    assert "workingClip" not in s["status"] and "lastError" not in s["status"]
    unpaid(s)
