"""Planning a Project: the planner is called once per plan-relevant spec, and the plan is
recorded in `status.plan` before any Scene is created, so a restart between two Scene
creates finishes the same plan (deterministic names, 409 = done, creation.py) without a
second planner call.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

from controller.api import vocabulary as v
from controller.api.common import ErrorInfo
from controller.api.project import PlanInfo, PlannedSceneRecord, ProjectSpec, ProjectStatus
from controller.controllers.memory import ProjectMemory
from controller.controllers.ports import Body, EventSink, KubeClient, ProviderRegistry
from controller.controllers.project.creation import SceneCreator
from controller.decide.hashing import spec_hash
from controller.decide.timeutil import rfc3339, utcnow
from controller.informer.cache import Store, key_of
from controller.observability import metrics as m
from controller.providers.base import PlannedScene, PlanRequest, ProviderError
from controller.providers.base import Planner as PlannerProvider
from controller.queue.state import sooner
from controller.settings import Settings

PLAN_RETRY_INITIAL_SECONDS = 5.0
PLAN_RETRY_MAX_SECONDS = 300.0
PLANNING_SHOWN_AFTER_SECONDS = 1.0  # a planner still busy then: status GeneratingScenes

PLAN_FIELDS = {
    "prompt",
    "mode",
    "character_description",
    "product_description",
    "style",
    "scenes",
    "planner",
}

# The Project's status write while the planner is busy (ProjectStatusWriter.write).
WriteStatus = Callable[[Body, ProjectSpec, None, ProjectMemory], Awaitable[float | None]]


def plan_hash(spec: ProjectSpec) -> str:
    """Hash of the inputs of planning only (toggling generateVideos does not re-plan)."""
    return spec_hash(spec.model_dump(mode="json", include=PLAN_FIELDS))


class Planner:
    def __init__(
        self,
        *,
        settings: Settings,
        api: KubeClient,
        store: Store,
        providers: ProviderRegistry,
        list_namespace_once: Callable[[str], Awaitable[None]],
        creator: SceneCreator,
        write_status: WriteStatus,
        events: EventSink,
    ) -> None:
        self.settings = settings
        self.api = api
        self.store = store
        self.providers = providers
        self.list_namespace_once = list_namespace_once  # the intake's one LIST per namespace
        self.creator = creator
        self.write_status = write_status
        self.events = events

    async def plan(
        self, body: Body, spec: ProjectSpec, status: ProjectStatus, mem: ProjectMemory
    ) -> float | None:
        """Plan the Project (or finish creating a recorded plan's Scenes). Returns when to
        look again: after a retryable planner failure, or for Scenes not created yet."""
        key = key_of(body)
        phash = plan_hash(spec)
        if status.plan is not None and status.plan.spec_hash == phash:
            return await self.creator.create_missing(body, status.plan, mem)
        # Right after start-up the watch may not have delivered every Scene yet: before
        # the first planning in a namespace, LIST its Scenes once, so Scenes the user
        # declared are never planned over. Later the watch-fed cache is trusted (a LIST
        # per Project would be O(projects x scenes): 15 % of CPU at 10,000 Scenes).
        await self.list_namespace_once(key[0])
        if self.store.scene_names_of(key) or self._failed_for_good(body, status, mem):
            return None
        planner_name = str(spec.planner.provider or self.settings.default_planner)
        planner = self.providers.planner(planner_name)
        request = plan_request(spec, spec.planner.model or planner.default_model)
        planned, again = await self._call(body, spec, mem, planner_name, planner, request)
        if planned is None:
            return again
        info = PlanInfo(
            provider=planner_name,
            model=request.model,
            planned_at=rfc3339(utcnow()),
            spec_hash=phash,
            scenes=[
                PlannedSceneRecord(
                    prompt=s.prompt[:5000], negative_prompt=s.negative_prompt[:1000] or None
                )
                for s in planned[: request.count]
            ],
        )
        return sooner(again, await self._record(body, info, mem))

    def _failed_for_good(self, body: Body, status: ProjectStatus, mem: ProjectMemory) -> bool:
        """A permanent planner failure at this generation: wait for a spec change."""
        gen = int(body["metadata"].get("generation", 1))
        err = status.last_error
        failed_here = any(
            c.type == v.Cond.SCENES_PLANNED
            and c.reason == v.Reason.PLANNING_FAILED
            and c.observed_generation == gen
            for c in status.conditions
        )
        if failed_here and err is not None and not err.retryable:
            mem.planning_error = err
            return True
        return False

    async def _call(
        self,
        body: Body,
        spec: ProjectSpec,
        mem: ProjectMemory,
        planner_name: str,
        planner: PlannerProvider,
        request: PlanRequest,
    ) -> tuple[list[PlannedScene] | None, float | None]:
        """The planner's answer (None if it failed), and when to look again."""
        mem.planning = True
        started = time.perf_counter()
        call = asyncio.ensure_future(planner.plan(request))
        paced = None  # a status write that waits (pacing.py)
        try:
            # GeneratingScenes is shown only for a planner that takes a while: a fast one's
            # plan is written right away, and the status once with it (one write, not two).
            done, _ = await asyncio.wait({call}, timeout=PLANNING_SHOWN_AFTER_SECONDS)
            if not done:
                paced = await self.write_status(body, spec, None, mem)
            planned = await call
        except ProviderError as e:
            mem.planning = False
            mem.plan_failures += 1
            mem.planning_error = ErrorInfo(
                reason=e.reason, message=e.message, retryable=e.retryable, at=rfc3339(utcnow())
            )
            await self.events.post(
                body,
                v.Reason.PLANNING_FAILED,
                f"{planner_name}: {e.reason}: {e.message}",
                "Warning",
            )
            if not e.retryable:
                return None, paced
            delay = min(
                PLAN_RETRY_INITIAL_SECONDS * 2 ** (mem.plan_failures - 1), PLAN_RETRY_MAX_SECONDS
            ) * (0.75 + random.random() / 2)
            return None, sooner(paced, max(delay, e.retry_after or 0))
        finally:
            call.cancel()  # only if this pass stopped first (the status write failed)
            elapsed = time.perf_counter() - started
            m.PROVIDER_SECONDS.labels(planner_name, "plan").observe(elapsed)
        mem.planning = False
        mem.planning_error = None
        mem.plan_failures = 0
        return list(planned), paced

    async def _record(self, body: Body, info: PlanInfo, mem: ProjectMemory) -> float | None:
        """The plan is recorded before any Scene exists, so a restart finishes it exactly."""
        key = key_of(body)
        updated = await self.api.patch_status(
            v.PROJECT_PLURAL, key[0], key[1], {"plan": info.wire(), "lastError": None}
        )
        self.store.upsert_project(updated)
        again = await self.creator.create_missing(updated, info, mem)
        await self.events.post(
            updated,
            v.Reason.SCENES_PLANNED,
            f"{len(info.scenes)} scenes planned by {info.provider} ({info.model})",
        )
        return again


def plan_request(spec: ProjectSpec, model: str) -> PlanRequest:
    return PlanRequest(
        prompt=spec.prompt,
        mode=str(spec.mode),
        count=spec.scene_count(),
        duration_seconds=spec.duration_seconds(),
        aspect_ratio=str(spec.scenes.aspect_ratio),
        style=spec.style,
        character_description=spec.character_description,
        product_description=spec.product_description,
        model=model,
    )
