"""Inputs near the API server's limits and outside the operator's, against the real API
server (issue 12 #9, #11, #14): long Project names, a paginated Scene LIST, a Scene name
taken by another Project, and the operator's allow-lists and default budget."""

from __future__ import annotations

import asyncio
from typing import Any

from controller.api import naming
from controller.api import vocabulary as v
from controller.kube.client import KubeApi
from tests.integration.helpers import Cluster, condition, is_true, wait_project, wait_until

LOCAL = {
    "scenes": {"count": 2, "durationSeconds": 1},
    "planner": {"provider": "local"},
    "video": {"provider": "local"},
}


def spec(**extra: Any) -> dict[str, Any]:
    return {"prompt": "A heron waits in the reeds", **LOCAL, **extra}


def test_long_project_names_are_planned_with_valid_names_and_labels(
    cluster: Cluster, namespace: str, run_operator
) -> None:
    op = run_operator(namespace, {"SCENE_OPERATOR_SCENE_EVENTS": "all"})  # Events on Scenes
    names = {
        "label": "l" * 60 + "-abcd",  # 65: over the 63 of a label value
        "scene": "s" * 120 + "." + "t" * 125,  # 246: <name>-scene-NNN over 253
    }
    for name in names.values():
        cluster.create_project(namespace, name, spec(generateVideos=True))
    for name in names.values():
        wait_project(cluster, namespace, name, timeout=120)
        scenes = cluster.scenes(namespace, name)
        assert [s["metadata"]["name"] for s in scenes] == [
            naming.scene_name(name, 1),
            naming.scene_name(name, 2),
        ]
        for s in scenes:
            assert naming.is_subdomain(s["metadata"]["name"])
            label = s["metadata"]["labels"][v.LABEL_PROJECT]
            assert label == naming.project_label(name) and len(label) <= 63
        # The Events reached the API server too (their names derive from the object's).
        assert "ClipUploaded" in cluster.event_reasons(namespace, scenes[0]["metadata"]["name"])
    assert len(naming.scene_name(names["scene"], 1)) <= 253
    assert naming.scene_name(names["scene"], 1) != names["scene"] + "-scene-001"
    assert "Traceback" not in op.logs()


def test_the_scene_list_is_paginated(kubeconfig: str, cluster: Cluster, namespace: str) -> None:
    for i in range(5):
        body = {
            "apiVersion": v.API_VERSION,
            "kind": v.SCENE_KIND,
            "metadata": {"name": f"page-{i}"},
            "spec": {"projectRef": {"name": "p"}, "sequence": i + 1, "prompt": "x"},
        }
        cluster.custom.create_namespaced_custom_object(
            v.GROUP, v.VERSION, namespace, v.SCENE_PLURAL, body
        )

    async def list_pages() -> tuple[list[str], int]:
        api = KubeApi.from_environment(kubeconfig)
        try:
            items = await api.list(v.SCENE_PLURAL, namespace, page_size=2)
            return [i["metadata"]["name"] for i in items], sum(api.requests.values())
        finally:
            await api.close()

    names, requests = asyncio.run(list_pages())
    assert sorted(names) == [f"page-{i}" for i in range(5)]
    assert requests == 3  # 2 + 2 + 1


def test_a_scene_name_taken_by_another_project_is_reported_not_counted(
    cluster: Cluster, namespace: str, run_operator
) -> None:
    # A Scene that belongs to Project "other" but bears the name the plan of "taken"
    # gives its first Scene.
    squatter = {
        "apiVersion": v.API_VERSION,
        "kind": v.SCENE_KIND,
        "metadata": {"name": naming.scene_name("taken", 1)},
        "spec": {"projectRef": {"name": "other"}, "sequence": 1, "prompt": "not yours"},
    }
    cluster.custom.create_namespaced_custom_object(
        v.GROUP, v.VERSION, namespace, v.SCENE_PLURAL, squatter
    )
    run_operator(namespace)
    cluster.create_project(namespace, "taken", spec())

    def reported() -> dict[str, Any] | None:
        c = condition(cluster.project(namespace, "taken"), v.Cond.SCENES_PLANNED)
        return c if c and c["reason"] == v.Reason.SCENE_NAME_TAKEN else None

    cond = wait_until(reported, timeout=60, what="ScenesPlanned SceneNameTaken")
    assert cond["status"] == "False" and naming.scene_name("taken", 1) in cond["message"]
    assert v.Reason.SCENE_NAME_TAKEN in cluster.event_reasons(namespace, "taken")
    project = cluster.project(namespace, "taken")
    assert project["status"]["sceneCount"] == 1  # only its own Scene, 002
    assert [s["metadata"]["name"] for s in cluster.scenes(namespace, "taken")] == [
        naming.scene_name("taken", 2)
    ]
    # The other Project's Scene is left as it was.
    other = cluster.scenes(namespace, "other")
    assert len(other) == 1 and other[0]["spec"]["prompt"] == "not yours"


