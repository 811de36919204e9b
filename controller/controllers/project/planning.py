"""Planning a Project and creating its Scenes.

The plan is recorded in `status.plan` before any Scene is created, so a restart between
two Scene creates finishes the same plan (deterministic names, 409 = done) without a
second planner call.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING

from pydantic import ValidationError

from controller.api import naming
from controller.api import vocabulary as v
from controller.api.common import ErrorInfo
from controller.api.project import PlanInfo, PlannedSceneRecord, ProjectSpec, ProjectStatus
from controller.api.scene import SceneSpec
from controller.decide.hashing import spec_hash
from controller.decide.project import name_conflict_message
from controller.decide.timeutil import rfc3339, utcnow
from controller.informer.cache import Body, key_of, scene_belongs_to
from controller.kube.client import ApiError
from controller.observability import metrics as m
from controller.providers.base import PlanRequest, ProviderError
from controller.queue.state import ProjectMemory, sooner

if TYPE_CHECKING:
    from controller.controllers.project.reconciler import Projects

PLAN_RETRY_INITIAL_SECONDS = 5.0
PLAN_RETRY_MAX_SECONDS = 300.0
NAME_CONFLICT_RETRY = 30.0  # seconds between tries to create a Scene whose name is taken
RECREATE_SECONDS = 1.0  # a planned Scene deleted while it was created: created again then
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


def plan_hash(spec: ProjectSpec) -> str:
    """Hash of the inputs of planning only (toggling generateVideos does not re-plan)."""
    return spec_hash(spec.model_dump(mode="json", include=PLAN_FIELDS))


def scene_name(project: str, sequence: int) -> str:
    return naming.scene_name(project, sequence)  # shortened near the name limits


async def plan(
    p: Projects, body: Body, spec: ProjectSpec, status: ProjectStatus, mem: ProjectMemory
) -> float | None:
    """Plan the Project (or finish creating a recorded plan's Scenes). Returns when to
    look again: after a retryable planner failure, or for Scenes not created yet."""
    key = key_of(body)
    gen = int(body["metadata"].get("generation", 1))
    phash = plan_hash(spec)
    if status.plan is not None and status.plan.spec_hash == phash:
        return await create_missing(p, body, status.plan)
    # Right after start-up the watch may not have delivered every Scene yet: before
    # the first planning in a namespace, LIST its Scenes once, so Scenes the user
    # declared are never planned over. Later the watch-fed cache is trusted (a LIST
    # per Project was O(projects x scenes): 15 % of CPU at 10,000 Scenes).
    await p.intake.list_namespace_once(key[0])
    if p.store.scene_names_of(key):
        return None
    err = status.last_error
    failed_here = any(
        c.type == v.Cond.SCENES_PLANNED
        and c.reason == v.Reason.PLANNING_FAILED
        and c.observed_generation == gen
        for c in status.conditions
    )
    if failed_here and err is not None and not err.retryable:
        mem.planning_error = err
        return None  # a permanent failure at this generation: wait for a spec change
    planner_name = str(spec.planner.provider or p.settings.default_planner)
    planner = p.providers.planner(planner_name)
    model = spec.planner.model or planner.default_model
    request = PlanRequest(
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
    mem.planning = True
    started = time.perf_counter()
    call = asyncio.ensure_future(planner.plan(request))
    paced = None  # a status write that waits (pacing.py)
    try:
        # GeneratingScenes is shown only for a planner that takes a while: a fast one's
        # plan is written right away, and the status once with it (one write, not two).
        done, _ = await asyncio.wait({call}, timeout=PLANNING_SHOWN_AFTER_SECONDS)
        if not done:
            paced = await p.write_status(body, spec, None, mem)
        planned = await call
    except ProviderError as e:
        mem.planning = False
        mem.plan_failures += 1
        mem.planning_error = ErrorInfo(
            reason=e.reason, message=e.message, retryable=e.retryable, at=rfc3339(utcnow())
        )
        await p.recorder.post(
            body,
            v.Reason.PLANNING_FAILED,
            f"{planner_name}: {e.reason}: {e.message}",
            "Warning",
        )
        if not e.retryable:
            return paced
        delay = min(
            PLAN_RETRY_INITIAL_SECONDS * 2 ** (mem.plan_failures - 1), PLAN_RETRY_MAX_SECONDS
        ) * (0.75 + random.random() / 2)
        return sooner(paced, max(delay, e.retry_after or 0))
    finally:
        call.cancel()  # only if this pass stopped first (the status write failed)
        m.PROVIDER_SECONDS.labels(planner_name, "plan").observe(time.perf_counter() - started)
    mem.planning = False
    mem.planning_error = None
    mem.plan_failures = 0
    info = PlanInfo(
        provider=planner_name,
        model=model,
        planned_at=rfc3339(utcnow()),
        spec_hash=phash,
        scenes=[
            PlannedSceneRecord(
                prompt=s.prompt[:5000], negative_prompt=s.negative_prompt[:1000] or None
            )
            for s in planned[: request.count]
        ],
    )
    # The plan is recorded before any Scene exists, so a restart finishes it exactly.
    updated = await p.api.patch_status(
        v.PROJECT_PLURAL, key[0], key[1], {"plan": info.wire(), "lastError": None}
    )
    p.store.upsert_project(updated)
    again = await create_missing(p, updated, info)
    await p.recorder.post(
        updated,
        v.Reason.SCENES_PLANNED,
        f"{len(info.scenes)} scenes planned by {planner_name} ({model})",
    )
    return sooner(paced, again)


async def create_missing(p: Projects, project: Body, info: PlanInfo) -> float | None:
    """Create the plan's Scenes not in the cache; returns when to look again (a Scene
    deleted meanwhile, a name another object holds), or None."""
    key = key_of(project)
    meta = project["metadata"]
    existing = set(p.store.scene_names_of(key))
    try:
        pspec = ProjectSpec.model_validate(project.get("spec") or {})
    except ValidationError:
        return None
    conflicts: list[str] = []
    again = None
    for i, planned in enumerate(info.scenes, start=1):
        name = scene_name(key[1], i)
        if name in existing:
            continue
        scene = {
            "apiVersion": v.API_VERSION,
            "kind": v.SCENE_KIND,
            "metadata": {
                "name": name,
                "namespace": key[0],
                "labels": {
                    v.LABEL_PROJECT: naming.project_label(key[1]),
                    v.LABEL_MANAGED_BY: v.MANAGER,
                },
                "ownerReferences": [
                    {
                        "apiVersion": v.API_VERSION,
                        "kind": v.PROJECT_KIND,
                        "name": key[1],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": SceneSpec(
                project_ref={"name": key[1]},  # type: ignore[arg-type]
                sequence=i,
                prompt=planned.prompt,
                negative_prompt=planned.negative_prompt,
                duration_seconds=pspec.duration_seconds(),
                aspect_ratio=pspec.scenes.aspect_ratio,
            ).wire(),
        }
        try:
            created = await p.api.create(v.SCENE_PLURAL, key[0], scene)
        except ApiError as e:
            if not e.conflict:
                raise
            # Counted as created only if it is this Project's (created before a
            # restart); a Scene of another Project is reported, never taken over.
            found = await p.api.get(v.SCENE_PLURAL, key[0], name)
            if found is None:  # deleted meanwhile: create it on the next pass
                again = sooner(again, RECREATE_SECONDS)
                continue
            if not scene_belongs_to(found, project):
                conflicts.append(name)
                continue
            created = found
        p.intake.on_scene_event(None, created)
    return sooner(again, await report_name_conflicts(p, project, conflicts))


async def report_name_conflicts(p: Projects, project: Body, conflicts: list[str]) -> float | None:
    """Scenes of the plan that exist but are not this Project's: a Warning Event when the
    set changes, the ScenesPlanned condition (see project_status), and another try later
    (the other Scene may be garbage-collected, or renamed by its owner)."""
    key = key_of(project)
    mem = p.memory.project(key)
    if conflicts and conflicts != mem.name_conflicts:
        message = name_conflict_message(conflicts)
        await p.recorder.post(project, v.Reason.SCENE_NAME_TAKEN, message, "Warning")
    mem.name_conflicts = conflicts
    return NAME_CONFLICT_RETRY if conflicts else None
