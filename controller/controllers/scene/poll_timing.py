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
from collections.abc import Callable, Mapping

from controller import webhooks
from controller.api.scene import GenerationInfo
from controller.controllers.memory import JobClock, SceneMemory
from controller.controllers.ports import Body, JobDurations, Key
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
        # Told when a model's first estimate appears (the composition root sets a Retimer).
        self.on_learned: Callable[[GenerationInfo], None] = lambda g: None

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
            first = self._expected(g) is None
            self.durations.record(g.provider, g.model, ran)
            if first and self._expected(g) is not None:
                self.on_learned(g)

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


class Retimer:
    """The jobs of a model in flight when its first estimate appears were timed on the
    fixed schedule, whose later waits reach 30 s: each is made due at its learned time
    instead, when that is sooner. No read is added: the next one moves earlier."""

    def __init__(
        self,
        *,
        timing: PollTiming,
        scenes: Mapping[Key, Body],
        memory: Callable[[Key], SceneMemory],
        enqueue: Callable[[Key, float], None],
    ) -> None:
        self.timing = timing
        self.scenes = scenes  # the cache's
        self.memory = memory
        self.enqueue = enqueue  # a Scene key due in `delay` s (an earlier due wins)

    def __call__(self, learned: GenerationInfo) -> None:
        """`learned`: the job whose end gave the estimate (its own pass requeues it)."""
        for key, body in list(self.scenes.items()):
            gen = (body.get("status") or {}).get("generation") or {}
            if (
                gen.get("provider") != learned.provider
                or gen.get("model") != learned.model
                or not gen.get("jobId")
                or gen.get("jobId") == learned.job_id
            ):
                continue
            g = GenerationInfo.model_validate(gen)
            self.enqueue(key, self.timing.delay(self.memory(key), g))
