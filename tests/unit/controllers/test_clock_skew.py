"""Never pay twice without trusting clocks: the search for a job whose id was never
recorded waits on the searching process's own monotonic clock, matches the provider's
`created_at` with a tolerance for skew, and a second job for one marker found later is
canceled and reported. The operator processes here have wall clocks that disagree with
the provider's and with each other's (the fake time the queues run on is the truth)."""

from __future__ import annotations

import asyncio

import pytest

from controller.api import vocabulary as v
from controller.api.request import VideoRequest
from tests.unit.harness import Harness, Killed, metric

ONE = {"scenes": {"count": 1, "durationSeconds": 4}}
SCENE = "p-scene-001"


def run(coro) -> None:
    asyncio.run(coro)


def killed_after_marker(h: Harness, created: bool) -> VideoRequest:
    """The first operator process writes the marker and dies during the create: the job
    exists (`created`) or the create is still on the wire. Returns the create's request."""
    h.replicate.start_script = [("created", Killed()) if created else Killed()]

    async def go() -> None:
        h.project(**ONE)
        await h.settle(seconds=10)

    with pytest.raises(Killed):
        run(go())
    assert h.status(SCENE)["generation"].get("jobId") is None
    request = h.runtime.scenes.inputs(h.scene(SCENE)).request
    assert request is not None
    return request


@pytest.mark.parametrize("skew", [60.0, 3600.0])
def test_a_successor_whose_clock_runs_ahead_waits_for_a_create_still_on_the_wire(
    skew: float,
) -> None:
    """The old leader's create lands 10 s after its successor took over. The successor's
    wall clock is ahead: comparing it with the marker's startedAt, it would search at
    once, find nothing and pay again. It waits on its own monotonic clock instead."""
    h = Harness()
    request = killed_after_marker(h, created=False)
    h.restart(wall_skew=skew)

    async def go() -> None:
        await h.settle(seconds=10)
        h.replicate.create(request)  # the old leader's create reaches the provider
        await h.settle(seconds=600)

    run(go())
    assert len(h.replicate.jobs) == 1
    assert h.status(SCENE)["phase"] == "Completed"
    assert v.Reason.JOB_RECOVERED in h.kube.reasons(SCENE)
    assert v.Reason.JOB_MAY_BE_ORPHANED not in h.kube.reasons(SCENE)


@pytest.mark.parametrize("skew", [-3600.0, -60.0])
def test_a_successor_whose_clock_runs_behind_searches_without_waiting_for_its_clock(
    skew: float,
) -> None:
    """A successor whose wall clock is far behind the marker's startedAt still searches
    once the window has passed on its own clock (not an hour later)."""
    h = Harness()
    killed_after_marker(h, created=True)
    h.restart(wall_skew=skew)
    run(h.settle(seconds=120))
    assert len(h.replicate.jobs) == 1
    assert h.status(SCENE)["phase"] == "Completed"
    assert v.Reason.JOB_RECOVERED in h.kube.reasons(SCENE)
    assert h.replicate.cancels == []  # the job found is no duplicate of itself


@pytest.mark.parametrize("skew", [6.0, 25.0])
def test_a_marker_written_by_a_fast_node_still_finds_its_job(skew: float) -> None:
    """The node that wrote the marker ran `skew` seconds fast, so the provider's
    `created_at` of its job is earlier than the marker's startedAt. The search tolerates
    SCENE_OPERATOR_CLOCK_SKEW_SECONDS (30 s) of disagreement: found, not paid again."""
    h = Harness()
    h.restart(wall_skew=skew)
    killed_after_marker(h, created=True)
    h.restart(wall_skew=0.0)
    run(h.settle(seconds=300))
    assert len(h.replicate.jobs) == 1
    assert h.status(SCENE)["phase"] == "Completed"
    assert v.Reason.JOB_RECOVERED in h.kube.reasons(SCENE)


def test_a_late_duplicate_is_canceled_at_the_provider_and_reported() -> None:
    """The successor searched, found nothing and started again; then the old leader's
    create lands after all. That second job for one marker is canceled at the provider,
    with a DuplicateCanceled Event, and counted."""
    h = Harness()
    request = killed_after_marker(h, created=False)
    h.restart()
    h.replicate.polls = 20  # the job started again runs for a while
    before = metric(
        "scene_operator_duplicate_jobs_canceled_total", provider="replicate", outcome="canceled"
    )

    async def go() -> None:
        await h.settle(seconds=60)  # searched: nothing; started again (JobMayBeOrphaned)
        assert v.Reason.JOB_MAY_BE_ORPHANED in h.kube.reasons(SCENE)
        h.replicate.create(request)  # the old leader's create, late
        await h.settle(seconds=900)

    run(go())
    assert len(h.replicate.jobs) == 2
    status = h.status(SCENE)
    assert status["phase"] == "Completed"
    late = next(j for j in h.replicate.jobs if j != status["clip"]["jobId"])
    assert h.replicate.cancels == [late]
    assert v.Reason.DUPLICATE_CANCELED in h.kube.reasons(SCENE)
    after = metric(
        "scene_operator_duplicate_jobs_canceled_total", provider="replicate", outcome="canceled"
    )
    assert after == before + 1


def test_a_job_the_scene_itself_recorded_is_never_taken_for_a_duplicate() -> None:
    """The job found after the kill is lost at the provider (still listed); the retry's
    job completes the Scene. The lost one was this Scene's own: not a duplicate."""
    h = Harness()
    killed_after_marker(h, created=True)
    (first,) = h.replicate.jobs.values()
    first.outcome = "lost"
    h.restart()
    run(h.settle(seconds=900))
    assert len(h.replicate.jobs) == 2
    assert h.status(SCENE)["phase"] == "Completed"
    assert v.Reason.JOB_RECOVERED in h.kube.reasons(SCENE)
    assert h.replicate.cancels == []
    assert v.Reason.DUPLICATE_CANCELED not in h.kube.reasons(SCENE)
