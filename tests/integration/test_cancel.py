"""Abandoned jobs are canceled at the provider: the operator process, the real replicate
SDK and the Replicate protocol server, which records the cancel it receives."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controller.api import vocabulary as v
from tests.integration.helpers import condition, wait_until
from tests.support.replicate_server import ReplicateServer


@pytest.fixture
def replicate() -> Iterator[ReplicateServer]:
    with ReplicateServer(latency_seconds=600) as server:  # jobs run until canceled
        yield server


def cancels(server: ReplicateServer) -> list[str]:
    return [path for route, _, path in server.requests if route == "cancel"]


def test_superseded_and_orphaned_jobs_are_canceled_at_replicate(
    cluster, namespace, run_operator, replicate
) -> None:
    run_operator(namespace, env=replicate.env())
    spec = {
        "prompt": "A paper boat sails down a rainy street",
        "scenes": {"count": 1, "durationSeconds": 2},
        "planner": {"provider": "local"},
        "video": {"provider": "replicate"},
        "generateVideos": True,
    }
    cluster.create_project(namespace, "boat", spec)

    def job_id() -> str | None:
        scenes = cluster.scenes(namespace, "boat")
        generation = (scenes[0].get("status") or {}).get("generation") if scenes else None
        return (generation or {}).get("jobId")

    first = wait_until(job_id, timeout=60, what="the first job")
    name = cluster.scenes(namespace, "boat")[0]["metadata"]["name"]

    # A new take supersedes the running job: it is canceled, one new job starts.
    cluster.patch_scene(
        namespace, name, {"metadata": {"annotations": {v.ANNOTATION_REGENERATE: "1"}}}
    )
    wait_until(lambda: cancels(replicate) == [f"/v1/predictions/{first}/cancel"], 60)
    second = wait_until(lambda: (j := job_id()) != first and j, 60, what="the second job")
    assert len(replicate.created) == 2

    # The Project is deleted while the new job runs: nothing can store its clip, so
    # the job is canceled and the Scene holds no job slot.
    cluster.custom.delete_namespaced_custom_object(
        v.GROUP, v.VERSION, namespace, v.PROJECT_PLURAL, "boat"
    )
    wait_until(lambda: f"/v1/predictions/{second}/cancel" in cancels(replicate), 60)

    def released() -> bool:
        scenes = [s for s in cluster.scenes(namespace) if s["metadata"]["name"] == name]
        if not scenes:
            return True  # garbage-collected with its Project: nothing holds a slot
        status = scenes[0].get("status") or {}
        ready = condition(scenes[0], "Ready") or {}
        return status.get("generation") is None and ready.get("reason") == "ProjectNotFound"

    wait_until(released, 60, what="the Scene's job slot released")
    assert len(replicate.created) == 2  # nothing new was paid for
