"""The real Scene actuator: the effects of one Scene pass against Kubernetes, S3 and
the providers (see `SceneActuator` in controller/decide/effects.py).

One `Actuator` lives for one pass of one Scene; what outlives the pass is in `Scenes`
and the Scene's memory.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import ValidationError

from controller import webhooks
from controller.api import vocabulary as v
from controller.api.common import ErrorInfo
from controller.api.scene import ScenePhase, SceneStatus
from controller.controllers.scene import cancel, duplicates
from controller.controllers.scene import provider_jobs as jobs
from controller.controllers.scene import working_clip as working
from controller.controllers.scene.clip_look import look_at_clip
from controller.decide import scene as sc
from controller.decide.effects import Facts
from controller.decide.patching import merge_patch
from controller.decide.timeutil import rfc3339
from controller.informer.cache import Body, Key, is_owned_by, key_of, project_of_scene
from controller.kube.client import ApiError
from controller.media.probe import OutputRules, check_stored, expected_seconds
from controller.observability import metrics as m
from controller.providers.base import JobLostError, JobStatus, ProviderError, VideoRequest
from controller.queue.state import SceneMemory

if TYPE_CHECKING:
    from controller.controllers.scene.reconciler import Scenes

log = logging.getLogger("scene_operator")


@dataclass(frozen=True)
class SceneInputs:
    """What a Scene's decision reads besides its own status."""

    desired: sc.Desired | None
    request: VideoRequest | None
    blocked: ErrorInfo | None
    controls: sc.Controls
    project: Body | None


