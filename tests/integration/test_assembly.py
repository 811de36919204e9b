"""The final video end to end: real API server, S3 server, local planner and renderer."""

from __future__ import annotations

import glob
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from botocore.exceptions import ClientError

from controller.api import vocabulary as v
from tests.integration.helpers import (
    Cluster,
    api_writes,
    condition,
    is_true,
    metric_sum,
    wait_project,
    wait_until,
)
from tests.support.video import durations, frame_at, frames, tone

INTERVAL = 2  # seconds between drift checks:
SPEC_INTERVAL = 10  # repair.intervalSeconds (the schema's minimum) x 0.2 (conftest.py)
SECONDS = 2  # per clip; the local renderer draws 12 frames a second
FPS = 12


def spec(count: int = 3, **extra: object) -> dict[str, object]:
    s: dict[str, object] = {
        "prompt": "A paper boat sails down a rainy street",
        "mode": "AdCreative",
        "scenes": {"count": count, "durationSeconds": SECONDS},
        "planner": {"provider": "local"},
        "video": {"provider": "local"},
        "generateVideos": True,
        "repair": {"intervalSeconds": SPEC_INTERVAL},
    }
    s.update(extra)
    return s


@pytest.fixture
def files() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def download(s3: Any, key: str, dest: Path) -> Path:
    s3.client.download_file(s3.bucket, key, str(dest))
    return dest


def check_film(
    s3: Any, project: dict, scenes: list[dict], folder: Path, *, exact: bool = True
) -> None:
    """The film in S3 is the clips, in order: length, decoding, each clip's middle frame
    (bit for bit when remuxed; close, when re-encoded, for the clips of the film's size)."""
    final = project["status"]["finalVideo"]
    film = download(s3, final["s3Key"], folder / "film.mp4")
    head = s3.client.head_object(Bucket=s3.bucket, Key=final["s3Key"])
    assert head["ContentLength"] == final["size"] == film.stat().st_size
    assert head["Metadata"]["sha256"] == final["sha256"]
    clips = [
        download(s3, sc["status"]["clip"]["key"], folder / f"c{i}.mp4")
        for i, sc in enumerate(scenes)
    ]
    clip_lengths = [durations(c)["video"] for c in clips]
    total = sum(clip_lengths)
    assert abs(durations(film)["video"] - total) <= len(clips) / FPS
    assert abs(final["durationSeconds"] - total) <= len(clips) / FPS
    film_frames = frames(film)  # decodes end to end
    assert len(film_frames) == round(total * FPS)
    start = 0.0
    for clip, seconds in zip(clips, clip_lengths, strict=True):
        mid = seconds / 2
        got, want = frame_at(film_frames, start + mid), frame_at(frames(clip), mid)
        if exact:
            assert np.array_equal(got, want)
        else:  # scaled: compare the average colour of the picture
            assert np.abs(got.mean(axis=(0, 1)) - want.mean(axis=(0, 1))).max() < 8
        start += seconds


def jobs_started(op: Any) -> float:
    return metric_sum(op.metrics(), "scene_operator_provider_jobs_total", outcome="started")


def s3_ops(op: Any, operation: str) -> float:
    return metric_sum(op.metrics(), "scene_operator_s3_operations_total", operation=operation)


def film_of(cluster: Cluster, ns: str, name: str, other_than: str | None = None) -> dict | None:
    p = cluster.project(ns, name)
    final = (p.get("status") or {}).get("finalVideo") or {}
    if is_true(p, "Ready") and final and final.get("inputsHash") != other_than:
        return p
    return None


