"""Abandoned jobs are canceled at the provider, and a Scene whose Project is gone or
invalid does not hold a job slot for ever (a later Project does not wait on it)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from controller.api import vocabulary as v
from controller.api.request import VideoRequest
from controller.providers.base import JobLostError, JobState, JobStatus, ProviderError
from controller.providers.local_video import LocalVideoProvider
from controller.providers.replicate_video import ReplicateVideoProvider
from controller.providers.veo_video import VeoVideoProvider
from tests.unit.harness import NS, Harness, metric

ONE = {"scenes": {"count": 1, "durationSeconds": 4}}
SCENE = "p-scene-001"
LONG = 10_000  # polls a job answers Running: it runs for as long as the test needs


def cancels(provider: str, outcome: str) -> float:
    return metric("scene_operator_job_cancels_total", provider=provider, outcome=outcome)


def running_job(h: Harness, name: str = SCENE) -> str:
    job_id = h.status(name)["generation"]["jobId"]
    assert job_id
    return str(job_id)


def declared_scene(project: str, name: str) -> dict[str, Any]:
    """A Scene a user declared for a Project (spec.projectRef, no owner reference)."""
    return {
        "apiVersion": v.API_VERSION,
        "kind": v.SCENE_KIND,
        "metadata": {"name": name, "namespace": NS},
        "spec": {"projectRef": {"name": project}, "sequence": 1, "prompt": "a lighthouse"},
    }


def test_a_superseded_take_cancels_its_job_at_the_provider() -> None:
    h = Harness()
    h.replicate.polls = LONG
    before = cancels("replicate", "canceled")

    async def go() -> None:
        h.project(**ONE)
        await h.settle(seconds=30)
        first = running_job(h)
        h.replicate.polls = 0
        h.kube.annotate(v.SCENE_PLURAL, NS, SCENE, **{v.ANNOTATION_REGENERATE: "1"})
        await h.settle(seconds=120)
        assert h.replicate.cancels == [first]

    asyncio.run(go())
    status = h.status(SCENE)
    assert status["phase"] == "Completed" and status["take"] == 1
    assert h.replicate.starts == 2
    assert cancels("replicate", "canceled") == before + 1


def test_a_spec_change_while_running_cancels_the_old_job() -> None:
    h = Harness()
    h.replicate.polls = LONG

    async def go() -> None:
        h.project(**ONE)
        await h.settle(seconds=30)
        first = running_job(h)
        h.replicate.polls = 0
        body = copy.deepcopy(h.scene(SCENE))
        body["spec"]["prompt"] = "a lighthouse in a storm"
        h.kube.put(v.SCENE_PLURAL, body)
        await h.settle(seconds=120)
        assert h.replicate.cancels == [first]

    asyncio.run(go())
    assert h.status(SCENE)["phase"] == "Completed" and h.replicate.starts == 2


def test_a_deleted_scene_cancels_its_job() -> None:
    h = Harness()
    h.replicate.polls = LONG

    async def go() -> None:
        h.project(**ONE)
        await h.settle(seconds=30)
        job = running_job(h)
        h.kube.delete(v.SCENE_PLURAL, NS, SCENE)
        await h.settle(seconds=5)
        assert h.replicate.cancels == [job]
        assert h.runtime.memory.abandoned == {}

    asyncio.run(go())


def test_a_scene_whose_project_is_gone_frees_its_slot_for_a_later_project() -> None:
    """One Replicate slot, held by a job of a Scene whose Project was deleted: the job
    is canceled, the slot freed, and a new Project's Scene starts at once."""
    h = Harness(concurrency_replicate=1)
    h.replicate.polls = LONG

    async def go() -> None:
        h.kube.put(v.SCENE_PLURAL, declared_scene("a", "mine"))  # a's only Scene
        h.project("a", **ONE)
        await h.settle(seconds=30)
        job = running_job(h, "mine")
        h.kube.delete(v.PROJECT_PLURAL, NS, "a")
        h.replicate.polls = 0
        h.project("b", **ONE)
        await h.settle(seconds=120)
        assert h.replicate.cancels == [job]

    asyncio.run(go())
    assert h.status("b-scene-001")["phase"] == "Completed"
    assert h.replicate.starts == 2
    mine = h.status("mine")
    assert mine.get("generation") is None and mine["phase"] == "Pending"
    ready = next(c for c in mine["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == v.Reason.PROJECT_NOT_FOUND
    assert v.Reason.JOB_ABANDONED in h.kube.reasons("mine")


def test_a_project_only_missing_from_the_cache_does_not_abandon_the_job() -> None:
    """After a restart the Scene's watch event may come before its Project's: the job in
    flight is not abandoned on the cache's word, the Project is read from the API."""
    h = Harness()
    h.replicate.polls = 3

    async def go() -> None:
        h.project(**ONE)
        await h.settle(seconds=6)
        assert h.status(SCENE)["generation"]["jobId"]
        h.restart()
        h.pending = [e for e in h.pending if e[1] == v.SCENE_PLURAL]  # no Project event
        await h.settle(seconds=120)

    asyncio.run(go())
    assert h.replicate.cancels == [] and h.replicate.starts == 1
    assert h.status(SCENE)["phase"] == "Completed"


def test_a_provider_that_cannot_cancel_is_counted_and_the_slot_still_frees() -> None:
    h = Harness()
    h.veo.polls = LONG
    h.veo.can_cancel = False
    unsupported = cancels("veo", "unsupported")

    async def go() -> None:
        h.project(video={"provider": "veo"}, **ONE)
        await h.settle(seconds=30)
        running_job(h)
        h.kube.delete(v.PROJECT_PLURAL, NS, "p")
        await h.settle(seconds=30)

    asyncio.run(go())
    assert cancels("veo", "unsupported") == unsupported + 1
    assert h.status(SCENE).get("generation") is None
    assert h.runtime.capacity.inflight_by_provider["veo"] == 0


def test_a_failed_cancel_is_counted_and_holds_nothing() -> None:
    h = Harness()
    h.replicate.polls = LONG
    h.replicate.cancel_errors = [ProviderError("ServerError", "HTTP 502", retryable=True)]
    failed = cancels("replicate", "failed")

    async def go() -> None:
        h.project(**ONE)
        await h.settle(seconds=30)
        h.replicate.polls = 0
        h.kube.annotate(v.SCENE_PLURAL, NS, SCENE, **{v.ANNOTATION_REGENERATE: "1"})
        await h.settle(seconds=120)

    asyncio.run(go())
    assert cancels("replicate", "failed") == failed + 1
    assert h.status(SCENE)["phase"] == "Completed" and h.replicate.starts == 2


# ----------------------------------------------------------------------------- providers


def test_replicate_cancel_reaches_the_server_and_the_job_ends_canceled() -> None:
    from tests.support.replicate_server import ReplicateServer

    request = VideoRequest(prompt="a lighthouse", duration_seconds=4, aspect_ratio="16:9")
    with ReplicateServer(latency_seconds=600) as server:
        p = ReplicateVideoProvider(api_token=server.token, base_url=server.base_url, timeout=5)
        try:

            async def go() -> tuple[str, bool, JobState]:
                job_id = await p.start(request)
                took = await p.cancel(job_id)
                return job_id, took, await p.poll(job_id, request)

            job_id, took, state = asyncio.run(go())
            with pytest.raises(JobLostError):
                asyncio.run(p.cancel("no-such-prediction"))
        finally:
            p.close()
    assert took and ("cancel", "POST", f"/v1/predictions/{job_id}/cancel") in server.requests
    assert state.status == JobStatus.FAILED and state.error is not None
    assert state.error.reason == "Canceled" and not state.error.retryable


def test_veo_cannot_cancel_and_the_local_renderer_forgets_the_job() -> None:
    veo = VeoVideoProvider.__new__(VeoVideoProvider)  # no client needed to answer
    assert asyncio.run(veo.cancel("models/veo/operations/1")) is False
    now = {"t": 0.0}
    local = LocalVideoProvider(latency_seconds=30, clock=lambda: now["t"])
    request = VideoRequest(prompt="a lighthouse", duration_seconds=1, aspect_ratio="16:9")
    job_id = asyncio.run(local.start(request))
    assert asyncio.run(local.cancel(job_id)) is True
    assert job_id not in local._first_seen