class Actuator:
    def __init__(self, scenes: Scenes, key: Key) -> None:
        self.scenes = scenes
        self.key = key
        self.mem: SceneMemory = scenes.memory.scene(key)
        self.body: Body = {}
        self.inputs = SceneInputs(None, None, None, sc.Controls(), None)
        self.parked: tuple[str, Key] | None = None  # (provider, project) it waits for
        self.gone = False

    # ------------------------------------------------------------------ observe
    async def observe(self, facts: Facts) -> sc.Observation | None:
        s, mem = self.scenes, self.mem
        body = s.store.scenes.get(self.key)
        if body is None:
            self.gone = True
            return None
        if mem.unrecorded is not None and not await jobs.record_job_id(self, body):
            raise jobs.JobIdNotRecorded("a started job's id is not recorded yet")
        inputs = await cancel.confirm_blocked(s, body, s.inputs(body))
        self.body, self.inputs = body, inputs
        desired = inputs.desired
        if mem.look_first and desired is not None and facts.expected is None:
            # drift saw an object for this scene: look before any capacity wait
            key = desired.key(status_take(body))
            facts.expected = await self.look_at(desired.bucket, key, inputs.request)
        mem.look_first = False
        try:
            status = SceneStatus.model_validate(body.get("status") or {})
        except ValidationError:
            status = SceneStatus()
        if (
            mem.verify_clip
            and status.clip
            and status.phase == ScenePhase.COMPLETED
            and facts.clip_check is None
        ):
            facts.clip_check = await s.threads.run(look_at_clip, s.clips, status.clip)
        if mem.verify_clip:
            await working.look_working(self, status, facts)
        mem.verify_clip = False
        annotations = body.get("metadata", {}).get("annotations") or {}
        # No await between this check and a START: `start` reserves the slot at once.
        full = desired and s.capacity.limit_reached(
            desired.provider, project_of_scene(body), self.key
        )
        return sc.Observation(
            now=s.now(),
            generation=int(body["metadata"].get("generation", 1)),
            status=status,
            desired=desired,
            blocked=inputs.blocked,
            controls=inputs.controls,
            regenerate_token=annotations.get(v.ANNOTATION_REGENERATE),
            retry_token=annotations.get(v.ANNOTATION_RETRY),
            expected=facts.expected,
            clip_check=facts.clip_check,
            job=facts.job,
            finished=facts.finished,
            working_check=facts.working_check,
            derived=facts.derived,
            orphan=facts.orphan,
            bucket=facts.bucket,
            orphan_search_after=s.settings.orphan_search_after_seconds,
            marker_watched=mem.watch_marker(sc.marker_key(status), s.monotonic()),
            capacity=desired is not None and not full,
            capacity_limit=full or "",
            waiting_since=s.waiting_since.get(self.key),
            planned=inputs.project is not None and is_owned_by(body, inputs.project),
            poll_delay=webhooks.poll_delay(s.settings, status.generation, self.poll_delay()),
            jitter=random.random(),
        )

    def poll_delay(self) -> float:
        s = self.scenes.settings
        return min(
            s.poll_initial_seconds * s.poll_factor ** max(self.mem.polls - 1, 0),
            s.poll_max_seconds,
        )

    def decided(self, o: sc.Observation, d: sc.Decision) -> None:
        m.DECISIONS.labels(d.rule).inc()
        desired = o.desired
        self.parked = (
            (desired.provider, project_of_scene(self.body)) if d.park and desired else None
        )
        if self.parked is not None:  # the wait's start, on the decisions' clock
            self.scenes.waiting_since.setdefault(self.key, o.now)
        marker = sc.late_duplicates(o, d)
        if marker is not None:
            duplicates.watch(self.scenes, self.key, marker)
        if d.outcome in (sc.Outcome.ORPHAN_RECOVERED, sc.Outcome.ORPHAN_AGAIN):
            m.ORPHAN_WINDOW.labels(d.outcome.value).inc()
        elif d.outcome == sc.Outcome.DRIFT_REPAIRED:
            m.DRIFT_REPAIRS.labels(d.rule).inc()

    # ------------------------------------------------------------------ status
    async def write(self, o: sc.Observation, d: sc.Decision) -> bool:
        if not await self.write_status(self.body, d.status):
            return False  # conflict: re-read and decide again
        await self.scenes.recorder.post_all(self.body, d.events)
        await cancel.after_write(self.scenes, self.key, sc.abandoned_job(o, d), d.rule)
        if d.outcome == sc.Outcome.JOB_SUCCEEDED and o.status.generation:
            m.JOBS.labels(o.desired.provider if o.desired else "", "succeeded", "").inc()
        if d.status.phase in (ScenePhase.COMPLETED, ScenePhase.FAILED):
            self.mem.polls, self.mem.job_state, self.mem.fetch_failures = 0, None, 0
        return True

    async def write_status(
        self, body: Body, new: SceneStatus, *, precondition: bool = True
    ) -> bool:
        """Merge-patch status; with the precondition, a stale cache fails with a conflict:
        the fresh object is cached and False returned."""
        old = body.get("status") or {}
        patch = merge_patch(old, new.wire())
        if not patch:
            return True
        ns, name = key_of(body)
        rv = body["metadata"].get("resourceVersion") if precondition else None
        api = self.scenes.api
        try:
            updated = await api.patch_status(v.SCENE_PLURAL, ns, name, patch, resource_version=rv)
        except ApiError as e:
            if e.conflict or e.not_found:
                fresh = await api.get(v.SCENE_PLURAL, ns, name)
                if fresh is None:
                    self.scenes.store.delete_scene((ns, name))
                else:
                    self.scenes.intake.cache_scene(fresh)
                return False
            raise
        self.scenes.intake.cache_scene(updated)
        self.mem.watch_marker(sc.marker_key(new), self.scenes.monotonic())  # watched from now
        duplicates.recorded(self.mem, new)
        return True

    # ------------------------------------------------------------------ S3 and provider
    async def look(self, o: sc.Observation) -> sc.ObjectSeen:
        assert o.desired is not None
        return await self.look_at(
            o.desired.bucket, o.desired.key(o.status.take), self.inputs.request
        )

    async def look_at(
        self, bucket: str, key: str, request: VideoRequest | None = None
    ) -> sc.ObjectSeen:
        """HEAD `key`; with `request`, an object found is also checked to be the clip
        asked for (it may be adopted), by the same rule as a download."""
        try:
            fact = await self.scenes.threads.run(self.scenes.clips.head, bucket, key)
            m.S3_OPS.labels("head", "ok").inc()
        except Exception:
            m.S3_OPS.labels("head", "error").inc()
            raise
        if fact is None:
            return sc.ObjectSeen(key, None)
        invalid = None
        if request is not None:
            rules = OutputRules.from_settings(self.scenes.settings)
            args = (bucket, key, fact.size, expected_seconds(request), rules)
            invalid = await self.scenes.threads.run(check_stored, self.scenes.clips, *args)
        return sc.ObjectSeen(
            key, sc.StoredObject(key, fact.size, fact.etag, fact.sha256, invalid=invalid)
        )

    async def poll(self, o: sc.Observation) -> sc.JobSeen:
        g, request = o.status.generation, self.inputs.request
        assert g is not None and g.job_id is not None and request is not None
        provider = self.scenes.providers.video(g.provider)
        limiter = self.scenes.limiter("reads", g.provider)
        await limiter.acquire()
        self.mem.polls += 1
        started = time.perf_counter()
        try:
            state = await provider.poll(g.job_id, request)
        except JobLostError as e:
            m.JOBS.labels(g.provider, "lost", e.reason).inc()
            err = ErrorInfo(
                reason=v.Reason.JOB_LOST,
                message=e.message,
                retryable=True,
                at=rfc3339(self.scenes.now()),
            )
            return sc.JobSeen(g.job_id, sc.JobPhase.LOST, err)
        except ProviderError as e:
            if e.status_code == 429:
                limiter.slow_down(e.retry_after)
            return sc.JobSeen(g.job_id, sc.JobPhase.UNREACHABLE, retry_after=e.retry_after)
        finally:
            m.PROVIDER_SECONDS.labels(g.provider, "poll").observe(time.perf_counter() - started)
        self.mem.job_state = state
        if state.status == JobStatus.RUNNING:
            return sc.JobSeen(g.job_id, sc.JobPhase.RUNNING)
        if state.status == JobStatus.SUCCEEDED:
            return sc.JobSeen(g.job_id, sc.JobPhase.SUCCEEDED)
        e = state.error
        m.JOBS.labels(g.provider, "failed", e.reason if e else "").inc()
        err = ErrorInfo(
            reason=e.reason if e else v.Reason.GENERATION_FAILED,
            message=e.message if e else "the job failed",
            retryable=e.retryable if e else False,
            at=rfc3339(self.scenes.now()),
        )
        return sc.JobSeen(g.job_id, sc.JobPhase.FAILED, err)

    async def find_job(self, o: sc.Observation) -> sc.OrphanSearch:
        return await jobs.find_job(self, o)

    async def check_bucket(self, o: sc.Observation) -> sc.BucketSeen:
        assert o.desired is not None
        return await self.scenes.check_bucket(o.desired.bucket)

    async def start(self, o: sc.Observation, d: sc.Decision) -> float | None:
        return await jobs.start(self, o, d)

    async def finish(self, o: sc.Observation) -> sc.ObjectSeen | sc.JobSeen:
        return await jobs.finish(self, o)

    async def derive(self, o: sc.Observation) -> sc.Derived:
        return await working.derive(self, o)


def status_take(body: Body) -> int:
    take = (body.get("status") or {}).get("take") or 0
    return take if isinstance(take, int) else 0