def test_a_three_scene_project_gets_its_final_video_and_keeps_it_without_writes(
    cluster: Cluster, namespace: str, run_operator, s3, kubectl, files: Path
) -> None:
    op = run_operator(namespace)
    manifest = {
        "apiVersion": v.API_VERSION,
        "kind": v.PROJECT_KIND,
        "metadata": {"name": "boat"},
        "spec": spec(),
    }
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    project = wait_project(cluster, namespace, "boat", timeout=120)
    st = project["status"]
    assert st["phase"] == "Completed" and is_true(project, "Assembled")
    assert condition(project, "Assembled")["reason"] == "VideoAssembled"
    assert "final video assembled" in condition(project, "Ready")["message"]
    final = st["finalVideo"]
    prefix = (
        f"t/{'test_a_three_scene_project_gets_its_final_video_and_keeps_it_without_writes'[:40]}"
    )
    uid = project["metadata"]["uid"]
    assert final["s3Key"] == f"{prefix}/{namespace}/{uid}/final/{final['inputsHash']}.mp4"
    scenes = cluster.scenes(namespace, "boat")
    assert len(scenes) == 3
    check_film(s3, project, scenes, files)
    assert cluster.event_reasons(namespace, "boat").count("VideoAssembled") == 1
    assert metric_sum(op.metrics(), "scene_operator_assemblies_total", outcome="copy") == 1

    # Healthy: the same manifest applied again, then several drift intervals: no API
    # write, no HEAD, no upload, no new job.
    time.sleep(1.5)
    before, jobs = op.metrics(), jobs_started(op)
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    time.sleep(INTERVAL * 3)
    after = op.metrics()
    assert api_writes(after) - api_writes(before) == 0
    for operation in ("head", "put", "get"):
        name = "scene_operator_s3_operations_total"
        assert metric_sum(after, name, operation=operation) == metric_sum(
            before, name, operation=operation
        ), operation
    assert jobs_started(op) == jobs == 3
    assert cluster.project(namespace, "boat")["status"]["finalVideo"] == final


def test_a_changed_scene_rebuilds_the_film_under_a_new_key(
    cluster: Cluster, namespace: str, run_operator, s3, files: Path
) -> None:
    run_operator(namespace)
    cluster.create_project(namespace, "edit", spec())
    old = wait_until(lambda: film_of(cluster, namespace, "edit"), timeout=120, what="first film")
    old_final = old["status"]["finalVideo"]
    scene = cluster.scenes(namespace, "edit")[1]
    cluster.patch_scene(
        namespace, scene["metadata"]["name"], {"spec": {"prompt": "A paper boat in a storm drain"}}
    )
    new = wait_until(
        lambda: film_of(cluster, namespace, "edit", other_than=old_final["inputsHash"]),
        timeout=90,
        what="the film rebuilt",
    )
    final = new["status"]["finalVideo"]
    assert final["s3Key"] != old_final["s3Key"] and final["sha256"] != old_final["sha256"]
    scenes = cluster.scenes(namespace, "edit")
    assert scenes[1]["status"]["clip"]["key"] != scene["status"]["clip"]["key"]
    check_film(s3, new, scenes, files)
    # the old film stays where it was (Retain); the new one is the one recorded
    s3.client.head_object(Bucket=s3.bucket, Key=old_final["s3Key"])
    assert cluster.event_reasons(namespace, "edit").count("VideoAssembled") == 2


@pytest.mark.parametrize("how", ["deleted", "overwritten"])
def test_a_missing_or_changed_film_is_rebuilt_with_no_provider_job(
    how: str, cluster: Cluster, namespace: str, run_operator, s3, files: Path
) -> None:
    op = run_operator(namespace)
    cluster.create_project(namespace, "lost", spec(count=2))
    project = wait_until(lambda: film_of(cluster, namespace, "lost"), timeout=120, what="film")
    final = project["status"]["finalVideo"]
    jobs = jobs_started(op)
    assert jobs == 2
    if how == "deleted":
        s3.client.delete_object(Bucket=s3.bucket, Key=final["s3Key"])
    else:
        s3.client.put_object(Bucket=s3.bucket, Key=final["s3Key"], Body=b"not a video")

    def rebuilt() -> dict | None:
        p = film_of(cluster, namespace, "lost")
        if p is None or "FinalVideoMissing" not in cluster.event_reasons(namespace, "lost"):
            return None
        try:  # the Event comes before the rebuilt film's PUT: a 404 here means "not yet"
            head = s3.client.head_object(Bucket=s3.bucket, Key=final["s3Key"])
        except ClientError as e:
            if e.response["Error"]["Code"] not in ("404", "NoSuchKey"):
                raise
            return None
        return p if head["Metadata"].get("sha256") == p["status"]["finalVideo"]["sha256"] else None

    p = wait_until(rebuilt, timeout=INTERVAL * 3 + 60, what="the film rebuilt in S3")
    assert p["status"]["finalVideo"]["s3Key"] == final["s3Key"]  # same inputs, same key
    assert p["status"]["finalVideo"]["sha256"] == final["sha256"]  # and the same bytes
    check_film(s3, p, cluster.scenes(namespace, "lost"), files)
    assert jobs_started(op) == jobs  # nothing paid again
    assert cluster.event_reasons(namespace, "lost").count("VideoAssembled") == 2


