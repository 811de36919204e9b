"""kstatus conditions, `Reconciling` and `Stalled`, derived purely from the rest of a status.

kstatus (sigs.k8s.io/cli-utils/pkg/kstatus) and what is built on it (Flux's `wait` and
`healthChecks`, kpt, Config Sync) read two abnormal-true conditions:

- `Reconciling=True`: the operator is still working toward the spec (planning, a job in
  flight, waiting for a job slot, a retry scheduled) -> kstatus InProgress;
- `Stalled=True`: it cannot get there without a change from outside (a failed Scene or
  plan, an invalid spec, retries or budget used up with work left, a clip gone under
  `repair.missingClip: Ignore`) -> kstatus Failed.

Following kstatus's convention that an absent condition means False (Flux's controllers
do the same), the operator removes a condition instead of writing it False. Neither
present (and `observedGeneration` current) reads as kstatus Current: Ready, or settled
where the spec asks for nothing more (`paused`, `generateVideos: false`).

The two are never True together: kstatus takes the first True one in list order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controller.api.common import Condition
from controller.api.vocabulary import Cond, Reason
from controller.decide.conditions import get_condition, remove_condition, set_condition

Verdict = tuple[str, str]  # (reason, message)


@dataclass(frozen=True)
class Health:
    reconciling: Verdict | None = None
    stalled: Verdict | None = None


SETTLED = Health()

# Ready=False reasons of a Scene that no amount of waiting resolves.
SCENE_STALLED = frozenset(
    {
        Reason.INVALID_SPEC,
        Reason.BUDGET_EXHAUSTED,
        Reason.CLIP_MISSING,
        Reason.RETRIES_EXHAUSTED,
        Reason.BUCKET_UNAVAILABLE,
    }
)
# Ready=False reasons where the spec itself asks for nothing more: neither condition.
SCENE_SETTLED = frozenset({Reason.PAUSED, Reason.NOT_REQUESTED})
# Said when the Ready message is empty, so both conditions always carry a message.
FALLBACK = {
    Reason.IN_PROGRESS: "the operator is working on this scene",
    Reason.RETRY_REQUESTED: "retry requested: attempts reset",
    Reason.REGENERATE_REQUESTED: "regeneration requested: a new take",
    Reason.WAITING: "waiting for a free job slot",
}


def scene_health(phase: str | None, ready: Condition | None, next_retry_at: str | None) -> Health:
    """Reconciling/Stalled of a Scene from its phase and its (already derived) Ready."""
    if ready is None or ready.status == "True":
        return SETTLED
    reason, message = ready.reason, ready.message
    if phase == "Failed" or reason in SCENE_STALLED:
        return Health(stalled=(reason, message or f"{reason}: the scene cannot proceed"))
    if reason in SCENE_SETTLED:
        return SETTLED
    if reason == Reason.RETRY_SCHEDULED and not message:
        message = f"next attempt at {next_retry_at}" if next_retry_at else "a retry is scheduled"
    # Anything else (a job in flight, a slot awaited, ProjectNotFound: a Scene applied
    # before its Project in the same GitOps sync) is progress still expected.
    return Health(reconciling=(reason, message or FALLBACK.get(reason, "reconciling")))


def project_health(
    phase: str | None,
    ready: Condition | None,
    *,
    pending: int,
    processing: int,
    paused: bool,
    budget: Verdict | None,
    stalled: tuple[str, ...] = (),
) -> Health:
    """Reconciling/Stalled of a Project from its recount and its (already derived) Ready.

    `budget` is the BudgetExhausted verdict when `budget.maxGenerations` is used up;
    `stalled` holds the Stalled reasons of its Pending Scenes.
    """
    if ready is None or ready.status == "True":
        return SETTLED
    reason, message = ready.reason, ready.message
    if reason == Reason.INVALID_SPEC or phase == "Failed":
        return Health(stalled=(reason, message))
    if reason in (Reason.SCENES_FAILED, Reason.CLIP_MISSING):
        return Health(stalled=(reason, message))
    if reason in (Reason.PLANNING, Reason.PLANNING_FAILED):  # a failed plan is retried here
        return Health(reconciling=(reason, message))
    if processing:  # jobs already paid for finish even when paused or over budget
        return Health(reconciling=(reason, message))
    if paused:
        return SETTLED
    if budget is not None and pending:
        left = f"{pending} scene{'s' if pending != 1 else ''} left without a clip"
        return Health(stalled=(budget[0], f"{budget[1]}; {left}"))
    if pending and len(stalled) == pending:  # every Scene still to do is stuck
        reasons = sorted(set(stalled))
        reason = reasons[0] if len(reasons) == 1 else Reason.SCENES_STALLED
        scenes = f"{pending} scene{'s' if pending != 1 else ''}"
        return Health(stalled=(reason, f"{scenes} stalled: {', '.join(reasons)}"))
    return Health(reconciling=(reason, message or "reconciling"))


def with_health(
    conditions: list[Condition], health: Health, *, generation: int | None, now: str
) -> list[Condition]:
    """Set the True ones and remove the others (absent means False)."""
    out = conditions
    for type_, verdict in ((Cond.RECONCILING, health.reconciling), (Cond.STALLED, health.stalled)):
        if verdict is None:
            out = remove_condition(out, type_)
        else:
            out = set_condition(
                out, type_, "True", verdict[0], verdict[1], generation=generation, now=now
            )
    return out


def stalled_reason(status: dict[str, Any]) -> str:
    """The reason of a Scene's Stalled condition (wire form), or ""."""
    for cond in status.get("conditions") or []:
        if cond.get("type") == Cond.STALLED and cond.get("status") == "True":
            return str(cond.get("reason") or "")
    return ""


def with_scene_health(
    conditions: list[Condition],
    phase: str | None,
    next_retry_at: str | None,
    *,
    generation: int | None,
    now: str,
) -> list[Condition]:
    """The Scene's call site: Reconciling/Stalled from the Ready condition just derived."""
    health = scene_health(phase, get_condition(conditions, Cond.READY), next_retry_at)
    return with_health(conditions, health, generation=generation, now=now)
