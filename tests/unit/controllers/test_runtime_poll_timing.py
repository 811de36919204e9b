"""Polls that know when a job ends, through the whole runtime against fakes: once jobs of
a model have ended, a new job of that model is read fewer times and seen done sooner than
on the fixed schedule, which still times the first jobs and every job with learning off."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from tests.unit.harness import T0, Harness, metric

JOB_SECONDS = 60.0


@dataclass(frozen=True)
class Seen:
    polls: int  # reads of the job
    late: float  # seconds from its end to its Scene Completed


async def until_completed(h: Harness, name: str) -> float:
    """Reconcile, letting fake time pass, until Scene `name` is Completed: then the time."""
    for _ in range(5000):
        if h.kube.obj("scenes", "team", name) and h.status(name).get("phase") == "Completed":
            return h.clock.t
        if await h.step():
            continue
        due = h.runtime.queue.next_due()
        assert due is not None, "nothing left to do"
        h.clock.t = max(h.clock.t, due)
    raise AssertionError(f"{name} never Completed")


def new_job_after_others(*, learn: bool, tells_run_time: bool = True, model: str = "") -> Seen:
    """Six jobs of the default model run to their end, then one more Scene starts."""
    h = Harness(poll_learn=learn)
    h.replicate.seconds, h.replicate.tells_run_time = JOB_SECONDS, tells_run_time

    async def go() -> float:
        h.project("first", scenes={"count": 6, "durationSeconds": 4})
        await h.settle(seconds=300)
        assert set(h.phases().values()) == {"Completed"}
        video = {"provider": "replicate", **({"model": model} if model else {})}
        h.project("next", scenes={"count": 1, "durationSeconds": 4}, video=video)
        return await until_completed(h, "next-scene-001")

    done = asyncio.run(go())
    job = h.replicate.jobs[h.status("next-scene-001")["clip"]["jobId"]]
    ended = (job.created_at - T0).total_seconds() + JOB_SECONDS
    return Seen(job.polled, done - ended)


def learned_polls() -> float:
    return metric("scene_operator_job_polls_total", provider="replicate", schedule="learned")


def test_a_job_of_a_model_seen_ending_is_read_less_and_seen_done_sooner() -> None:
    before = learned_polls()
    fixed = new_job_after_others(learn=False)
    assert fixed.polls == 6  # at 5, 10, 17.5, 28.75, 45.6 and 70.9 s
    assert learned_polls() == before
    warm = new_job_after_others(learn=True)
    assert warm.polls < fixed.polls and 0 <= warm.late < fixed.late
    assert learned_polls() >= before + warm.polls


def test_without_the_providers_times_its_own_polls_teach_it() -> None:
    """The operator's polls alone bound each end (between the last two polls): the next
    job is seen done sooner, at the cost of a read or two while the bounds are wide."""
    fixed = new_job_after_others(learn=False, tells_run_time=False)
    warm = new_job_after_others(learn=True, tells_run_time=False)
    assert 0 <= warm.late < fixed.late


def test_another_model_starts_cold_on_the_fixed_schedule() -> None:
    other = new_job_after_others(learn=True, model="another/model")
    assert other == new_job_after_others(learn=False)


def completed_at_after_estimate(*, learn: bool) -> list[float]:
    """Project a's five 40 s jobs start at 0 and are seen ending at 45.6 s (the fixed
    schedule): the model's first estimate. Project b's five started at 15 s, were last
    read at 28.75 s of age and have their next fixed read at 45.6 s of age (t = 60.6 s);
    they end at t = 55 s. Returns when each of b's Scenes was seen Completed."""
    h = Harness(poll_learn=learn)
    h.replicate.seconds = 40.0
    seen: dict[str, float] = {}

    async def go() -> None:
        h.project("a", scenes={"count": 5, "durationSeconds": 4})
        await h.settle(seconds=15)
        h.project("b", scenes={"count": 5, "durationSeconds": 4})
        for _ in range(5000):
            for n in h.scene_names():
                if n.startswith("b-") and h.status(n).get("phase") == "Completed":
                    seen.setdefault(n, h.clock.t)
            if len(seen) == 5:
                return
            if await h.step():
                continue
            due = h.runtime.queue.next_due()
            assert due is not None
            h.clock.t = max(h.clock.t, due)

    asyncio.run(go())
    return sorted(seen.values())


def test_jobs_in_flight_when_the_first_estimate_appears_are_read_at_their_learned_time() -> None:
    fixed = completed_at_after_estimate(learn=False)
    assert min(fixed) > 60  # read at the fixed schedule's 45.6 s of age
    learned = completed_at_after_estimate(learn=True)
    assert max(learned) < 58  # moved before that read: seen within 3 s of the end (55 s)
