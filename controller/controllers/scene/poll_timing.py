"""When a Scene's recorded job is polled next: around when jobs of its provider and model
have been ending (controller/decide/job_durations.py), else on the fixed schedule; and
what each poll teaches about how long those jobs run.

A job's age is taken on this process's monotonic clock from the moment the provider
answered its create: `startedAt` is written before the create waits for its rate limit,
and only to the second. A job this process did not start (a restart, a job found by the
orphan search) is aged from `startedAt`, which makes it look older: polled sooner, never
later.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from controller import webhooks
from controller.api.scene import GenerationInfo
from controller.controllers.memory import JobClock, SceneMemory
from controller.controllers.ports import JobDurations
from controller.decide import job_durations as jd
from controller.decide.timeutil import parse_rfc3339
from controller.observability import metrics as m
from controller.providers.base import JobState, JobStatus
from controller.settings import Settings


class PollTiming:
    def __init__(
        self,
        *,
        settings: Settings,
        durations: JobDurations,
        monotonic: Callable[[], float],
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.settings = settings
        self.durations = durations
        self.monotonic = monotonic  # this process's: the queue's
        self.clock = clock  # the wall clock `startedAt` was written on
        self.schedule = jd.PollSchedule(
            settings.poll_initial_seconds, settings.poll_factor, settings.poll_max_seconds
        )

    def started(self, mem: SceneMemory, job_id: str) -> None:
        """The provider answered the create with `job_id` just now."""
        mem.polls, mem.job_state = 0, None
        mem.job_clock = JobClock(job_id, self.monotonic())

    def delay(self, mem: SceneMemory, g: GenerationInfo | None) -> float:
        """Seconds until the next poll of the job recorded in `g` (or of the orphan
        search of a marker without a job id: the fixed schedule)."""
        expected = self._expected(g)
        if g is None or g.job_id is None or expected is None:
            wait = self.schedule.fixed(mem.polls)
        else:
            wait = jd.next_poll_delay(self.schedule, mem.polls, self._age(mem, g), expected)
        return webhooks.poll_delay(self.settings, g, wait)

    def polled(self, mem: SceneMemory, g: GenerationInfo, state: JobState) -> None:
        """A poll of the job recorded in `g` answered `state`: a success records how long
        the job ran, once."""
        assert g.job_id is not None
        schedule = "learned" if self._expected(g) is not None else "fixed"
        m.JOB_POLLS.labels(g.provider, schedule).inc()
        clock = mem.job_clock
        if clock is None or clock.job_id != g.job_id:
            clock = mem.job_clock = JobClock(g.job_id, None)  # not started here
        now = self.monotonic()
        if state.status == JobStatus.RUNNING:
            clock.running = now
            return
        if state.status != JobStatus.SUCCEEDED or clock.ended:
            return  # a failure's timing says little of how long the model's jobs run
        clock.ended = True
        ran = state.ran_seconds
        if ran is None and clock.created is not None:
            # It ended between the last poll that saw it running and this one: the middle
            # (with no such poll, this one: an upper bound).
            ended = now if clock.running is None else (clock.running + now) / 2
            ran = ended - clock.created
        if ran is not None:
            self.durations.record(g.provider, g.model, ran)

    def _expected(self, g: GenerationInfo | None) -> jd.Estimate | None:
        if g is None or not self.settings.poll_learn:
            return None
        return self.durations.estimate(g.provider, g.model)

    def _age(self, mem: SceneMemory, g: GenerationInfo) -> float:
        clock = mem.job_clock
        if clock is not None and clock.job_id == g.job_id and clock.created is not None:
            return self.monotonic() - clock.created
        started = parse_rfc3339(g.started_at)
        return max(0.0, (self.clock() - started).total_seconds()) if started else 0.0
