"""The Project pass: the clip finalizer (cleanup.py), planning and Scene creation
(planning.py, creation.py), the bucket looked at, the final video (controller/assembly),
and the status recounted from the Scenes (status.py). Each step returns when it wants the
Project looked at again; the pass returns the soonest (the worker requeues)."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Protocol

from controller.api import vocabulary as v
from controller.api.project import ProjectSpec
from controller.controllers.memory import Memory, ProjectMemory
from controller.controllers.ports import Body, Enqueue, EventSink, Key
from controller.controllers.project.cleanup import Finalizer
from controller.controllers.project.creation import SceneCreator
from controller.controllers.project.planning import Planner
from controller.controllers.project.status import ProjectStatusWriter, project_status_of
from controller.decide.scene import BUCKET_RECHECK_SECONDS, BucketSeen
from controller.informer.cache import Store, key_of
from controller.queue.state import Kind, Result, sooner
from controller.settings import Settings


def drift_interval(spec: ProjectSpec, scale: float = 1.0) -> float:
    """The next drift check of a Project, jittered so Projects do not check in step."""
    return spec.repair.interval_seconds * scale * (0.9 + 0.2 * random.random())


class FinalVideos(Protocol):
    """The final video's part of the pass (controller/assembly/reconciler.py: Assembler)."""

    async def stop(self, key: Key) -> None: ...

    async def reconcile(self, body: Body, spec: ProjectSpec) -> float | None: ...


class EventSeries(Protocol):
    """Routine Scene Events gathered per Project (controllers/events.py: Recorder)."""

    async def flush(self, project: Body, *, everything: bool = False) -> None: ...

    def forget(self, project: Key) -> None: ...


class BucketReport:
    """The bucket of a Project that generates videos, looked at (cached) so a missing or
    denied one shows on the Project (condition, and an Event when it appears)."""

    def __init__(
        self,
        *,
        settings: Settings,
        check: Callable[[str], Awaitable[BucketSeen]],
        events: EventSink,
    ) -> None:
        self.settings = settings
        self.check = check
        self.events = events

    async def report(self, body: Body, spec: ProjectSpec, mem: ProjectMemory) -> float | None:
        """Returns when to look again (a bucket with a problem), or None."""
        problem = None
        if spec.generate_videos:
            problem = (await self.check(spec.storage.bucket or self.settings.bucket)).problem
        if problem and problem != mem.bucket_problem:
            await self.events.post(body, v.Reason.BUCKET_UNAVAILABLE, problem, "Warning")
        mem.bucket_problem = problem
        return BUCKET_RECHECK_SECONDS if problem else None


class Projects:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        memory: Memory,
        finalizer: Finalizer,
        planner: Planner,
        creator: SceneCreator,
        bucket: BucketReport,
        final_videos: FinalVideos,
        status: ProjectStatusWriter,
        series: EventSeries,
        forget_deleted: Callable[[Key], object],
        enqueue: Enqueue,
    ) -> None:
        self.settings = settings
        self.store = store
        self.memory = memory
        self.finalizer = finalizer
        self.planner = planner
        self.creator = creator
        self.bucket = bucket
        self.final_videos = final_videos
        self.status = status
        self.series = series
        self.forget_deleted = forget_deleted  # generations of its deleted Scenes
        self.enqueue = enqueue  # other keys only: the Project's drift check

    async def reconcile(self, key: Key) -> Result:
        body = self.store.projects.get(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            await self.final_videos.stop(key)  # no final video is uploaded after this
        if body is None:
            self.memory.projects.pop(key, None)
            self.status.pacer.forget(key)
            self.memory.specs.forget(key)
            self.series.forget(key)
            self.forget_deleted(key)
            return Result()
        mem = self.memory.project(key)
        if body["metadata"].get("deletionTimestamp"):
            await self.finalizer.finalize(body)  # uploads stopped, prefix deleted, finalizer off
            return Result()
        spec, spec_error = self.memory.specs.of(body, self.settings)
        again, created = None, False
        if spec is not None:
            again, created = await self._work(body, spec, mem)
        # Scenes created in this pass queued a recount (Intake.recount), which writes
        # the status once with their first progress: not twice within half a second.
        if spec is None or not created:
            again = sooner(again, await self.status.write(body, spec, spec_error, mem))
        await self.post_progress(key)
        if spec is not None and not mem.drift_scheduled:
            mem.drift_scheduled = True
            self.enqueue(Kind.DRIFT, key, drift_interval(spec, self.settings.drift_interval_scale))
        return Result(again)

    async def _work(
        self, body: Body, spec: ProjectSpec, mem: ProjectMemory
    ) -> tuple[float | None, bool]:
        """Finalizer, plan and Scenes, bucket, final video: when to look again, and
        whether Scenes were created."""
        key = key_of(body)
        await self.finalizer.ensure(body, spec)
        body = self.store.projects.get(key, body)
        status = project_status_of(body)
        before = len(self.store.scene_names_of(key))
        again = None
        if not before:
            again = await self.planner.plan(body, spec, status, mem)
        elif status.plan is not None:
            again = await self.creator.create_missing(body, status.plan, mem)
        created = len(self.store.scene_names_of(key)) > before
        again = sooner(again, await self.bucket.report(body, spec, mem))
        final = await self.final_videos.reconcile(self.store.projects.get(key, body), spec)
        return sooner(again, final), created

    async def post_progress(self, key: Key) -> None:
        """Post the routine Scene Events gathered for this Project (series.py) that are
        due; all of them once no Scene has work left."""
        body = self.store.projects.get(key)
        if body is None:
            return
        phase = (body.get("status") or {}).get("phase")
        idle = phase not in (None, "Pending", "GeneratingScenes", "Processing")
        await self.series.flush(body, everything=idle)
