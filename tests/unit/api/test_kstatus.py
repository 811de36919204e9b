"""Reconciling/Stalled as kstatus and Argo CD read them, on statuses the operator really writes.

Each row builds a status with the operator's own pure functions (`decide` for Scenes,
`project_status` for Projects), wraps it in an object as the API server stores it, and
checks what kstatus (ported in tests/unit/kstatus.py) and the Argo CD script (real Lua)
make of it. Flux's `wait`/`healthChecks` compute the kstatus column.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from controller.api import vocabulary as v
from controller.api.common import ErrorInfo
from controller.api.project import MissingClipPolicy, ProjectSpec, ProjectStatus
from controller.api.scene import ScenePhase, SceneStatus
from controller.decide.conditions import get_condition
from controller.decide.project import ProjectObservation, SceneView, project_status
from controller.decide.scene import WAITING_NOTICE_SECONDS, Effect, JobPhase, JobSeen, ObjectSeen
from controller.decide.timeutil import rfc3339
from tests.unit.api.kstatus import CURRENT, FAILED, IN_PROGRESS, TERMINATING, compute
from tests.unit.api.test_argocd_health import health as argo
from tests.unit.decide.scene_builders import (
    NOW,
    completed,
    controls,
    drive,
    err,
    failed,
    in_flight,
    key,
    observe,
    status,
)

# ----------------------------------------------------------------------------- Scenes


def scene(o: Any) -> SceneStatus:
    """The status the operator writes for this observation (S3 empty, provider as given)."""
    _, trail = drive(o)
    return trail[-1].status


NO_BUCKET = (
    "upload to s3://gone/videos/x.mp4 failed: NoSuchBucket (HTTP 404): "
    "The specified bucket does not exist"
)

SCENES: dict[str, tuple[Callable[[], SceneStatus], str, str, str]] = {
    # id: (status, kstatus, Argo CD, the reason kstatus's condition carries)
    "new-job-started": (lambda: scene(observe()), IN_PROGRESS, "Progressing", "InProgress"),
    "job-running": (
        lambda: scene(observe(in_flight(), job=JobSeen("job-1", JobPhase.RUNNING))),
        IN_PROGRESS, "Progressing", "InProgress",
    ),
    "waiting-for-capacity": (
        lambda: scene(
            observe(
                capacity=False,
                capacity_limit="replicate has 20 jobs in flight",
                waiting_since=NOW - dt.timedelta(seconds=WAITING_NOTICE_SECONDS),
            )
        ),
        IN_PROGRESS, "Progressing", v.Reason.WAITING,
    ),
    "retry-scheduled": (
        lambda: scene(
            observe(
                status(
                    phase=ScenePhase.PENDING, attempts=1, generations_started=1, spec_hash="h1",
                    last_error=err(), next_retry_at=rfc3339(NOW + dt.timedelta(seconds=30)),
                )
            )
        ),
        IN_PROGRESS, "Progressing", v.Reason.RETRY_SCHEDULED,
    ),
    "project-not-found-yet": (
        lambda: scene(
            observe(desired=None, blocked=ErrorInfo(reason="ProjectNotFound", message="no p"))
        ),
        IN_PROGRESS, "Progressing", v.Reason.PROJECT_NOT_FOUND,
    ),
    "completed": (lambda: completed(), CURRENT, "Healthy", ""),
    "paused": (lambda: scene(observe(controls=controls(paused=True))), CURRENT, "Suspended", ""),
    "videos-not-requested": (
        lambda: scene(observe(controls=controls(generate_videos=False))),
        CURRENT, "Healthy", "",
    ),
    "failed-permanent-error": (lambda: failed(), FAILED, "Degraded", "InvalidInput"),
    "retries-exhausted": (
        lambda: scene(observe(status(attempts=3, generations_started=3, spec_hash="h1"))),
        FAILED, "Degraded", v.Reason.RETRIES_EXHAUSTED,
    ),
    "upload-to-a-bucket-gone-meanwhile": (
        lambda: scene(
            observe(
                in_flight(),
                job=JobSeen("job-1", JobPhase.FAILED, err("UploadFailed", NO_BUCKET, False)),
            )
        ),
        FAILED, "Degraded", v.Reason.UPLOAD_FAILED,
    ),
    "invalid-spec": (
        lambda: scene(
            observe(desired=None, blocked=ErrorInfo(reason="InvalidSpec", message="bad ratio"))
        ),
        FAILED, "Degraded", v.Reason.INVALID_SPEC,
    ),
    "budget-exhausted": (
        lambda: scene(observe(controls=controls(budget_left=0))),
        FAILED, "Degraded", v.Reason.BUDGET_EXHAUSTED,
    ),
    "clip-missing-ignored": (
        lambda: scene(
            observe(
                completed(),
                clip_check=ObjectSeen(key(), None),
                controls=controls(missing_clip=MissingClipPolicy.IGNORE),
            )
        ),
        FAILED, "Degraded", v.Reason.CLIP_MISSING,
    ),
}  # fmt: skip


def wrap(kind: str, st: SceneStatus | ProjectStatus, generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": v.API_VERSION,
        "kind": kind,
        "metadata": {"name": "x", "namespace": "ns", "generation": generation},
        "status": st.wire(),
    }


def check(obj: dict[str, Any], want_kstatus: str, want_argo: str, reason: str) -> None:
    conds = obj["status"]["conditions"]
    got_kstatus, message = compute(obj)
    assert (got_kstatus, argo(obj)[0]) == (want_kstatus, want_argo), conds
    kstatus_conds = {c["type"]: c for c in conds if c["type"] in ("Reconciling", "Stalled")}
    # Abnormal-true and absent when False; never both; always a reason and a message.
    assert all(c["status"] == "True" for c in kstatus_conds.values())
    assert len(kstatus_conds) <= 1
    expected_type = {IN_PROGRESS: "Reconciling", FAILED: "Stalled"}.get(want_kstatus)
    assert list(kstatus_conds) == ([expected_type] if expected_type else [])
    if expected_type:
        cond = kstatus_conds[expected_type]
        assert (cond["reason"], message) == (reason, cond["message"])
        assert cond["message"], cond
        assert cond["observedGeneration"] == obj["metadata"]["generation"]
    for cond in conds:  # what metav1.Condition requires of every condition
        assert {"type", "status", "reason", "message", "lastTransitionTime"} <= cond.keys(), cond
        assert cond["reason"], cond


@pytest.mark.parametrize("case", list(SCENES), ids=str)
def test_scene_health(case: str) -> None:
    make, want_kstatus, want_argo, reason = SCENES[case]
    check(wrap(v.SCENE_KIND, make()), want_kstatus, want_argo, reason)


def test_the_missing_bucket_is_named_in_the_stalled_message() -> None:
    obj = wrap(v.SCENE_KIND, SCENES["upload-to-a-bucket-gone-meanwhile"][0]())
    assert "NoSuchBucket" in compute(obj)[1]
    assert "NoSuchBucket" in argo(obj)[1]


def test_retry_scheduled_says_when() -> None:
    st = SCENES["retry-scheduled"][0]()
    cond = get_condition(st.conditions, v.Cond.RECONCILING)
    assert cond is not None and cond.message == f"next attempt at {st.next_retry_at}"


def test_a_job_start_is_reconciling_from_its_pending_marker() -> None:
    # The marker (written before the provider is called) already says Reconciling, so
    # the write that records the job id changes no condition and costs nothing extra.
    _, trail = drive(observe())
    assert trail[-1].effect == Effect.START
    marker = trail[-1].status
    assert get_condition(marker.conditions, v.Cond.RECONCILING) is not None


def test_a_stale_observed_generation_is_in_progress_whatever_the_conditions() -> None:
    obj = wrap(v.SCENE_KIND, completed(), generation=2)
    assert compute(obj)[0] == IN_PROGRESS
    assert argo(obj)[0] == "Progressing"


def test_deletion_is_terminating() -> None:
    obj = wrap(v.SCENE_KIND, completed())
    obj["metadata"]["deletionTimestamp"] = rfc3339(NOW)
    assert compute(obj)[0] == TERMINATING


def test_reconciling_goes_away_once_settled() -> None:
    o = observe(in_flight(), job=JobSeen("job-1", JobPhase.RUNNING))
    running = scene(o)
    assert get_condition(running.conditions, v.Cond.RECONCILING) is not None
    paused = scene(observe(controls=controls(paused=True)))
    assert get_condition(paused.conditions, v.Cond.RECONCILING) is None
    assert get_condition(paused.conditions, v.Cond.STALLED) is None


# ----------------------------------------------------------------------------- Projects


def views(*phases: ScenePhase, **kw: Any) -> tuple[SceneView, ...]:
    return tuple(
        SceneView(name=f"s{i}", sequence=i, phase=p, owned=True, **kw)
        for i, p in enumerate(phases, 1)
    )


def project(
    *scenes: SceneView, spec: dict[str, Any] | None = None, valid: bool = True, **kw: Any
) -> ProjectStatus:
    body = {"prompt": "a lighthouse", "generateVideos": True, **(spec or {})}
    return project_status(
        ProjectObservation(
            now=NOW,
            generation=1,
            status=ProjectStatus(),
            spec=ProjectSpec.model_validate(body) if valid else None,
            spec_error=None if valid else "spec.scenes.count: must be at most 50",
            scenes=scenes,
            **kw,
        )
    )


def stalled_views(*phases: ScenePhase, reason: str, start: int = 1) -> tuple[SceneView, ...]:
    return tuple(
        SceneView(name=f"s{i}", sequence=i, phase=p, owned=True, stalled=reason)
        for i, p in enumerate(phases, start)
    )


P, C, F, R = ScenePhase.PENDING, ScenePhase.COMPLETED, ScenePhase.FAILED, ScenePhase.PROCESSING
BUDGET = {"budget": {"maxGenerations": 2}}

PROJECTS: dict[str, tuple[Callable[[], ProjectStatus], str, str, str]] = {
    "planning": (lambda: project(planning=True), IN_PROGRESS, "Progressing", v.Reason.PLANNING),
    "planning-failed-will-retry": (
        lambda: project(planning_error=err("RateLimited", "429", retryable=True)),
        IN_PROGRESS, "Progressing", v.Reason.PLANNING_FAILED,
    ),
    "planning-failed-for-good": (
        lambda: project(planning_error=err("InvalidRequest", "400", retryable=False)),
        FAILED, "Degraded", v.Reason.PLANNING_FAILED,
    ),
    "invalid-spec": (lambda: project(valid=False), FAILED, "Degraded", v.Reason.INVALID_SPEC),
    "generating": (lambda: project(*views(C, R, P)), IN_PROGRESS, "Progressing", "InProgress"),
    "completed": (lambda: project(*views(C, C)), CURRENT, "Healthy", ""),
    "scenes-only": (
        lambda: project(*views(P, P), spec={"generateVideos": False}), CURRENT, "Healthy", ""
    ),
    "a-scene-failed": (
        lambda: project(*views(C, F)), FAILED, "Degraded", v.Reason.SCENES_FAILED
    ),
    "one-failed-others-running": (
        lambda: project(*views(F, R)), IN_PROGRESS, "Progressing", "InProgress"
    ),
    "budget-exhausted-work-left": (
        lambda: project(*views(C, C, P), spec=BUDGET, budget_used=2),
        FAILED, "Degraded", v.Reason.BUDGET_EXHAUSTED,
    ),
    "budget-exhausted-last-job-running": (
        lambda: project(*views(C, R, P), spec=BUDGET, budget_used=2),
        IN_PROGRESS, "Progressing", "InProgress",
    ),
    "budget-exhausted-nothing-left": (
        lambda: project(*views(C, C), spec=BUDGET, budget_used=2), CURRENT, "Healthy", ""
    ),
    "paused": (
        lambda: project(*views(C, P), spec={"paused": True}), CURRENT, "Suspended", ""
    ),
    "paused-job-finishing": (
        lambda: project(*views(R, P), spec={"paused": True}),
        IN_PROGRESS, "Progressing", "InProgress",
    ),
    "every-scene-left-stalled": (
        lambda: project(*views(C), *stalled_views(P, P, reason=v.Reason.BUCKET_UNAVAILABLE)),
        FAILED, "Degraded", v.Reason.BUCKET_UNAVAILABLE,
    ),
    "scenes-stalled-for-different-reasons": (
        lambda: project(
            *stalled_views(P, reason=v.Reason.BUCKET_UNAVAILABLE),
            *stalled_views(P, reason=v.Reason.INVALID_SPEC, start=2),
        ),
        FAILED, "Degraded", v.Reason.SCENES_STALLED,
    ),
    "one-stalled-one-waiting": (
        lambda: project(*stalled_views(P, reason=v.Reason.INVALID_SPEC), *views(P, P)[1:]),
        IN_PROGRESS, "Progressing", "InProgress",
    ),
    "clip-missing-ignored": (
        lambda: project(
            SceneView(name="s1", sequence=1, phase=C, owned=True),
            SceneView(name="s2", sequence=2, phase=C, owned=True, clip_missing=True),
        ),
        FAILED, "Degraded", v.Reason.CLIP_MISSING,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(PROJECTS), ids=str)
def test_project_health(case: str) -> None:
    make, want_kstatus, want_argo, reason = PROJECTS[case]
    check(wrap(v.PROJECT_KIND, make()), want_kstatus, want_argo, reason)


def test_budget_stall_says_how_much_is_left() -> None:
    st = PROJECTS["budget-exhausted-work-left"][0]()
    cond = get_condition(st.conditions, v.Cond.STALLED)
    assert cond is not None
    assert cond.message == "2 of 2 generations used; 1 scene left without a clip"


def test_a_project_whose_scenes_are_all_stalled_says_why() -> None:
    st = PROJECTS["every-scene-left-stalled"][0]()
    cond = get_condition(st.conditions, v.Cond.STALLED)
    assert cond is not None and cond.message == "2 scenes stalled: BucketUnavailable"
    mixed = get_condition(
        PROJECTS["scenes-stalled-for-different-reasons"][0]().conditions, "Stalled"
    )
    assert mixed is not None and mixed.message == "2 scenes stalled: BucketUnavailable, InvalidSpec"
