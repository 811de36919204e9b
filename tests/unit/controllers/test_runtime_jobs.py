"""The runtime's job handling against fakes: the pending marker's precondition, creates
that got no answer, the orphan window after a kill, and budget given back."""

from __future__ import annotations

import asyncio
import copy

import pytest

from controller.api import vocabulary as v
from controller.decide.scene import WAITING_NOTICE_SECONDS
from controller.kube.client import ApiError
from controller.providers.base import ProviderError
from tests.unit.harness import Harness, Killed, metric
from tests.unit.providers.fakes import no_answer, refused

ONE = {"scenes": {"count": 1, "durationSeconds": 4}}


def run(coro) -> None:
    asyncio.run(coro)


def test_a_stale_cache_cannot_start_a_second_job() -> None:
    """Another writer recorded a job the cache has not seen yet: the pending marker's
    resourceVersion precondition fails (409), the Scene is read again, and the recorded
    job is polled instead of paying for a second one."""
    h = Harness()
    guard = metric("scene_operator_duplicate_job_guard_total", kind="stale-read")

    def rival(verb: str, plural: str, ns: str, name: str) -> None:
        if verb != "patch_status" or plural != v.SCENE_PLURAL or h.replicate.jobs:
            return
        body = copy.deepcopy(h.scene(name))
        desired = h.runtime.scenes.inputs(body).desired
        assert desired is not None
        req = h.runtime.scenes.inputs(body).request
        assert req is not None
        job_id = h.replicate.create(req)
        body["status"] = {
            "phase": "Processing",
            "attempts": 1,
            "generationsStarted": 1,
            "specHash": desired.spec_hash,
            "generation": {
                "provider": "replicate",
                "model": desired.model,
                "jobId": job_id,
                "startedAt": "2030-01-01T00:00:00Z",
                "attempt": 1,
                "specHash": desired.spec_hash,
                "take": 0,
            },
        }
        h.kube._store(v.SCENE_PLURAL, (v.SCENE_PLURAL, ns, name), body, "MODIFIED")
        h.pending.clear()  # its watch event has not arrived

    h.kube.before.append(rival)

    async def go() -> None:
        h.project(**ONE)
        await h.settle(seconds=60)

    run(go())
    assert h.replicate.starts == 0  # the operator never called the provider
    assert list(h.replicate.jobs) == ["replicate-job-1"]
    status = h.status("p-scene-001")
    assert status["phase"] == "Completed"
    assert status["clip"]["jobId"] == "replicate-job-1"
    assert status["attempts"] == 1
    assert metric("scene_operator_duplicate_job_guard_total", kind="stale-read") == guard + 1


def test_a_create_without_an_answer_is_found_at_the_provider_and_resumed() -> None:
    h = Harness()
    h.replicate.start_script = [("created", no_answer())]
    recovered = metric("scene_operator_orphan_window_total", outcome="recovered")

    async def go() -> None:
        h.project(**ONE)
        await h.settle(seconds=10)
        status = h.status("p-scene-001")
        # The marker stays (a job may exist), with the create's error, and no search yet.
        assert status["generation"].get("jobId") is None
        assert status["lastError"]["reason"] == "Timeout"
        assert h.replicate.searches == 0
        await h.settle(seconds=120)

    run(go())
    # The search, then one look for a late second job once the window passed again.
    assert h.replicate.searches == 2 and len(h.replicate.jobs) == 1
    assert h.replicate.cancels == []
    status = h.status("p-scene-001")
    assert status["phase"] == "Completed" and status["attempts"] == 1
    assert status["clip"]["jobId"] == "replicate-job-1"
    assert "JobRecovered" in h.kube.reasons("p-scene-001")
    assert metric("scene_operator_orphan_window_total", outcome="recovered") == recovered + 1


def test_a_create_without_an_answer_and_without_a_job_counts_as_a_failed_attempt() -> None:
    h = Harness()
    h.replicate.start_script = [no_answer()]

    async def go() -> None:
        h.project(**ONE)
        await h.settle(seconds=300)

    run(go())
    assert h.replicate.starts == 2 and len(h.replicate.jobs) == 1
    status = h.status("p-scene-001")
    assert status["phase"] == "Completed" and status["attempts"] == 2
    reasons = h.kube.reasons("p-scene-001")
    assert "RetryScheduled" in reasons and "JobRecovered" not in reasons


