"""Provider jobs of a Scene pass: start (pending marker, create, job id) and polls.
The search for a job whose id was never recorded is in orphan_search.py, finishing
(download, upload, verify) in finish.py.

Never pay twice: the marker (attempt counted, resourceVersion precondition) is written
before the provider is called, and the job id the moment the provider returns it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping

from controller.api import vocabulary as v
from controller.api.common import ErrorInfo
from controller.controllers.ports import (
    Body,
    EventSink,
    Key,
    ProviderRegistry,
    RateLimits,
    Reservations,
    SceneStatusWriter,
)
from controller.controllers.scene.inputs import ScenePass
from controller.controllers.scene.poll_timing import PollTiming
from controller.decide import scene as sc
from controller.decide.timeutil import rfc3339
from controller.informer.cache import key_of, project_of_scene
from controller.observability import metrics as m
from controller.providers.base import JobLostError, JobStatus, ProviderError, VideoProvider
from controller.queue.state import TransientError

log = logging.getLogger("scene_operator")
Clock = Callable[[], dt.datetime]

START_ERROR_RECHECK_SECONDS = 1.0


class JobIdNotRecorded(TransientError):
    """A started job's id could not be written yet (API server unreachable); it is kept in
    memory and written before the Scene is decided again."""


class JobStarter:
    """START: reserve a slot, write the pending marker, create the job, record its id."""

    def __init__(
        self,
        *,
        providers: ProviderRegistry,
        slots: Reservations,
        limits: RateLimits,
        status: SceneStatusWriter,
        events: EventSink,
        scenes: Mapping[Key, Body],
        timing: PollTiming,
        clock: Clock,
    ) -> None:
        self.providers = providers
        self.slots = slots
        self.limits = limits
        self.status = status
        self.events = events
        self.scenes = scenes  # the cache's Scenes: the marker's body as written
        self.timing = timing
        self.now = clock

    async def start(self, scene: ScenePass, o: sc.Observation, d: sc.Decision) -> float | None:
        key, body = scene.key, scene.body
        desired, request = o.desired, scene.inputs.request
        assert desired is not None and request is not None and d.status.generation is not None
        project = project_of_scene(body)
        if key in self.slots.reserved:
            m.DUPLICATE_GUARD.labels("reserved").inc()
            return None
        try:
            provider = self.providers.video(desired.provider)
        except ProviderError as e:  # e.g. no credentials: nothing can be started or paid
            err = ErrorInfo(
                reason=e.reason, message=e.message, retryable=False, at=rfc3339(self.now())
            )
            failed = sc.retry_or_fail(o, o.status, err, sc.Rule.PROVIDER_UNAVAILABLE)
            await self.status.write(body, failed.status)
            await self.events.post_all(body, failed.events)
            return None
        # Reserve synchronously (no await since the capacity check), then write the
        # pending marker; only a successful marker write lets the provider call happen.
        self.slots.reserve(key, desired.provider, project)
        marked = False
        try:
            marked = await self.status.write(body, d.status)
            if not marked:
                m.DUPLICATE_GUARD.labels("stale-read").inc()
                return 0.0
        finally:
            self.slots.release(key, started=marked)
        marker_body = self.scenes.get(key, body)
        await self.events.post_all(marker_body, d.events)
        return await self._create(scene, o, d, provider, marker_body)

    async def _create(
        self,
        scene: ScenePass,
        o: sc.Observation,
        d: sc.Decision,
        provider: VideoProvider,
        body: Body,
    ) -> float | None:
        """The provider call, once the marker is stored; then the job id."""
        desired, request = o.desired, scene.inputs.request
        assert desired is not None and request is not None
        limiter = self.limits.limiter("creates", desired.provider)
        await limiter.acquire()
        started = time.perf_counter()
        try:
            try:
                job_id = await provider.start(request)
            except (ValueError, TypeError) as e:  # refused by the SDK before any request
                raise ProviderError(
                    "InvalidRequest", str(e)[:1000], retryable=False, status_code=400
                ) from e
        except ProviderError as e:
            m.JOBS.labels(desired.provider, "start-error", e.reason).inc()
            if e.status_code == 429:
                limiter.slow_down(e.retry_after)
            err = ErrorInfo(
                reason=e.reason, message=e.message, retryable=e.retryable, at=rfc3339(self.now())
            )
            after = sc.after_start_error(o, d.status, err, ambiguous=e.status_code is None)
            await self.status.write(body, after.status, precondition=False)
            await self.events.post_all(body, after.events)
            if after.requeue_after is not None:
                return after.requeue_after
            return START_ERROR_RECHECK_SECONDS
        finally:
            elapsed = time.perf_counter() - started
            m.PROVIDER_SECONDS.labels(desired.provider, "start").observe(elapsed)
        self.timing.started(scene.mem, job_id)
        # Record the job id before anything else: after a crash the operator resumes it.
        # If the write fails (API server down), the id is kept in memory and written
        # before this scene is decided again, so the job is never mistaken for an orphan.
        scene.mem.unrecorded = sc.with_job_id(d.status, job_id)
        m.JOBS.labels(desired.provider, "started", "").inc()
        if not await self.record_job_id(scene, body):
            raise JobIdNotRecorded(f"job {job_id} started; its id is not recorded yet")
        g = d.status
        await self.events.post(
            body,
            v.Reason.GENERATION_STARTED,
            f"{desired.provider} job {job_id} started (model {desired.model}, attempt {g.attempts}, take {g.take})",
        )
        return self.timing.delay(scene.mem, sc.with_job_id(d.status, job_id).generation)

    async def record_job_id(self, scene: ScenePass, body: Body) -> bool:
        """Write a started job's id; False if the API server could not be reached."""
        wanted = scene.mem.unrecorded
        assert wanted is not None and wanted.generation is not None
        current = (body.get("status") or {}).get("generation") or {}
        if current.get("startedAt") != wanted.generation.started_at or current.get("jobId"):
            scene.mem.unrecorded = None  # already recorded, or superseded
            return True
        try:
            await self.status.write(body, wanted, precondition=False)
        except Exception as e:
            log.warning(
                "job id not recorded yet; will retry",
                extra={"object": key_of(body)[1], "error": str(e)},
            )
            return False
        scene.mem.unrecorded = None
        return True


