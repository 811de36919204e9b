"""Project status as a pure function of its Scenes: recounts, conditions, phase."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from controller.api.common import ErrorInfo
from controller.api.project import ProjectPhase, ProjectSpec, ProjectStatus, Usage
from controller.api.scene import ScenePhase
from controller.api.vocabulary import Cond, Reason
from controller.decide.conditions import get_condition, set_condition
from controller.decide.health import Health, project_health, with_health
from controller.decide.timeutil import rfc3339


@dataclass(frozen=True)
class SceneView:
    """What a Project needs to know of one of its Scenes."""

    name: str
    sequence: int
    phase: ScenePhase
    owned: bool
    generations_started: int = 0
    pending_start: bool = False  # a start not known to be paid yet (no job id)
    clip_missing: bool = False  # Completed, but drift found its clip gone (policy Ignore)
    clip_seconds: int = 0  # duration of the verified clip, if Completed
    cost_per_second: float = 0.0
    duration_seconds: int = 0
    stalled: str = ""  # the reason of its Stalled condition, if it has one


@dataclass(frozen=True)
class Counts:
    scene_count: int = 0
    pending: int = 0
    processing: int = 0
    completed: int = 0
    failed: int = 0
    clips_missing: int = 0
    stalled: tuple[str, ...] = ()  # Stalled reasons of the Pending scenes


def recount(scenes: list[SceneView]) -> Counts:
    by = {p: 0 for p in ScenePhase}
    for s in scenes:
        by[s.phase] += 1
    return Counts(
        scene_count=len(scenes),
        pending=by[ScenePhase.PENDING],
        processing=by[ScenePhase.PROCESSING],
        completed=by[ScenePhase.COMPLETED],
        failed=by[ScenePhase.FAILED],
        clips_missing=sum(1 for s in scenes if s.clip_missing),
        stalled=tuple(s.stalled for s in scenes if s.phase == ScenePhase.PENDING and s.stalled),
    )


def generations_used(previous: int, scenes: list[SceneView]) -> int:
    """The counter only goes up: a recount of the Scenes may raise it, never lower it (a
    deleted Scene keeps what it used). Pending starts wait until they are known to be
    paid: a start the provider refused is given back and must not stick here."""
    settled = sum(s.generations_started - (1 if s.pending_start else 0) for s in scenes)
    return max(previous, settled)


def usage(scenes: list[SceneView]) -> Usage:
    started = sum(s.generations_started for s in scenes)
    seconds = sum(s.clip_seconds for s in scenes)
    cost = sum(s.generations_started * s.duration_seconds * s.cost_per_second for s in scenes)
    return Usage(
        generations_started=started, seconds_of_video=seconds, estimated_cost_usd=round(cost, 2)
    )


@dataclass(frozen=True)
class ProjectObservation:
    now: dt.datetime
    generation: int
    status: ProjectStatus
    spec: ProjectSpec | None
    spec_error: str | None = None
    scenes: tuple[SceneView, ...] = ()
    planning: bool = False  # a planner call is under way
    planning_error: ErrorInfo | None = None
    budget_used: int = 0
    name_conflicts: tuple[str, ...] = ()  # Scenes of the plan whose names another owns
    bucket_problem: str | None = None  # the clips' bucket is missing, denied or unreachable
    waiting: int = 0  # Scenes parked for a free job slot (they need not say so themselves)


def name_conflict_message(names: list[str] | tuple[str, ...]) -> str:
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (
        f"Scene name{'s' if len(names) > 1 else ''} {shown} already taken by a Scene "
        "of another Project: not counted as planned; retried"
    )


def _phase(o: ProjectObservation, c: Counts) -> ProjectPhase:
    if o.spec is None:
        return ProjectPhase.FAILED
    if c.scene_count == 0:
        if o.planning_error is not None and not o.planning_error.retryable:
            return ProjectPhase.FAILED
        return (
            ProjectPhase.GENERATING_SCENES
            if o.planning or o.planning_error
            else ProjectPhase.PENDING
        )
    if not o.spec.generate_videos:
        return ProjectPhase.SCENES_READY
    if c.completed == c.scene_count:
        return ProjectPhase.COMPLETED
    if c.pending == 0 and c.processing == 0 and c.failed > 0:
        return ProjectPhase.FAILED
    return ProjectPhase.PROCESSING


Verdict = tuple[bool, str, str]  # a condition: (status True?, reason, message)


def _planned(o: ProjectObservation, c: Counts, owned: bool) -> Verdict:
    if o.name_conflicts:
        return (False, Reason.SCENE_NAME_TAKEN, name_conflict_message(o.name_conflicts))
    if c.scene_count > 0:
        reason = Reason.SCENES_PLANNED if owned else Reason.SCENES_DECLARED
        how = "planned" if owned else "declared by the user"
        return (True, reason, f"{c.scene_count} scenes {how}")
    if o.planning_error is not None:
        err = o.planning_error
        return (False, Reason.PLANNING_FAILED, f"{err.reason}: {err.message}")
    return (False, Reason.PLANNING, "the planner is writing the scene plan")


def _videos(o: ProjectObservation, c: Counts, generate_videos: bool) -> Verdict:
    if not generate_videos:
        return (False, Reason.NOT_REQUESTED, "spec.generateVideos is false")
    if c.scene_count and c.completed == c.scene_count and c.clips_missing:
        n = c.clips_missing
        msg = f"{n} clip{'s' if n > 1 else ''} missing from S3 (repair.missingClip is Ignore)"
        return (False, Reason.CLIP_MISSING, msg)
    if c.scene_count and c.completed == c.scene_count:
        return (True, Reason.COMPLETED, f"{c.completed} clips verified in S3")
    if o.bucket_problem:
        return (False, Reason.BUCKET_UNAVAILABLE, f"{o.bucket_problem}: no job is started")
    if c.failed and not c.pending and not c.processing:
        return (False, Reason.SCENES_FAILED, f"{c.failed} of {c.scene_count} scenes failed")
    msg = f"{c.completed} of {c.scene_count} clips ready"
    if o.waiting:
        msg += f"; {o.waiting} scene{'s' if o.waiting > 1 else ''} waiting for a free job slot"
    return (False, Reason.IN_PROGRESS, msg)


def _ready(planned: Verdict, videos: Verdict, generate_videos: bool) -> Verdict:
    if not planned[0]:
        return (False, planned[1], planned[2])
    if generate_videos and not videos[0]:
        return (False, videos[1], videos[2])
    return (
        True,
        Reason.COMPLETED,
        "scenes planned" + (" and clips ready" if generate_videos else ""),
    )


def _invalid(o: ProjectObservation) -> ProjectStatus:
    """The status of a Project whose spec does not validate."""
    now, gen = rfc3339(o.now), o.generation
    msg = o.spec_error or "invalid spec"
    conds = list(o.status.conditions)
    for type_ in (Cond.SCENES_PLANNED, Cond.VIDEOS_READY, Cond.READY):
        conds = set_condition(
            conds, type_, "False", Reason.INVALID_SPEC, msg, generation=gen, now=now
        )
    stalled = Health(stalled=(Reason.INVALID_SPEC, msg))
    conds = with_health(conds, stalled, generation=gen, now=now)
    return o.status.model_copy(
        update={"phase": ProjectPhase.FAILED, "conditions": conds, "observed_generation": gen}
    )


def project_status(o: ProjectObservation) -> ProjectStatus:
    """The whole status the Project should have now; the caller writes only the difference."""
    if o.spec is None:
        return _invalid(o)
    now, gen = rfc3339(o.now), o.generation
    scenes = sorted(o.scenes, key=lambda s: s.sequence)
    c = recount(scenes)
    conds = list(o.status.conditions)

    def cond(type_: str, ok: bool, reason: str, message: str) -> None:
        nonlocal conds
        conds = set_condition(
            conds, type_, "True" if ok else "False", reason, message, generation=gen, now=now
        )

    spec = o.spec
    planned = _planned(o, c, owned=any(s.owned for s in scenes))
    cond(Cond.SCENES_PLANNED, *planned)
    videos = _videos(o, c, spec.generate_videos)
    cond(Cond.VIDEOS_READY, *videos)
    cond(Cond.READY, *_ready(planned, videos, spec.generate_videos))
    cond(
        Cond.PAUSED,
        spec.paused,
        Reason.PAUSED if spec.paused else "NotPaused",
        "spec.paused is true: no new jobs" if spec.paused else "",
    )
    cap = spec.budget.max_generations
    exhausted = cap is not None and o.budget_used >= cap
    cond(
        Cond.BUDGET_EXHAUSTED,
        exhausted,
        Reason.BUDGET_EXHAUSTED if exhausted else "WithinBudget",
        f"{o.budget_used} of {cap} generations used" if exhausted else "",
    )
    phase = _phase(o, c)
    health = project_health(
        phase,
        get_condition(conds, Cond.READY),
        pending=c.pending,
        processing=c.processing,
        stalled=c.stalled,
        paused=spec.paused,
        budget=(Reason.BUDGET_EXHAUSTED, f"{o.budget_used} of {cap} generations used")
        if exhausted
        else None,
    )
    conds = with_health(conds, health, generation=gen, now=now)

    return o.status.model_copy(
        update={
            "phase": phase,
            "conditions": conds,
            "observed_generation": gen,
            "scene_count": c.scene_count,
            "pending_scenes": c.pending,
            "processing_scenes": c.processing,
            "completed_scenes": c.completed,
            "failed_scenes": c.failed,
            "usage": usage(scenes),
            "generations_used": generations_used(o.status.generations_used, scenes),
            "last_error": o.planning_error if c.scene_count == 0 else None,
        }
    )
