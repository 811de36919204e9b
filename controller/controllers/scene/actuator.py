"""The real Scene actuator: the effects of one Scene pass against Kubernetes, S3 and
the providers (see `SceneActuator` in controller/decide/effects.py).

One `Actuator` lives for one pass of one Scene and hands each effect to the collaborator
that carries it out (`SceneEffects`, built once by controller/app.py); what outlives the
pass is in those collaborators and the Scene's memory.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from controller.api import vocabulary as v
from controller.api.scene import ScenePhase, SceneStatus
from controller.controllers.memory import SceneMemory
from controller.controllers.ports import Body, EventSink, Key, SceneStatusWriter
from controller.controllers.scene.cancel import Canceler
from controller.controllers.scene.clip_look import ClipLooks
from controller.controllers.scene.duplicates import LateDuplicates
from controller.controllers.scene.finish import OutputFinisher
from controller.controllers.scene.inputs import InputReader, ProjectRecheck, ScenePass
from controller.controllers.scene.orphan_search import JobSearch
from controller.controllers.scene.poll_timing import PollTiming
from controller.controllers.scene.provider_jobs import JobIdNotRecorded, JobPoller, JobStarter
from controller.controllers.scene.working_clip import WorkingClips
from controller.decide import scene as sc
from controller.decide.effects import Facts
from controller.informer.cache import is_owned_by, project_of_scene
from controller.observability import metrics as m
from controller.settings import Settings

log = logging.getLogger("scene_operator")

LimitReached = Callable[[str, Key, Key], str | None]  # Capacity.limit_reached


@dataclass(frozen=True)
class SceneEffects:
    """The collaborators a Scene pass acts through, each with only the ports it needs."""

    settings: Settings
    scenes: Mapping[Key, Body]  # the cache's Scenes
    read: InputReader
    recheck: ProjectRecheck
    looks: ClipLooks
    working: WorkingClips
    poller: JobPoller
    timing: PollTiming  # when the recorded job is polled next
    starter: JobStarter
    search: JobSearch
    finisher: OutputFinisher
    canceler: Canceler
    duplicates: LateDuplicates  # the pending markers watched, late second jobs canceled
    status: SceneStatusWriter
    events: EventSink
    check_bucket: Callable[[str], Awaitable[sc.BucketSeen]]
    limit_reached: LimitReached
    waiting_since: dict[Key, dt.datetime]  # parked for a slot since (the decisions' clock)
    clock: Callable[[], dt.datetime]


class Actuator:
    def __init__(self, effects: SceneEffects, key: Key, mem: SceneMemory) -> None:
        self.fx = effects
        self.scene = ScenePass(key, mem)
        self.parked: tuple[str, Key] | None = None  # (provider, project) it waits for
        self.gone = False

    # ------------------------------------------------------------------ observe
    async def observe(self, facts: Facts) -> sc.Observation | None:
        fx, scene, mem = self.fx, self.scene, self.scene.mem
        body = fx.scenes.get(scene.key)
        if body is None:
            self.gone = True
            return None
        if mem.unrecorded is not None and not await fx.starter.record_job_id(scene, body):
            raise JobIdNotRecorded("a started job's id is not recorded yet")
        inputs = await fx.recheck.confirm(body, fx.read(body))
        scene.body, scene.inputs = body, inputs
        desired = inputs.desired
        if mem.look_first and desired is not None and facts.expected is None:
            # drift saw an object for this scene: look before any capacity wait
            key = desired.key(status_take(body))
            facts.expected = await fx.looks.look_at(desired.bucket, key, inputs.request)
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
            facts.clip_check = await fx.looks.recorded(status.clip)
        if mem.verify_clip:
            await fx.working.look(status, facts)
        mem.verify_clip = False
        return self._observation(body, status, facts)

    def _observation(self, body: Body, status: SceneStatus, facts: Facts) -> sc.Observation:
        fx, inputs = self.fx, self.scene.inputs
        desired = inputs.desired
        annotations = body.get("metadata", {}).get("annotations") or {}
        # No await between this check and a START: `start` reserves the slot at once.
        full = desired and fx.limit_reached(
            desired.provider, project_of_scene(body), self.scene.key
        )
        return sc.Observation(
            now=fx.clock(),
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
            orphan_search_after=fx.settings.orphan_search_after_seconds,
            marker_watched=fx.duplicates.watched(self.scene.mem, status),
            capacity=desired is not None and not full,
            capacity_limit=full or "",
            waiting_since=fx.waiting_since.get(self.scene.key),
            planned=inputs.project is not None and is_owned_by(body, inputs.project),
            poll_delay=fx.timing.delay(self.scene.mem, status.generation),
            jitter=random.random(),
        )

    def decided(self, o: sc.Observation, d: sc.Decision) -> None:
        m.DECISIONS.labels(d.rule).inc()
        desired = o.desired
        self.parked = (
            (desired.provider, project_of_scene(self.scene.body)) if d.park and desired else None
        )
        if self.parked is not None:  # the wait's start, on the decisions' clock
            self.fx.waiting_since.setdefault(self.scene.key, o.now)
        marker = sc.late_duplicates(o, d)
        if marker is not None:
            self.fx.duplicates.watch(self.scene.mem, marker)
        if d.outcome in (sc.Outcome.ORPHAN_RECOVERED, sc.Outcome.ORPHAN_AGAIN):
            m.ORPHAN_WINDOW.labels(d.outcome.value).inc()
        elif d.outcome == sc.Outcome.DRIFT_REPAIRED:
            m.DRIFT_REPAIRS.labels(d.rule).inc()

    # ------------------------------------------------------------------ status
    async def write(self, o: sc.Observation, d: sc.Decision) -> bool:
        fx, scene = self.fx, self.scene
        if not await fx.status.write(scene.body, d.status):
            return False  # conflict: re-read and decide again
        await fx.events.post_all(scene.body, d.events)
        await fx.canceler.after_write(scene.key, sc.abandoned_job(o, d), d.rule)
        if d.outcome == sc.Outcome.JOB_SUCCEEDED and o.status.generation:
            m.JOBS.labels(o.desired.provider if o.desired else "", "succeeded", "").inc()
        if d.status.phase in (ScenePhase.COMPLETED, ScenePhase.FAILED):
            scene.mem.polls, scene.mem.job_state, scene.mem.fetch_failures = 0, None, 0
            scene.mem.job_clock = None
        return True

    # ------------------------------------------------------------------ S3 and provider
    async def look(self, o: sc.Observation) -> sc.ObjectSeen:
        assert o.desired is not None
        return await self.fx.looks.look_at(
            o.desired.bucket, o.desired.key(o.status.take), self.scene.inputs.request
        )

    async def poll(self, o: sc.Observation) -> sc.JobSeen:
        return await self.fx.poller.poll(self.scene, o)

    async def find_job(self, o: sc.Observation) -> sc.OrphanSearch:
        return await self.fx.search.find_job(self.scene, o)

    async def check_bucket(self, o: sc.Observation) -> sc.BucketSeen:
        assert o.desired is not None
        return await self.fx.check_bucket(o.desired.bucket)

    async def start(self, o: sc.Observation, d: sc.Decision) -> float | None:
        return await self.fx.starter.start(self.scene, o, d)

    async def finish(self, o: sc.Observation) -> sc.ObjectSeen | sc.JobSeen:
        return await self.fx.finisher.finish(self.scene, o)

    async def derive(self, o: sc.Observation) -> sc.Derived:
        return await self.fx.working.derive(self.scene, o)


def status_take(body: Body) -> int:
    take = (body.get("status") or {}).get("take") or 0
    return take if isinstance(take, int) else 0
