"""The cache heals, against the real API server: objects deleted while the operator's
watches were down (resumed with an expired resourceVersion: 410 Gone, then a re-list)
leave its cache, and a Project re-created with the same name is planned again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.api import vocabulary as v
from tests.integration.helpers import Cluster, wait_until
from tests.support.apiproxy import RecordingApiProxy

SPEC = {
    "prompt": "Fireflies over a quiet lake",
    "scenes": {"count": 2, "durationSeconds": 1},
    "planner": {"provider": "local"},
    "video": {"provider": "local"},
    "generateVideos": False,
}


def planned(cluster: Cluster, ns: str, uid: str, name: str = "again") -> list[dict] | None:
    scenes = cluster.scenes(ns, name)
    owners = {r["uid"] for s in scenes for r in s["metadata"].get("ownerReferences") or []}
    return scenes if len(scenes) == 2 and owners == {uid} else None


@pytest.mark.parametrize("healed_by", ["relist", "round"])
def test_objects_deleted_while_the_watch_was_down_leave_the_cache(
    healed_by: str, cluster: Cluster, namespace: str, run_operator, kubeconfig: str, tmp_path: Path
) -> None:
    """`relist`: another Project stays in the namespace, so kopf's re-list delivers it
    again and the namespace is resynced at once (the periodic round is an hour away).
    `round`: the namespace is emptied, kopf's re-list says nothing; the round heals."""
    env = {"SCENE_OPERATOR_RESYNC_SECONDS": "3600" if healed_by == "relist" else "3"}
    with RecordingApiProxy(kubeconfig) as proxy:
        op = run_operator(
            namespace, env=env, kubeconfig_path=proxy.kubeconfig(tmp_path / "proxied")
        )
        if healed_by == "relist":
            other = cluster.create_project(namespace, "stays", SPEC)
            wait_until(lambda: planned(cluster, namespace, other["metadata"]["uid"], "stays"))
        first = cluster.create_project(namespace, "again", SPEC)
        wait_until(lambda: planned(cluster, namespace, first["metadata"]["uid"]), timeout=60)

        proxy.hold_watches()  # the operator sees nothing from here
        custom = cluster.custom
        for scene in cluster.scenes(namespace, "again"):
            custom.delete_namespaced_custom_object(
                v.GROUP, v.VERSION, namespace, v.SCENE_PLURAL, scene["metadata"]["name"]
            )
        custom.delete_namespaced_custom_object(
            v.GROUP, v.VERSION, namespace, v.PROJECT_PLURAL, "again"
        )
        wait_until(lambda: not cluster.scenes(namespace, "again"), timeout=30)
        listing = custom.list_namespaced_custom_object(
            v.GROUP, v.VERSION, namespace, v.PROJECT_PLURAL
        )
        # Every watch resumes from before the deletions: 410 Gone, then kopf LISTs again.
        proxy.release_watches(expired_before=int(listing["metadata"]["resourceVersion"]) + 1)
        second = cluster.create_project(namespace, "again", SPEC)
        scenes = wait_until(
            lambda: planned(cluster, namespace, second["metadata"]["uid"]),
            timeout=60,
            what="the re-created Project planned again",
        )
        assert proxy.expired >= 2  # the Project and Scene watches were both expired

    assert [s["metadata"]["name"] for s in scenes] == ["again-scene-001", "again-scene-002"]
    records = [json.loads(line) for line in op.logs().splitlines() if line.startswith("{")]
    dropped = sorted(
        r["object"]
        for r in records
        if r.get("message") == "deleted while the watch was down: dropped from the cache"
    )
    assert dropped == ["again-scene-001", "again-scene-002"]