@pytest.mark.parametrize(
    ("provider", "outcome", "jobs", "event"),
    [
        pytest.param("replicate", "recovered", 1, "JobRecovered", id="listable-found"),
        pytest.param("veo", "again", 2, "JobMayBeOrphaned", id="not-listable-paid-again"),
    ],
)
def test_a_kill_between_the_create_and_the_id_write(
    provider: str, outcome: str, jobs: int, event: str
) -> None:
    """The orphan window: the job exists, its id never reached status. After a restart
    the provider's job list is searched (Replicate); a provider that cannot list (Veo)
    pays again, and says so."""
    h = Harness()
    video = h.providers.videos[provider]
    video.start_script = [("created", Killed())]
    before = metric("scene_operator_orphan_window_total", outcome=outcome)

    async def killed() -> None:
        h.project(video={"provider": provider}, **ONE)
        await h.settle(seconds=10)

    with pytest.raises(Killed):
        run(killed())
    marker = h.status("p-scene-001")
    assert marker["generation"].get("jobId") is None and len(video.jobs) == 1
    h.restart()
    run(h.settle(seconds=300))
    assert len(video.jobs) == jobs
    status = h.status("p-scene-001")
    assert status["phase"] == "Completed"
    assert event in h.kube.reasons("p-scene-001")
    assert metric("scene_operator_orphan_window_total", outcome=outcome) == before + 1


def test_a_refused_start_gives_its_budget_back_and_wakes_the_scene_it_held_back() -> None:
    """Budget 1, two Scenes. While the first Scene's marker is being written its start
    counts against the budget, so the second is decided BudgetExhausted. The provider
    then refuses the first start (an HTTP answer: nothing was paid): the budget is given
    back and the second Scene, woken for it, starts at once."""
    h = Harness()
    h.replicate.start_script = [refused(503)]
    held: list[str] = []
    seen: dict[str, str] = {}

    async def hold_first_marker(verb: str, plural: str, ns: str, name: str) -> None:
        if verb == "patch_status" and plural == v.SCENE_PLURAL and not held:
            held.append(name)
            other = next(n for n in h.scene_names() if n != name)
            for _ in range(400):  # the other Scene's pass runs meanwhile (its HEAD is I/O)
                await asyncio.sleep(0.005)
                ready = [c for c in h.status(other).get("conditions", []) if c["type"] == "Ready"]
                if ready:
                    seen["other"] = ready[0]["reason"]
                    return

    h.kube.before.append(hold_first_marker)

    async def go() -> None:
        h.project(budget={"maxGenerations": 1}, scenes={"count": 2, "durationSeconds": 4})
        await h.step()  # plan and create the Scenes
        names = [i[2] for i in h.runtime.queue._lanes[1]]
        assert sorted(names) == ["p-scene-001", "p-scene-002"], names
        await h.together(2)
        await h.settle(seconds=5)  # less than the first Scene's backoff (10 s)

    run(go())
    first = held[0]
    other = next(n for n in h.scene_names() if n != first)
    assert seen["other"] == "BudgetExhausted"
    assert h.status(other)["phase"] == "Completed"
    assert h.replicate.starts == 2 and len(h.replicate.jobs) == 1
    assert h.status(first).get("phase") != "Completed"


def test_scenes_wait_for_a_job_slot_parked_and_are_woken_one_per_free_slot() -> None:
    h = Harness(concurrency_replicate=1)
    h.replicate.polls = 2
    in_flight: list[int] = []
    waiting: list[int] = []

    async def go() -> None:
        h.project(scenes={"count": 3, "durationSeconds": 4})
        for _ in range(500):
            if not await h.step():
                due = h.runtime.queue.next_due()
                if due is None or due > 200:
                    return
                h.clock.t = due
            statuses = [h.status(n) for n in h.scene_names()]
            in_flight.append(sum(1 for s in statuses if s.get("generation")))
            waiting.append(len(h.runtime.capacity.waiters))

    run(go())
    assert h.phases() == dict.fromkeys(["p-scene-001", "p-scene-002", "p-scene-003"], "Completed")
    assert max(in_flight) == 1 and h.replicate.starts == 3
    assert max(waiting) == 2  # two Scenes parked while the first job ran
    heads = [c for c in h.clips.calls if c[0] == "head"]
    assert len(heads) == 3  # a parked Scene looks at S3 only once a slot is free
    assert len(h.runtime.capacity.waiters) == 0 and not h.runtime.capacity.reserved