def test_the_operator_allow_lists_and_default_budget(
    cluster: Cluster, namespace: str, run_operator, s3
) -> None:
    run_operator(
        namespace,
        env={
            "SCENE_OPERATOR_ALLOWED_BUCKETS": s3.bucket,
            "SCENE_OPERATOR_ALLOWED_MODELS": "local-shot-list-v1,local-renderer-v1",
            "SCENE_OPERATOR_DEFAULT_MAX_GENERATIONS": "1",
        },
    )
    cluster.create_project(namespace, "elsewhere", spec(storage={"bucket": "someone-elses"}))
    cluster.create_project(
        namespace, "pricey", spec(video={"provider": "local", "model": "acme/expensive"})
    )
    cluster.create_project(namespace, "capped", spec(generateVideos=True))
    for name, what in (("elsewhere", "someone-elses"), ("pricey", "acme/expensive")):

        def refused(name: str = name) -> dict[str, Any] | None:
            c = condition(cluster.project(namespace, name), v.Cond.READY)
            return c if c and c["reason"] == v.Reason.INVALID_SPEC else None

        cond = wait_until(refused, timeout=60, what=f"{name} InvalidSpec")
        assert what in cond["message"] and "SCENE_OPERATOR_ALLOWED_" in cond["message"]
        # The Event is posted beside the status write, not before it: wait for it too.
        wait_until(
            lambda name=name: v.Reason.INVALID_SPEC in cluster.event_reasons(namespace, name),
            timeout=30,
            what=f"{name} InvalidSpec Event",
        )

    # The default budget (1 generation) holds back the second Scene of "capped".
    def capped() -> dict[str, Any] | None:
        p = cluster.project(namespace, "capped")
        c = condition(p, v.Cond.BUDGET_EXHAUSTED)
        return (
            p if c and c["status"] == "True" and p["status"].get("completedScenes") == 1 else None
        )

    wait_until(capped, timeout=60, what="capped: BudgetExhausted after one clip")
    # Refused Projects cost nothing: no Scene planned, nothing generated.
    assert cluster.scenes(namespace, "elsewhere") == []
    assert cluster.scenes(namespace, "pricey") == []
    started = sum(
        (s.get("status") or {}).get("generationsStarted", 0)
        for s in cluster.scenes(namespace, "capped")
    )
    assert started == 1


def test_deleting_scenes_gives_no_budget_back(
    cluster: Cluster, namespace: str, run_operator, s3
) -> None:
    """Issue 12 #8: generationsUsed only goes up; a Scene deleted with its clip (and
    re-created from the plan) finds the budget used up instead of paying again."""
    run_operator(namespace)
    cluster.create_project(
        namespace, "frugal", spec(generateVideos=True, budget={"maxGenerations": 2})
    )
    wait_project(cluster, namespace, "frugal", timeout=120)
    assert cluster.project(namespace, "frugal")["status"]["generationsUsed"] == 2
    first = cluster.scenes(namespace, "frugal")[0]
    s3.client.delete_object(Bucket=s3.bucket, Key=first["status"]["clip"]["key"])
    cluster.custom.delete_namespaced_custom_object(
        v.GROUP, v.VERSION, namespace, v.SCENE_PLURAL, first["metadata"]["name"]
    )

    def recreated_and_held() -> dict[str, Any] | None:
        for s in cluster.scenes(namespace, "frugal"):
            if s["metadata"]["uid"] == first["metadata"]["uid"]:
                continue
            if s["spec"]["sequence"] != 1:
                continue
            c = condition(s, v.Cond.READY)
            if c and c["reason"] == v.Reason.BUDGET_EXHAUSTED:
                return s
        return None

    again = wait_until(recreated_and_held, timeout=60, what="scene 001 re-created and held")
    assert (again.get("status") or {}).get("generationsStarted", 0) == 0
    project = cluster.project(namespace, "frugal")
    assert project["status"]["generationsUsed"] == 2
    assert is_true(project, v.Cond.BUDGET_EXHAUSTED)


def test_a_missing_bucket_costs_no_job_and_is_reported(
    cluster: Cluster, namespace: str, run_operator, s3
) -> None:
    """Issue 12 #5: the bucket is looked at before any job starts."""
    run_operator(namespace)
    bucket = f"later-{namespace[-6:]}"
    cluster.create_project(
        namespace, "nowhere", spec(generateVideos=True, storage={"bucket": bucket})
    )

    def reported() -> dict[str, Any] | None:
        c = condition(cluster.project(namespace, "nowhere"), v.Cond.VIDEOS_READY)
        return c if c and c["reason"] == v.Reason.BUCKET_UNAVAILABLE else None

    cond = wait_until(reported, timeout=60, what="VideosReady BucketUnavailable")
    assert bucket in cond["message"]
    assert v.Reason.BUCKET_UNAVAILABLE in cluster.event_reasons(namespace, "nowhere")

    def scenes_held() -> list[dict[str, Any]] | None:
        scenes = cluster.scenes(namespace, "nowhere")
        held = [
            s
            for s in scenes
            if (condition(s, v.Cond.READY) or {}).get("reason") == v.Reason.BUCKET_UNAVAILABLE
        ]
        return scenes if len(scenes) == 2 and len(held) == 2 else None

    for s in wait_until(scenes_held, timeout=60, what="both scenes held by the bucket"):
        assert bucket in condition(s, v.Cond.READY)["message"]  # type: ignore[index]
        assert (s.get("status") or {}).get("generationsStarted", 0) == 0
    # Once the bucket exists, the same Scenes go on: nothing was lost or paid for.
    s3.client.create_bucket(Bucket=bucket)
    wait_project(cluster, namespace, "nowhere", timeout=120)
    assert cluster.project(namespace, "nowhere")["status"]["generationsUsed"] == 2