class JobPoller:
    """POLL: how the recorded job is doing, under the provider's read limit."""

    def __init__(
        self, *, providers: ProviderRegistry, limits: RateLimits, timing: PollTiming, clock: Clock
    ) -> None:
        self.providers = providers
        self.limits = limits
        self.timing = timing
        self.now = clock

    async def poll(self, scene: ScenePass, o: sc.Observation) -> sc.JobSeen:
        g, request, mem = o.status.generation, scene.inputs.request, scene.mem
        assert g is not None and g.job_id is not None and request is not None
        provider = self.providers.video(g.provider)
        limiter = self.limits.limiter("reads", g.provider)
        await limiter.acquire()
        mem.polls += 1
        started = time.perf_counter()
        try:
            state = await provider.poll(g.job_id, request)
        except JobLostError as e:
            m.JOBS.labels(g.provider, "lost", e.reason).inc()
            err = ErrorInfo(
                reason=v.Reason.JOB_LOST,
                message=e.message,
                retryable=True,
                at=rfc3339(self.now()),
            )
            return sc.JobSeen(g.job_id, sc.JobPhase.LOST, err)
        except ProviderError as e:
            if e.status_code == 429:
                limiter.slow_down(e.retry_after)
            return sc.JobSeen(g.job_id, sc.JobPhase.UNREACHABLE, retry_after=e.retry_after)
        finally:
            m.PROVIDER_SECONDS.labels(g.provider, "poll").observe(time.perf_counter() - started)
        mem.job_state = state
        self.timing.polled(mem, g, state)
        if state.status == JobStatus.RUNNING:
            return sc.JobSeen(g.job_id, sc.JobPhase.RUNNING)
        if state.status == JobStatus.SUCCEEDED:
            return sc.JobSeen(g.job_id, sc.JobPhase.SUCCEEDED)
        failure = state.error
        m.JOBS.labels(g.provider, "failed", failure.reason if failure else "").inc()
        err = ErrorInfo(
            reason=failure.reason if failure else v.Reason.GENERATION_FAILED,
            message=failure.message if failure else "the job failed",
            retryable=failure.retryable if failure else False,
            at=rfc3339(self.now()),
        )
        return sc.JobSeen(g.job_id, sc.JobPhase.FAILED, err)