def test_a_job_id_write_that_fails_is_retried_before_anything_else() -> None:
    """The API server does not take the job id: the id is kept in memory and written
    first on the next pass (with backoff); the job is never taken for an orphan."""
    h = Harness()
    writes = {"n": 0}

    def outage(verb: str, plural: str, ns: str, name: str) -> None:
        if verb == "patch_status" and plural == v.SCENE_PLURAL:
            writes["n"] += 1
            if writes["n"] in (2, 3):  # the job id write, and its first retry
                raise ApiError(503, "unavailable")

    h.kube.before.append(outage)

    async def go() -> None:
        h.project(**ONE)
        await h.settle(seconds=120)

    run(go())
    assert h.replicate.starts == 1 and h.replicate.searches == 0
    assert h.status("p-scene-001")["phase"] == "Completed"
    assert h.status("p-scene-001")["clip"]["jobId"] == "replicate-job-1"


def test_an_upload_or_a_download_that_fails_is_tried_again_without_a_new_job() -> None:
    h = Harness()
    h.replicate.fetch_errors = [ProviderError("ServerError", "HTTP 502", retryable=True)]
    puts = {"n": 0}

    def s3_hiccup(op: str, bucket: str, key: str) -> None:
        if op == "put":
            puts["n"] += 1
            if puts["n"] == 1:
                raise OSError("connection reset by peer")

    h.clips.before.append(s3_hiccup)

    async def go() -> None:
        h.project(**ONE)
        await h.settle(seconds=120)

    run(go())
    status = h.status("p-scene-001")
    assert status["phase"] == "Completed" and status["attempts"] == 1
    assert h.replicate.starts == 1 and puts["n"] == 2
    assert h.kube.reasons("p-scene-001").count("UploadFailed") == 1


@pytest.mark.parametrize(
    ("outcome", "phase", "starts"),
    [
        pytest.param("lost", "Completed", 2, id="job-lost-retried"),
        pytest.param("fail", "Failed", 1, id="job-failed-permanently"),
    ],
)
def test_a_job_that_ends_badly_is_retried_or_fails(outcome: str, phase: str, starts: int) -> None:
    h = Harness()
    h.replicate.outcome = outcome

    async def go() -> None:
        h.project(**ONE)
        await h.settle(seconds=4)  # the retry backoff is 5-10 s
        h.replicate.outcome = "succeed"
        await h.settle(seconds=300)

    run(go())
    assert h.status("p-scene-001")["phase"] == phase
    assert h.replicate.starts == starts


def test_a_provider_that_cannot_be_built_fails_the_scene_without_a_job() -> None:
    h = Harness()

    async def go() -> None:
        h.project(video={"provider": "local"}, **ONE)  # no credentials in this world
        await h.settle(seconds=60)

    run(go())
    status = h.status("p-scene-001")
    assert status["phase"] == "Failed" and status["lastError"]["reason"] == "ProviderUnavailable"
    assert status.get("generation") is None


def test_a_new_scene_waiting_for_a_slot_writes_nothing_until_the_notice_bound() -> None:
    """A Scene never written that finds no slot is parked without a status write; its
    Project counts it; only past WAITING_NOTICE_SECONDS does it say so itself, once."""
    h = Harness(concurrency_replicate=1)
    h.replicate.polls = 1000  # the first job runs for as long as the test looks
    writes: dict[str, int] = {}

    def count(verb: str, plural: str, ns: str, name: str) -> None:
        if verb == "patch_status" and plural == v.SCENE_PLURAL:
            writes[name] = writes.get(name, 0) + 1

    h.kube.before.append(count)

    async def go() -> None:
        h.project(scenes={"count": 3, "durationSeconds": 4})
        await h.settle(seconds=WAITING_NOTICE_SECONDS - 5)
        running = [n for n in h.scene_names() if h.status(n).get("generation")]
        parked = [n for n in h.scene_names() if n not in running]
        assert len(running) == 1 and len(h.runtime.capacity.waiters) == 2
        assert all(h.status(n) == {} and n not in writes for n in parked)
        videos = next(c for c in h.project_status()["conditions"] if c["type"] == "VideosReady")
        assert videos["message"] == "0 of 3 clips ready; 2 scenes waiting for a free job slot"
        await h.settle(seconds=WAITING_NOTICE_SECONDS * 3)
        for n in parked:
            ready = next(c for c in h.status(n)["conditions"] if c["type"] == "Ready")
            assert ready["reason"] == v.Reason.WAITING and writes[n] == 1

    run(go())
