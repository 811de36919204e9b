"""A Project's status: recounted from its Scenes (controller/decide/project.py decides,
the final video's part from the assembler), written as a merge patch of the difference;
a change of progress counters only waits (pacing.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Protocol

from pydantic import ValidationError

from controller.api import vocabulary as v
from controller.api.project import ProjectSpec, ProjectStatus
from controller.api.scene import ScenePhase
from controller.controllers.memory import ProjectMemory
from controller.controllers.ports import Body, EventSink, Key, KubeClient
from controller.controllers.project.pacing import Pacer, progress_only
from controller.decide.health import stalled_reason
from controller.decide.patching import merge_patch
from controller.decide.project import ProjectObservation, SceneView, project_status
from controller.decide.timeutil import utcnow
from controller.informer.cache import Store, is_owned_by, key_of, pending_start
from controller.kube.errors import ApiError
from controller.settings import Settings

WithFinalVideo = Callable[[Body, ProjectSpec | None, ProjectStatus], ProjectStatus]


class Waiting(Protocol):
    def waiting_in(self, project: Key) -> int: ...


class Generations(Protocol):
    """Generations and waiting Scenes per Project (controllers/capacity.py: Capacity)."""

    @property
    def started_by_project(self) -> Mapping[Key, int]: ...

    @property
    def pending_by_project(self) -> Mapping[Key, int]: ...

    @property
    def deleted_settled(self) -> Mapping[Key, int]: ...

    @property
    def waiters(self) -> Waiting: ...

    def budget_used(self, project: Key) -> int: ...


class ProjectStatusWriter:
    def __init__(
        self,
        *,
        settings: Settings,
        api: KubeClient,
        store: Store,
        generations: Generations,
        final_video: WithFinalVideo,
        events: EventSink,
        pacer: Pacer,
    ) -> None:
        self.settings = settings
        self.api = api
        self.store = store
        self.generations = generations
        self.final_video = final_video  # the assembler's part of the status (Assembler.apply)
        self.events = events
        self.pacer = pacer  # progress-only status writes wait

    async def write(
        self, body: Body, spec: ProjectSpec | None, spec_error: str | None, mem: ProjectMemory
    ) -> float | None:
        """Write the status the Project should have; returns when to write it after all,
        if a progress-only change waits (pacing.py)."""
        key = key_of(body)
        body = self.store.projects.get(key, body)
        old = project_status_of(body)
        obs = self.observe(body, old, spec, spec_error, mem)
        new = self.final_video(body, spec, project_status(obs)).wire()
        current = body.get("status") or {}
        patch = merge_patch(current, new)
        if not patch:
            return None
        capped = spec is not None and spec.budget.max_generations is not None
        if spec is not None and progress_only(current, new, capped=capped):
            wait = self.pacer.wait(key)
            if wait is not None:  # written with what moves next, or when the wait is over
                return wait
        try:
            updated = await self.api.patch_status(v.PROJECT_PLURAL, key[0], key[1], patch)
        except ApiError as e:
            if e.not_found:  # deleted meanwhile
                return None
            raise
        self.pacer.wrote(key)
        self.store.upsert_project(updated)
        if spec is None and old.observed_generation != obs.generation:
            await self.events.post(
                body, v.Reason.INVALID_SPEC, spec_error or "invalid spec", "Warning"
            )
        return None

    def observe(
        self,
        body: Body,
        old: ProjectStatus,
        spec: ProjectSpec | None,
        spec_error: str | None,
        mem: ProjectMemory,
    ) -> ProjectObservation:
        key, g = key_of(body), self.generations
        return ProjectObservation(
            now=utcnow(),
            generation=int(body["metadata"].get("generation", 1)),
            status=with_deleted_generations(
                old,
                settled=g.started_by_project[key] - g.pending_by_project[key],
                deleted=g.deleted_settled.get(key, 0),
            ),
            spec=spec,
            spec_error=spec_error,
            scenes=tuple(self.scene_views(body)),
            planning=mem.planning,
            planning_error=mem.planning_error,
            budget_used=g.budget_used(key),
            name_conflicts=tuple(mem.name_conflicts),
            bucket_problem=mem.bucket_problem,
            waiting=g.waiters.waiting_in(key),
        )

    def scene_views(self, project: Body) -> list[SceneView]:
        return [self.scene_view(body, project) for body in self.store.scenes_of(key_of(project))]

    def scene_view(self, body: Body, project: Body) -> SceneView:
        status = body.get("status") or {}
        spec = body.get("spec") or {}
        phase = status.get("phase") or "Pending"
        try:
            phase = ScenePhase(phase)
        except ValueError:
            phase = ScenePhase.PENDING
        clip = status.get("clip") or {}
        provider = (status.get("generation") or {}).get("provider") or clip.get("provider") or ""
        duration = spec.get("durationSeconds") or 0
        if not duration:
            with contextlib.suppress(ValidationError):
                duration = ProjectSpec.model_validate(project.get("spec") or {}).duration_seconds()
        completed = phase == ScenePhase.COMPLETED
        return SceneView(
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