def test_a_music_video_gets_its_song_for_exactly_the_film(
    cluster: Cluster, namespace: str, run_operator, s3, files: Path
) -> None:
    song_key = f"songs/{namespace}/song.wav"
    s3.client.upload_file(
        str(tone(files / "song.wav", 2.5, hz=330, level=10_000)), s3.bucket, song_key
    )
    run_operator(namespace)
    cluster.create_project(
        namespace,
        "song",
        spec(count=2, mode="MusicVideo", assembly={"audio": {"key": song_key}}),
    )
    project = wait_until(lambda: film_of(cluster, namespace, "song"), timeout=120, what="film")
    film = download(s3, project["status"]["finalVideo"]["s3Key"], files / "film.mp4")
    got = durations(film)
    assert abs(got["video"] - 2 * SECONDS) <= 2 / FPS
    assert abs(got["audio"] - got["video"]) < 1024 / 48_000 + 1e-3  # one AAC frame
    with av.open(str(film)) as c:  # the song, then silence where it ran out
        pcm = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    heard = (np.abs(pcm) > 0.05).nonzero()[0].max() / 48_000
    assert abs(heard - 2.5) < 0.1
    # a new song (same key, new bytes) is a new input: a new film
    old = project["status"]["finalVideo"]
    s3.client.upload_file(
        str(tone(files / "song2.wav", 6.0, hz=330, level=10_000)), s3.bucket, song_key
    )
    p = wait_until(
        lambda: film_of(cluster, namespace, "song", other_than=old["inputsHash"]),
        timeout=INTERVAL * 3 + 60,
        what="the film rebuilt for the new song",
    )
    assert p["status"]["finalVideo"]["s3Key"] != old["s3Key"]


def test_sigkill_during_assembly_loses_nothing_and_assembles_once(
    cluster: Cluster, namespace: str, run_operator, s3, files: Path
) -> None:
    # A re-encode to a larger size takes seconds: long enough to be killed in the middle.
    op = run_operator(namespace)
    cluster.create_project(
        namespace,
        "crash",
        spec(scenes={"count": 3, "durationSeconds": 6}, assembly={"resolution": "640x360"}),
    )

    def assembling() -> bool:
        c = condition(cluster.project(namespace, "crash"), "Assembled") or {}
        return c.get("reason") == "Assembling"

    wait_until(assembling, timeout=120, interval=0.05, what="Assembled=False Assembling")

    def scratch_space() -> set[Path]:  # of an assembly under way (locked while it lives)
        return {
            Path(p).parent
            for p in glob.glob(f"{tempfile.gettempdir()}/scene-operator-*/assembly-*")
            if (Path(p).parent / ".alive.lock").exists()
        }

    scratch = wait_until(scratch_space, timeout=20, interval=0.05, what="the assembly's files")
    op.kill()
    uid = cluster.project(namespace, "crash")["metadata"]["uid"]
    prefix = f"t/{'test_sigkill_during_assembly_loses_nothing_and_assembles_once'[:40]}"
    final_prefix = f"{prefix}/{namespace}/{uid}/final/"
    at_kill = s3.client.list_objects_v2(Bucket=s3.bucket, Prefix=final_prefix).get("Contents", [])
    op.start()
    op.wait_healthy()
    p = wait_until(lambda: film_of(cluster, namespace, "crash"), timeout=120, what="the film")
    listed = s3.client.list_objects_v2(Bucket=s3.bucket, Prefix=final_prefix).get("Contents", [])
    assert [o["Key"] for o in listed] == [p["status"]["finalVideo"]["s3Key"]]  # one film
    assert jobs_started(op) == 0  # the restarted operator paid for nothing
    assert not [d for d in scratch if d.exists()]  # the killed one's scratch space is gone
    reasons = cluster.event_reasons(namespace, "crash")
    # killed before its upload: assembled once, by the second process; killed after it:
    # the object at the key is adopted, not assembled again
    done = reasons.count("VideoAssembled") + reasons.count("FinalVideoAdopted")
    assert done == 1, reasons
    assert ("FinalVideoAdopted" in reasons) == bool(at_kill)
    check_film(s3, p, cluster.scenes(namespace, "crash"), files, exact=False)
