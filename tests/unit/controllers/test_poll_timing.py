"""The learned poll timing's parts: the run times kept per provider and model, and what
a poll records and decides (controllers/job_durations.py, controllers/scene/poll_timing.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from controller.api.scene import GenerationInfo
from controller.controllers.job_durations import RecentDurations
from controller.controllers.memory import SceneMemory
from controller.controllers.scene.poll_timing import PollTiming
from controller.decide import job_durations as jd
from controller.providers.base import JobState, JobStatus, ProviderError
from controller.settings import Settings

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
RUNNING = JobState(JobStatus.RUNNING)


def succeeded(ran: float | None = None) -> JobState:
    return JobState(JobStatus.SUCCEEDED, output_url="u", ran_seconds=ran)


def generation(job_id: str = "j1", model: str = "m", provider: str = "replicate") -> GenerationInfo:
    return GenerationInfo(
        provider=provider,
        model=model,
        job_id=job_id,
        started_at="2030-01-01T00:00:00Z",
        attempt=1,
        spec_hash="h",
        take=0,
    )


class Clocks:
    def __init__(self) -> None:
        self.t = 0.0

    def wall(self) -> dt.datetime:
        return T0 + dt.timedelta(seconds=self.t)


def timing(**settings: object) -> tuple[PollTiming, RecentDurations, Clocks]:
    clocks, durations = Clocks(), RecentDurations()
    t = PollTiming(
        settings=Settings(**settings),  # type: ignore[arg-type]
        durations=durations,
        monotonic=lambda: clocks.t,
        clock=clocks.wall,
    )
    return t, durations, clocks


def warm(durations: RecentDurations, seconds: float = 60.0, model: str = "m") -> None:
    for _ in range(jd.MIN_SAMPLES):
        durations.record("replicate", model, seconds)


# ------------------------------------------------------------------ recent durations


def test_durations_give_an_estimate_once_enough_jobs_ended() -> None:
    d = RecentDurations()
    for _ in range(jd.MIN_SAMPLES - 1):
        d.record("replicate", "m", 60.0)
    assert d.estimate("replicate", "m") is None
    d.record("replicate", "m", 60.0)
    got = d.estimate("replicate", "m")
    assert got is not None and got.median == pytest.approx(60.0)
    assert d.estimate("replicate", "other") is None and d.estimate("veo", "m") is None


def test_durations_keep_a_window_per_model_and_forget_the_least_recent_models() -> None:
    d = RecentDurations(max_models=2)
    for _ in range(jd.WINDOW):
        d.record("replicate", "a", 10.0)
    for _ in range(jd.WINDOW):  # a slower provider: the old durations leave the window
        d.record("replicate", "a", 100.0)
    got = d.estimate("replicate", "a")
    assert got is not None and got.median == pytest.approx(100.0) and got.samples == jd.WINDOW
    warm(d, model="b")
    warm(d, model="c")  # a third model: "a" ended least recently
    assert d.estimate("replicate", "a") is None
    assert d.estimate("replicate", "b") is not None and d.estimate("replicate", "c") is not None
    d.record("replicate", "c", 0.0)  # no duration: ignored
    assert d.estimate("replicate", "c").samples == jd.MIN_SAMPLES  # type: ignore[union-attr]


# ------------------------------------------------------------------ poll timing


def test_without_an_estimate_the_delay_is_the_fixed_schedule() -> None:
    t, _, _ = timing()
    mem = SceneMemory()
    assert [t.delay(mem, generation()) for mem.polls in range(7)] == [
        5.0, 5.0, 7.5, 11.25, 16.875, 25.3125, 30.0,
    ]  # fmt: skip
    assert t.delay(SceneMemory(polls=3), None) == 11.25  # a marker without a job: the same


def test_a_warm_estimate_times_the_job_from_when_the_provider_answered() -> None:
    t, durations, clocks = timing()
    warm(durations)
    clocks.t = 100.0
    mem = SceneMemory()
    t.started(mem, "j1")
    first = t.delay(mem, generation())
    assert 50.0 < first < 60.0  # not 5 s: asleep until around when such jobs end
    clocks.t += 40.0
    assert t.delay(mem, generation()) == pytest.approx(first - 40.0)
    # A job this process did not start (one the orphan search found) is aged from its
    # startedAt: 140 s ago on the wall clock, late by now.
    expected = durations.estimate("replicate", "m")
    late = jd.next_poll_delay(t.schedule, 0, 140.0, expected)
    assert t.delay(mem, generation("j2")) == late and late > t.delay(mem, generation())


def test_learning_off_and_webhooks_keep_their_schedules() -> None:
    t, durations, _ = timing(poll_learn=False)
    warm(durations)
    assert t.delay(SceneMemory(), generation()) == 5.0
    hooked, durations, _ = timing(webhook_url="https://example.com")
    warm(durations)
    assert hooked.delay(SceneMemory(), generation()) == 300.0  # the safety net
    assert hooked.delay(SceneMemory(), generation(provider="veo")) == 5.0  # no estimate


def test_a_success_records_the_providers_run_time_once() -> None:
    t, durations, _ = timing()
    mem = SceneMemory()
    for _ in range(jd.MIN_SAMPLES):
        t.polled(mem, generation(), succeeded(42.0))  # polled again (a failed download)
    assert durations.estimate("replicate", "m") is None
    for i in range(jd.MIN_SAMPLES):
        t.polled(SceneMemory(), generation(f"j{i}"), succeeded(42.0))  # restarted: no clock
    got = durations.estimate("replicate", "m")
    assert got is not None and got.median == pytest.approx(42.0)


def test_without_the_providers_times_the_end_is_between_the_last_two_polls() -> None:
    t, durations, clocks = timing()
    for i in range(jd.MIN_SAMPLES):
        mem = SceneMemory()
        clocks.t = 1000.0 * i
        t.started(mem, f"j{i}")
        clocks.t += 40.0
        t.polled(mem, generation(f"j{i}"), RUNNING)
        clocks.t += 30.0
        t.polled(mem, generation(f"j{i}"), succeeded())
    got = durations.estimate("replicate", "m")
    assert got is not None and got.median == pytest.approx(55.0)
    # A job this process did not start, nor the provider timed, teaches nothing.
    t.polled(SceneMemory(), generation("other", model="n"), succeeded())
    failed = JobState(JobStatus.FAILED, error=ProviderError("X", "x", retryable=False))
    t.polled(SceneMemory(), generation("failed", model="n"), failed)
    assert durations.estimate("replicate", "n") is None
