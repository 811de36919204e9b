"""Projects: status (recounted from their Scenes), the clip finalizer, and the entry to
planning and Scene creation (controller/controllers/project/planning.py)."""

from __future__ import annotations

import contextlib
import random

from pydantic import ValidationError

from controller.api import vocabulary as v
from controller.api.project import ProjectSpec, ProjectStatus
from controller.api.scene import ScenePhase
from controller.assembly.reconciler import Assembler
from controller.controllers.capacity import Capacity
from controller.controllers.events import Recorder
from controller.controllers.ports import ClipStorage, KubeClient, ProviderRegistry, Threads
from controller.controllers.project import cleanup, planning
from controller.controllers.project.pacing import Pacer, progress_only
from controller.decide.health import stalled_reason
from controller.decide.patching import merge_patch
from controller.decide.project import ProjectObservation, SceneView, project_status
from controller.decide.scene import BUCKET_RECHECK_SECONDS
from controller.decide.timeutil import utcnow
from controller.informer.cache import Body, Key, Store, is_owned_by, key_of, pending_start
from controller.informer.intake import Intake
from controller.kube.client import ApiError
from controller.queue.state import Kind, Memory, ProjectMemory, Result
from controller.settings import Settings
from controller.storage.clips import project_prefix


def drift_interval(spec: ProjectSpec, scale: float = 1.0) -> float:
    """The next drift check of a Project, jittered so Projects do not check in step."""
    return spec.repair.interval_seconds * scale * (0.9 + 0.2 * random.random())


