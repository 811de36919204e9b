"""Drift repair and controls against the real API server, S3 server and Replicate protocol."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.integration.clips import replicate_video
from tests.integration.helpers import (
    Cluster,
    api_writes,
    condition,
    is_true,
    metric_sum,
    wait_project,
    wait_until,
)
from tests.support.replicate_server import ReplicateServer
from tests.unit.api import kstatus
from tests.unit.api.test_argocd_health import health as argo_health

INTERVAL = 2  # seconds between drift checks:
SPEC_INTERVAL = 10  # repair.intervalSeconds (the schema's minimum) x 0.2 (conftest.py)


@pytest.fixture
def replicate() -> Iterator[ReplicateServer]:
    with ReplicateServer(latency_seconds=0.3, video_bytes=replicate_video) as server:
        yield server


def spec(count: int = 1, **extra: object) -> dict[str, object]:
    s: dict[str, object] = {
        "prompt": "Fireflies over a quiet lake",
        "scenes": {"count": count, "durationSeconds": 1},
        "planner": {"provider": "local"},
        "video": {"provider": "replicate"},
        "generateVideos": True,
        "repair": {"intervalSeconds": SPEC_INTERVAL},
        "retry": {"limit": 2, "backoff": {"initialSeconds": 1, "factor": 1, "maxSeconds": 1}},
    }
    s.update(extra)
    return s


def completed_scene(
    cluster: Cluster, ns: str, project: str, *, take: int | None = None, timeout: float = 60
) -> dict:
    def check() -> dict | None:
        scenes = cluster.scenes(ns, project)
        s = scenes[0] if scenes else None
        st = (s or {}).get("status") or {}
        if (
            st.get("phase") == "Completed"
            and st.get("clip")
            and (take is None or st["clip"]["take"] == take)
        ):
            return s
        return None

    return wait_until(check, timeout=timeout, what=f"scene of {project} Completed (take {take})")


@pytest.mark.parametrize("how", ["deleted", "corrupted"])
def test_missing_or_changed_clip_is_regenerated(
    how, cluster, namespace, run_operator, s3, replicate
) -> None:
    # Events on each Scene (not gathered on the Project), to count them per Scene.
    run_operator(namespace, env={**replicate.env(), "SCENE_OPERATOR_SCENE_EVENTS": "all"})
    cluster.create_project(namespace, "lake", spec())
    wait_project(cluster, namespace, "lake")
    before = completed_scene(cluster, namespace, "lake")
    key = before["status"]["clip"]["key"]
    if how == "deleted":
        s3.client.delete_object(Bucket=s3.bucket, Key=key)
    else:
        s3.client.put_object(Bucket=s3.bucket, Key=key, Body=b"not a video at all")
    after = completed_scene(cluster, namespace, "lake", take=1, timeout=INTERVAL * 3 + 30)
    assert after["status"]["clip"]["key"] != key
    head = s3.client.head_object(Bucket=s3.bucket, Key=after["status"]["clip"]["key"])
    assert head["ContentLength"] == after["status"]["clip"]["size"]
    reasons = cluster.event_reasons(namespace, after["metadata"]["name"])
    # Event timestamps have one-second resolution: check the set, not the order.
    assert reasons.count("ClipMissing") == 1 and reasons.count("ClipUploaded") == 2
    assert len(replicate.created) == 2
    wait_project(cluster, namespace, "lake")


def test_missing_clip_with_fail_policy_fails_the_scene(
    cluster, namespace, run_operator, s3, replicate
) -> None:
    run_operator(namespace, env=replicate.env())
    cluster.create_project(
        namespace, "strict", spec(repair={"intervalSeconds": SPEC_INTERVAL, "missingClip": "Fail"})
    )
    scene = completed_scene(cluster, namespace, "strict")
    s3.client.delete_object(Bucket=s3.bucket, Key=scene["status"]["clip"]["key"])

    def failed() -> dict | None:
        p = cluster.project(namespace, "strict")
        return p if (p.get("status") or {}).get("failedScenes") == 1 else None

    wait_until(failed, timeout=INTERVAL * 3 + 20, what="scene failed")
    s = cluster.scenes(namespace, "strict")[0]
    assert s["status"]["phase"] == "Failed" and s["status"]["lastError"]["reason"] == "ClipMissing"
    assert "clip" not in s["status"] and "originalVideoClipS3Key" not in s["status"]
    assert len(replicate.created) == 1


def test_missing_clip_with_ignore_policy_is_reported_not_regenerated(
    cluster, namespace, run_operator, s3, replicate
) -> None:
    op = run_operator(namespace, env=replicate.env())
    cluster.create_project(
        namespace, "lax", spec(repair={"intervalSeconds": SPEC_INTERVAL, "missingClip": "Ignore"})
    )
    scene = completed_scene(cluster, namespace, "lax")
    name, key = scene["metadata"]["name"], scene["status"]["clip"]["key"]
    backup = {"Bucket": s3.bucket, "Key": key}
    s3.client.copy_object(Bucket=s3.bucket, Key=key + ".bak", CopySource=backup)
    s3.client.delete_object(Bucket=s3.bucket, Key=key)

    # no new job, but status does not claim the clip is there
    def reported() -> dict | None:
        p = cluster.project(namespace, "lax")
        ready = condition(p, "Ready") or {}
        return p if ready.get("reason") == "ClipMissing" else None

    p = wait_until(reported, timeout=INTERVAL * 3 + 20, what="project Ready=False ClipMissing")
    assert "Ignore" in condition(p, "VideosReady")["message"]
    # Two more drift checks see it missing again: still one Event, no job. (The first
    # detection counts twice: the write, then the settled re-decision in the same pass.)
    wait_until(
        lambda: (
            metric_sum(
                op.metrics(), "scene_operator_scene_decisions_total", rule="clip-missing-ignored"
            )
            >= 3
        ),
        timeout=INTERVAL * 4 + 20,
        what="the missing clip seen by two more drift checks",
    )
    s = cluster.scenes(namespace, "lax")[0]
    assert s["status"]["phase"] == "Completed" and s["status"]["clip"]["key"] == key
    assert condition(s, "Ready")["reason"] == "ClipMissing"
    assert cluster.event_reasons(namespace, name).count("ClipMissing") == 1
    assert len(replicate.created) == 1

    # the object comes back (restored from a backup): Ready again, still one job
    s3.client.copy_object(Bucket=s3.bucket, Key=key, CopySource={**backup, "Key": key + ".bak"})
    wait_project(cluster, namespace, "lax", timeout=INTERVAL * 3 + 20)
    assert "ClipRestored" in cluster.event_reasons(namespace, name)
    assert len(replicate.created) == 1


def copy_onto_itself(s3, key: str) -> str:
    """What a backup or re-tagging tool does: copy the object onto itself with new
    metadata, here through a multipart copy (UploadPartCopy, as `aws s3 cp` and boto3's
    managed copy do for larger objects). The bytes stay; the ETag changes. Returns it."""
    c, bucket = s3.client, s3.bucket
    upload = c.create_multipart_upload(
        Bucket=bucket, Key=key, ContentType="video/mp4", Metadata={"copied-by": "backup-tool"}
    )
    part = c.upload_part_copy(
        Bucket=bucket,
        Key=key,
        UploadId=upload["UploadId"],
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": key},
    )
    c.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["CopyPartResult"]["ETag"], "PartNumber": 1}]},
    )
    return c.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')


def test_a_copy_in_place_with_a_new_etag_is_the_same_clip(
    cluster, namespace, run_operator, s3, replicate
) -> None:
    """Issue 12 #16: drift compares content, not only ETags: same bytes under a new ETag
    (and without the checksum metadata) are the same clip: no new take, no new job."""
    run_operator(namespace, env=replicate.env())
    cluster.create_project(namespace, "copied", spec())
    wait_project(cluster, namespace, "copied")
    scene = completed_scene(cluster, namespace, "copied")
    name, clip = scene["metadata"]["name"], scene["status"]["clip"]
    before = s3.client.get_object(Bucket=s3.bucket, Key=clip["key"])["Body"].read()
    etag = copy_onto_itself(s3, clip["key"])
    assert etag != clip["etag"]
    assert s3.client.get_object(Bucket=s3.bucket, Key=clip["key"])["Body"].read() == before

    def etag_remembered() -> dict | None:
        s = cluster.scenes(namespace, "copied")[0]
        return s if s["status"]["clip"]["etag"] == etag else None

    after = wait_until(etag_remembered, timeout=INTERVAL * 3 + 30, what="the new ETag in status")
    time.sleep(INTERVAL * 2)  # further drift passes change nothing
    after = cluster.scenes(namespace, "copied")[0]
    assert after["status"]["phase"] == "Completed" and after["status"]["take"] == 0
    assert after["status"]["clip"]["key"] == clip["key"]
    assert after["status"]["clip"]["sha256"] == clip["sha256"]
    assert after["status"]["clip"]["etag"] == etag
    assert is_true(after, "Ready")
    assert "ClipMissing" not in cluster.event_reasons(namespace, name)
    assert len(replicate.created) == 1
    wait_project(cluster, namespace, "copied")


def test_completed_status_without_a_clip_is_repaired(
    cluster, namespace, run_operator, s3, replicate
) -> None:
    """The old app's orphaned status: 'completed' with no key. The object is still at the
    deterministic key, so it is adopted: no new job."""
    run_operator(namespace, env=replicate.env())
    cluster.create_project(namespace, "orphan", spec())
    scene = completed_scene(cluster, namespace, "orphan")
    name = scene["metadata"]["name"]
    cluster.patch_scene_status(
        namespace,
        name,
        {"clip": None, "originalVideoClipS3Key": None, "workingVideoClipS3Key": None},
    )
    repaired = completed_scene(cluster, namespace, "orphan", timeout=30)
    assert repaired["status"]["clip"]["key"] == scene["status"]["clip"]["key"]
    assert repaired["status"]["originalVideoClipS3Key"] == scene["status"]["clip"]["key"]
    assert len(replicate.created) == 1
    assert "ClipMissing" in cluster.event_reasons(namespace, name)


def test_healthy_project_makes_zero_writes_over_several_intervals(
    cluster, namespace, run_operator, s3, replicate
) -> None:
    op = run_operator(namespace, env=replicate.env())
    cluster.create_project(namespace, "calm", spec(count=3))
    wait_project(cluster, namespace, "calm")
    time.sleep(2)  # let the last recount settle
    before = op.metrics()
    time.sleep(INTERVAL * 4)
    after = op.metrics()
    assert api_writes(after) - api_writes(before) == 0
    lists = metric_sum(after, "scene_operator_s3_operations_total", operation="list") - metric_sum(
        before, "scene_operator_s3_operations_total", operation="list"
    )
    heads = metric_sum(after, "scene_operator_s3_operations_total", operation="head") - metric_sum(
        before, "scene_operator_s3_operations_total", operation="head"
    )
    assert 2 <= lists <= 6  # one LIST per interval for the project ...
    assert heads == 0  # ... and no HEAD per scene


def test_editing_a_scene_prompt_makes_exactly_one_new_job(
    cluster, namespace, run_operator, s3, replicate
) -> None:
    run_operator(namespace, env=replicate.env())
    cluster.create_project(namespace, "edit", spec())
    old = completed_scene(cluster, namespace, "edit")
    name = old["metadata"]["name"]
    cluster.patch_scene(namespace, name, {"spec": {"prompt": "Fireflies over a stormy lake"}})

    def replaced() -> dict | None:
        s = cluster.scenes(namespace, "edit")[0]
        st = s.get("status") or {}
        clip = st.get("clip") or {}
        return (
            s
            if st.get("phase") == "Completed"
            and clip.get("specHash") != old["status"]["clip"]["specHash"]
            else None
        )

    new = wait_until(replaced, timeout=30, what="new clip for the edited prompt")
    assert new["status"]["clip"]["key"] != old["status"]["clip"]["key"]
    assert replicate.created[-1]["input"]["prompt"] == "Fireflies over a stormy lake"
    time.sleep(1)
    assert len(replicate.created) == 2


def test_regenerate_and_retry_tokens_each_make_one_job(
    cluster, namespace, run_operator, s3, replicate
) -> None:
    run_operator(namespace, env=replicate.env())
    cluster.create_project(namespace, "tokens", spec())
    scene = completed_scene(cluster, namespace, "tokens")
    name = scene["metadata"]["name"]
    annotation = "video.scene-operator.io/regenerate"
    cluster.patch_scene(namespace, name, {"metadata": {"annotations": {annotation: "one"}}})
    completed_scene(cluster, namespace, "tokens", take=1)
    # the same token again (a re-apply from Git) changes nothing
    cluster.patch_scene(namespace, name, {"metadata": {"labels": {"touched": "yes"}}})
    time.sleep(1.5)
    assert len(replicate.created) == 2
    # a failed scene, then a retry token: attempts reset and exactly one more job
    replicate.fail_next_creates = [(400, "bad input"), (400, "bad input")]
    cluster.patch_scene(namespace, name, {"metadata": {"annotations": {annotation: "two"}}})

    def failed() -> dict | None:
        s = cluster.scenes(namespace, "tokens")[0]
        return s if s["status"].get("phase") == "Failed" else None

    wait_until(failed, timeout=30, what="scene Failed")
    assert len(replicate.created) == 2
    cluster.patch_scene(
        namespace, name, {"metadata": {"annotations": {"video.scene-operator.io/retry": "r1"}}}
    )

    def failed_after_r1() -> dict | None:
        s = cluster.scenes(namespace, "tokens")[0]
        st = s["status"]
        return s if st.get("handledRetryToken") == "r1" and st.get("phase") == "Failed" else None

    wait_until(failed_after_r1, timeout=30, what="scene Failed again after retry r1")  # second 400
    cluster.patch_scene(
        namespace, name, {"metadata": {"annotations": {"video.scene-operator.io/retry": "r2"}}}
    )
    done = completed_scene(cluster, namespace, "tokens", take=2)
    assert done["status"]["handledRetryToken"] == "r2"
    assert len(replicate.created) == 3


def test_a_project_regenerate_token_makes_one_new_job_per_scene(
    cluster, namespace, run_operator, s3, replicate
) -> None:
    run_operator(namespace, env=replicate.env())
    cluster.create_project(namespace, "all-again", spec(count=2))
    wait_project(cluster, namespace, "all-again")
    assert len(replicate.created) == 2
    annotation = "video.scene-operator.io/regenerate"
    cluster.patch_project(namespace, "all-again", {"metadata": {"annotations": {annotation: "a"}}})

    def both_retaken() -> list | None:
        scenes = cluster.scenes(namespace, "all-again")
        done = [
            s
            for s in scenes
            if s["status"].get("phase") == "Completed" and s["status"]["clip"]["take"] == 1
        ]
        return done if len(done) == 2 else None

    wait_until(both_retaken, timeout=60, what="both scenes Completed with take 1")
    # a re-apply with the same token (and an unrelated change) makes no job
    cluster.patch_project(namespace, "all-again", {"metadata": {"labels": {"touched": "yes"}}})
    time.sleep(1.5)
    assert len(replicate.created) == 4
    assert wait_project(cluster, namespace, "all-again")["status"]["completedScenes"] == 2


def test_scenes_beyond_the_concurrency_limit_wait_and_are_woken_when_a_slot_frees(
    cluster, namespace, run_operator, s3
) -> None:
    latency = 1.0
    with ReplicateServer(latency_seconds=latency, video_bytes=replicate_video) as slow:
        op = run_operator(
            namespace,
            env={
                **slow.env(),
                "SCENE_OPERATOR_CONCURRENCY_REPLICATE": "2",
                "SCENE_OPERATOR_PROJECT_CONCURRENCY": "10",
            },
        )
        started = time.monotonic()
        cluster.create_project(namespace, "queued", spec(count=6))
        project = wait_project(cluster, namespace, "queued", timeout=60)
        took = time.monotonic() - started
        created = sorted(job["time"] for job in slow.created)
    assert project["status"]["completedScenes"] == 6 and len(created) == 6
    # never more than 2 jobs at once: a job is in flight at least `latency` after its create
    assert max(sum(1 for u in created if t - latency < u <= t) for t in created) <= 2
    # the Scenes beyond the limit waited in line (parked at planning) and were woken by
    # freed slots, not by the 300 s safety recheck: `took` below
    metrics = op.metrics()
    # a planned Scene's short wait costs no write: marker, job id and Completed only
    writes = metric_sum(metrics, "scene_operator_api_requests_total", resource="scenes/status")
    assert writes == 3 * 6
    assert took < 60


def wait_kstatus(cluster: Cluster, namespace: str, name: str, want: str) -> dict:
    """The Project once kstatus (what Flux waits on) computes `want` for it."""

    def reached() -> dict | None:
        p = cluster.project(namespace, name)
        return p if kstatus.compute(p)[0] == want else None

    return wait_until(reached, timeout=30, what=f"kstatus {want} for {name}")


def test_pause_stops_new_jobs_and_budget_caps_them(
    cluster, namespace, run_operator, s3, replicate
) -> None:
    run_operator(namespace, env={**replicate.env(), "SCENE_OPERATOR_PROJECT_CONCURRENCY": "10"})
    cluster.create_project(
        namespace, "held", spec(count=5, paused=True, budget={"maxGenerations": 3})
    )
    p = wait_until(
        lambda: cluster.scenes(namespace, "held") and cluster.project(namespace, "held"), timeout=30
    )
    wait_until(
        lambda: is_true(cluster.project(namespace, "held"), "Paused"),
        timeout=30,
        what="Paused condition",
    )
    # paused with work left: settled for kstatus (Flux), Suspended for Argo CD
    p = wait_kstatus(cluster, namespace, "held", "Current")
    assert argo_health(p)[0] == "Suspended"
    time.sleep(2)
    assert replicate.created == []
    cluster.patch_project(namespace, "held", {"spec": {"paused": False}})

    def capped() -> dict | None:
        p = cluster.project(namespace, "held")
        st = p.get("status") or {}
        return p if st.get("completedScenes") == 3 and is_true(p, "BudgetExhausted") else None

    p = wait_until(capped, timeout=60, what="3 completed and BudgetExhausted")
    time.sleep(2)
    assert len(replicate.created) == 3
    assert p["status"]["usage"]["generationsStarted"] == 3
    assert condition(p, "Ready")["status"] == "False"
    pending = [s for s in cluster.scenes(namespace, "held") if s["status"]["phase"] != "Completed"]
    assert len(pending) == 2
    assert all(condition(s, "Ready")["reason"] == "BudgetExhausted" for s in pending)
    # budget used up with work left: Stalled, so kstatus Failed and Argo CD Degraded
    p = wait_kstatus(cluster, namespace, "held", "Failed")
    assert condition(p, "Stalled")["reason"] == "BudgetExhausted"
    assert "Reconciling" not in {c["type"] for c in p["status"]["conditions"]}
    assert argo_health(p)[0] == "Degraded"
    assert all(kstatus.compute(s)[0] == "Failed" for s in pending)


def test_refused_starts_give_the_budget_back(
    cluster, namespace, run_operator, s3, replicate
) -> None:
    """A create the provider refuses costs nothing: its attempt is given back, and a Scene
    that found the budget spent by those pending starts is decided again (it used to stay
    Pending "BudgetExhausted" for good, with nothing in flight)."""
    replicate.hang_seconds = 1.5  # every start holds its pending marker for a while
    replicate.fail_next_creates = [(422, "version does not exist")] * 3
    run_operator(namespace, env=replicate.env())
    cluster.create_project(
        namespace, "refused", spec(count=3, budget={"maxGenerations": 2}, retry={"limit": 1})
    )

    def all_failed() -> list[dict] | None:
        scenes = cluster.scenes(namespace, "refused")
        phases = [(s.get("status") or {}).get("phase") for s in scenes]
        return scenes if phases == ["Failed"] * 3 else None

    scenes = wait_until(all_failed, timeout=45, what="every refused Scene Failed")
    assert replicate.counts["create"] == 3  # the third Scene was started once budget returned
    assert all(s["status"]["lastError"]["reason"] == "InvalidRequest" for s in scenes)
    p = wait_until(
        lambda: (
            (p := cluster.project(namespace, "refused"))
            and condition(p, "Ready")["reason"] == "ScenesFailed"
            and p
        ),
        timeout=30,
        what="Project Ready False ScenesFailed",
    )
    assert p["status"]["usage"]["generationsStarted"] == 0
    assert condition(p, "BudgetExhausted")["status"] == "False"


@pytest.mark.parametrize("policy", ["Delete", "Retain"])
def test_deletion_policy(policy, cluster, namespace, run_operator, kubectl, s3, replicate) -> None:
    run_operator(namespace, env=replicate.env())
    cluster.create_project(namespace, "gone", spec(count=2, deletionPolicy=policy))
    project = wait_project(cluster, namespace, "gone")
    finalizers = project["metadata"].get("finalizers") or []
    assert finalizers == (["video.scene-operator.io/delete-clips"] if policy == "Delete" else [])
    keys = [s["status"]["clip"]["key"] for s in cluster.scenes(namespace, "gone")]
    kubectl(
        "delete", "-n", namespace, "project", "gone", "--wait=true", "--timeout=60s", timeout=90
    )
    listed = s3.client.list_objects_v2(
        Bucket=s3.bucket, Prefix=keys[0].rsplit("/scenes/", 1)[0]
    ).get("Contents", [])
    if policy == "Delete":
        assert listed == []
        assert "ClipsDeleted" in cluster.event_reasons(namespace, "gone")
    else:
        final = project["status"]["finalVideo"]["s3Key"]  # kept too
        assert sorted(o["Key"] for o in listed) == sorted([*keys, final])


def test_a_missing_bucket_starts_no_paid_job(
    cluster, namespace, run_operator, s3, replicate
) -> None:
    """S3 answers a HEAD in a missing bucket with a bare 404, like a missing key: taken as
    "no clip yet", every Scene would pay for a job whose upload can only fail. Instead the
    Scenes are Stalled (BucketUnavailable) and go on once the bucket exists."""
    run_operator(namespace, env=replicate.env())
    cluster.create_project(namespace, "nowhere", spec(count=2, storage={"bucket": "no-such-clips"}))

    def stalled() -> list[dict] | None:
        scenes = cluster.scenes(namespace, "nowhere")
        ok = len(scenes) == 2 and all(
            (condition(s, "Stalled") or {}).get("reason") == "BucketUnavailable" for s in scenes
        )
        return scenes if ok else None

    scenes = wait_until(stalled, timeout=60, what="both Scenes Stalled with BucketUnavailable")
    assert all(kstatus.compute(s)[0] == "Failed" for s in scenes)
    assert "no-such-clips" in condition(scenes[0], "Ready")["message"]
    project = wait_kstatus(cluster, namespace, "nowhere", "Failed")  # every Scene left stalls
    assert condition(project, "Stalled")["reason"] == "BucketUnavailable"
    assert replicate.created == []
    s3.client.create_bucket(Bucket="no-such-clips")  # the bucket appears: work goes on
    wait_project(cluster, namespace, "nowhere", timeout=150)  # looked at again within 60 s
    assert len(replicate.created) == 2