class Projects:
    def __init__(
        self,
        *,
        settings: Settings,
        api: KubeClient,
        clips: ClipStorage,
        providers: ProviderRegistry,
        threads: Threads,
        store: Store,
        intake: Intake,
        memory: Memory,
        recorder: Recorder,
        assembly: Assembler,
        capacity: Capacity,
    ) -> None:
        self.settings = settings
        self.api = api
        self.clips = clips
        self.providers = providers
        self.threads = threads
        self.store = store
        self.intake = intake
        self.memory = memory
        self.recorder = recorder
        self.assembly = assembly  # the final video (controller/assembly)
        self.pacer = Pacer(intake.queue.clock)  # progress-only status writes wait
        self.capacity = capacity  # owns the generations counted against the budget

    async def reconcile(self, key: Key) -> Result:
        body = self.store.projects.get(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            await self.assembly.stop(key)  # no final video is uploaded after this
        if body is None:
            self.memory.projects.pop(key, None)
            self.pacer.forget(key)
            self.memory.specs.forget(key)
            self.recorder.forget(key)
            self.capacity.deleted_settled.pop(key, None)
            return Result()
        mem = self.memory.project(key)
        meta = body["metadata"]
        if meta.get("deletionTimestamp"):
            await self.finalize(body)
            return Result()
        spec, spec_error = self.memory.specs.of(body, self.settings)
        retry_after, created = None, False
        if spec is not None:
            await self.ensure_finalizer(body, spec)
            body = self.store.projects.get(key, body)
            status = project_status_of(body)
            before = len(self.store.scene_names_of(key))
            if not before:
                retry_after = await planning.plan(self, body, spec, status, mem)
            elif status.plan is not None:
                await planning.create_missing(self, body, status.plan)
            created = len(self.store.scene_names_of(key)) > before
            await self.report_bucket(body, spec, mem)
            await self.assembly.reconcile(self.store.projects.get(key, body), spec)
        # Scenes created in this pass queued a recount (Intake.recount), which writes
        # the status once with their first progress: not twice within half a second.
        if spec is None or not created:
            await self.write_status(body, spec, spec_error, mem)
        await self.post_progress(key)
        if spec is not None and not mem.drift_scheduled:
            mem.drift_scheduled = True
            self.intake.schedule(
                Kind.DRIFT, key, drift_interval(spec, self.settings.drift_interval_scale)
            )
        return Result(retry_after)

    async def write_status(
        self, body: Body, spec: ProjectSpec | None, spec_error: str | None, mem: ProjectMemory
    ) -> None:
        key = key_of(body)
        body = self.store.projects.get(key, body)
        old = project_status_of(body)
        obs = ProjectObservation(
            now=utcnow(),
            generation=int(body["metadata"].get("generation", 1)),
            status=with_deleted_generations(
                old,
                settled=self.capacity.started_by_project[key]
                - self.capacity.pending_by_project[key],
                deleted=self.capacity.deleted_settled.get(key, 0),
            ),
            spec=spec,
            spec_error=spec_error,
            scenes=tuple(self.scene_views(body)),
            planning=mem.planning,
            planning_error=mem.planning_error,
            budget_used=self.capacity.budget_used(key),
            name_conflicts=tuple(mem.name_conflicts),
            bucket_problem=mem.bucket_problem,
            waiting=self.capacity.waiters.waiting_in(key),
        )
        new = self.assembly.apply(body, spec, project_status(obs)).wire()
        current = body.get("status") or {}
        patch = merge_patch(current, new)
        if not patch:
            return
        capped = spec is not None and spec.budget.max_generations is not None
        if spec is not None and progress_only(current, new, capped=capped):
            wait = self.pacer.wait(key)
            if wait is not None:  # written with what moves next, or when the wait is over
                self.intake.schedule(Kind.PROJECT, key, wait)
                return
        try:
            updated = await self.api.patch_status(v.PROJECT_PLURAL, key[0], key[1], patch)
        except ApiError as e:
            if e.not_found:  # deleted meanwhile
                return
            raise
        self.pacer.wrote(key)
        self.store.upsert_project(updated)
        if spec is None and old.observed_generation != obs.generation:
            await self.recorder.post(
                body, v.Reason.INVALID_SPEC, spec_error or "invalid spec", "Warning"
            )

    async def post_progress(self, key: Key) -> None:
        """Post the routine Scene Events gathered for this Project (series.py) that are
        due; all of them once no Scene has work left."""
        body = self.store.projects.get(key)
        if body is None:
            return
        phase = (body.get("status") or {}).get("phase")
        idle = phase not in (None, "Pending", "GeneratingScenes", "Processing")
        await self.recorder.flush(body, everything=idle)

    def scene_views(self, project: Body) -> list[SceneView]:
        views = []
        for body in self.store.scenes_of(key_of(project)):
            status = body.get("status") or {}
            spec = body.get("spec") or {}
            phase = status.get("phase") or "Pending"
            try:
                phase = ScenePhase(phase)
            except ValueError:
                phase = ScenePhase.PENDING
            clip = status.get("clip") or {}
            provider = (
                (status.get("generation") or {}).get("provider") or clip.get("provider") or ""
            )
            duration = spec.get("durationSeconds") or 0
            if not duration:
                with contextlib.suppress(ValidationError):
                    duration = ProjectSpec.model_validate(
                        project.get("spec") or {}
                    ).duration_seconds()
            completed = phase == ScenePhase.COMPLETED
            views.append(
                SceneView(
                    name=body["metadata"]["name"],
                    sequence=int(spec.get("sequence") or 0),
                    phase=phase if not (completed and not clip) else ScenePhase.PENDING,
                    owned=is_owned_by(body, project),
                    generations_started=int(status.get("generationsStarted") or 0),
                    pending_start=pending_start(body),
                    clip_missing=completed and reported_missing(status),
                    clip_seconds=duration if completed and clip else 0,
                    cost_per_second=self.settings.cost_per_second(provider) if provider else 0.0,
                    duration_seconds=duration,
                    stalled=stalled_reason(status),
                )
            )
        return views

    async def report_bucket(self, body: Body, spec: ProjectSpec, mem: ProjectMemory) -> None:
        """The bucket of a Project that generates videos, looked at (cached) so a missing
        or denied one shows on the Project (condition, and an Event when it appears)."""
        problem = None
        if spec.generate_videos:
            bucket = spec.storage.bucket or self.settings.bucket
            problem = (
                await self.memory.buckets.check(
                    bucket, lambda b: self.threads.run(self.clips.bucket_problem, b)
                )
            ).problem
        if problem and problem != mem.bucket_problem:
            await self.recorder.post(body, v.Reason.BUCKET_UNAVAILABLE, problem, "Warning")
        if problem:
            self.intake.schedule(Kind.PROJECT, key_of(body), BUCKET_RECHECK_SECONDS)
        mem.bucket_problem = problem

    # ------------------------------------------------------------------ finalizer
    async def ensure_finalizer(self, body: Body, spec: ProjectSpec) -> None:
        finalizers = list(body["metadata"].get("finalizers") or [])
        want = spec.deletion_policy == "Delete"
        has = v.FINALIZER_CLIPS in finalizers
        if want == has:
            return
        new = (
            [*finalizers, v.FINALIZER_CLIPS]
            if want
            else [f for f in finalizers if f != v.FINALIZER_CLIPS]
        )
        ns, name = key_of(body)
        updated = await self.api.patch_metadata(
            v.PROJECT_PLURAL,
            ns,
            name,
            {"finalizers": new, "resourceVersion": body["metadata"]["resourceVersion"]},
        )
        self.store.upsert_project(updated)

    async def finalize(self, body: Body) -> None:
        await cleanup.finalize(self, body)  # uploads stopped, prefix deleted, finalizer off

    def folder(self, body: Body) -> tuple[str, str]:
        """The bucket and the key prefix of a Project's clips."""
        try:
            spec = ProjectSpec.model_validate(body.get("spec") or {})
            bucket = spec.storage.bucket or self.settings.bucket
            prefix = (
                spec.storage.prefix if spec.storage.prefix is not None else self.settings.s3_prefix
            )
        except ValidationError:
            bucket, prefix = self.settings.bucket, self.settings.s3_prefix
        return bucket, project_prefix(prefix, key_of(body)[0], body["metadata"]["uid"])


def project_status_of(body: Body) -> ProjectStatus:
    try:
        return ProjectStatus.model_validate(body.get("status") or {})
    except ValidationError:
        return ProjectStatus()


def with_deleted_generations(status: ProjectStatus, *, settled: int, deleted: int) -> ProjectStatus:
    """The counter raised by the settled generations of the Scenes there are and of those
    deleted in this process: a recount may have waited (pacing.py), and a deleted Scene
    no longer counts itself."""
    if not deleted:
        return status
    used = max(status.generations_used, settled + deleted)
    return status.model_copy(update={"generations_used": used})


def reported_missing(status: dict[str, object]) -> bool:
    err = status.get("lastError")
    return isinstance(err, dict) and err.get("reason") == v.Reason.CLIP_MISSING
