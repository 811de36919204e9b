"""The Scene state machine (docs/architecture.md), row 8 and its gates: nothing yet, so
start (the pending marker) or say why not (paused, budget, capacity, bucket, Project
missing or invalid). One table row per rule; ids name the rule."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from controller.api.common import ErrorInfo
from controller.api.scene import ScenePhase
from controller.api.vocabulary import Reason
from controller.decide.scene import CAPACITY_RECHECK_SECONDS, WAITING_NOTICE_SECONDS, Effect, decide
from controller.decide.timeutil import rfc3339
from tests.unit.decide.scene_builders import (
    NOW,
    controls,
    err,
    in_flight,
    key,
    observe,
    seen,
    settle,
    status,
)
from tests.unit.decide.scene_cases import (
    LOOK_NOTHING,
    Case,
    adopted,
    check_case,
    fields_are,
    marker_written,
    ready_reason,
    requeued_after,
    unchanged,
)

NOTICE = dt.timedelta(seconds=WAITING_NOTICE_SECONDS)  # waited long enough to say so

CASES = [
    # --- row 8: nothing yet -> start, or one of the gates says why not
    pytest.param(
        Case(
            observe(expected=LOOK_NOTHING),
            Effect.START,
            "start-job",
            ScenePhase.PROCESSING,
            (),
            marker_written,
        ),
        id="start-job-writes-pending-marker",
    ),
    pytest.param(
        Case(
            observe(
                status(
                    phase=ScenePhase.PROCESSING,
                    attempts=2,
                    generations_started=5,
                    take=1,
                    last_error=err(),
                    next_retry_at=rfc3339(NOW),
                ),
                expected=seen(key(take=1), None),
            ),
            Effect.START,
            "start-job",
            ScenePhase.PROCESSING,
            (),
            marker_written,
        ),
        id="start-job-after-backoff-elapsed",
    ),
    pytest.param(
        Case(
            observe(controls=controls(generate_videos=False)),
            Effect.WRITE,
            "videos-not-requested",
            ScenePhase.PENDING,
            (),
            ready_reason(Reason.NOT_REQUESTED, "spec.generateVideos is false"),
        ),
        id="videos-not-requested-no-look-no-start",
    ),
    pytest.param(
        Case(
            settle(observe(controls=controls(generate_videos=False))),
            Effect.NONE,
            "videos-not-requested",
            ScenePhase.PENDING,
            (),
            unchanged,
        ),
        id="videos-not-requested-settled-zero-writes",
    ),
    pytest.param(
        Case(
            observe(expected=LOOK_NOTHING, controls=controls(paused=True)),
            Effect.WRITE,
            "paused",
            ScenePhase.PENDING,
            (),
            ready_reason(Reason.PAUSED),
        ),
        id="paused-no-start",
    ),
    pytest.param(
        Case(
            observe(in_flight(), controls=controls(paused=True)),
            Effect.POLL,
            "poll-job",
            None,
            (),
            unchanged,
        ),
        id="paused-still-polls-the-recorded-job",
    ),
    pytest.param(
        Case(
            observe(expected=LOOK_NOTHING, controls=controls(budget_left=0)),
            Effect.WRITE,
            "budget-exhausted",
            ScenePhase.PENDING,
            (),
            ready_reason(Reason.BUDGET_EXHAUSTED),
        ),
        id="budget-exhausted-no-start",
    ),
    pytest.param(
        Case(
            observe(expected=seen(key()), controls=controls(budget_left=0, paused=True)),
            Effect.WRITE,
            "adopt",
            ScenePhase.COMPLETED,
            (Reason.CLIP_ADOPTED,),
            adopted,
        ),
        id="adopt-needs-no-budget-and-ignores-pause",
    ),
    pytest.param(
        Case(
            observe(expected=LOOK_NOTHING, capacity=False),
            Effect.NONE,
            "waiting-capacity",
            None,
            (),
            requeued_after(WAITING_NOTICE_SECONDS),
        ),
        id="no-capacity-a-new-scene-parks-without-a-write",
    ),
    pytest.param(
        Case(
            observe(capacity=False, waiting_since=NOW - dt.timedelta(seconds=20)),
            Effect.NONE,
            "waiting-capacity",
            None,
            (),
            requeued_after(WAITING_NOTICE_SECONDS - 20),
        ),
        id="no-capacity-a-new-scene-parked-a-while-looks-again-at-the-notice-bound",
    ),
    pytest.param(
        Case(
            observe(expected=LOOK_NOTHING, capacity=False, waiting_since=NOW - NOTICE),
            Effect.WRITE,
            "waiting-capacity",
            ScenePhase.PENDING,
            (),
            ready_reason(Reason.WAITING),
        ),
        id="no-capacity-waited-long-says-so",
    ),
    pytest.param(
        Case(
            observe(
                status(phase=ScenePhase.PROCESSING, attempts=1, last_error=err()),
                expected=LOOK_NOTHING,
                capacity=False,
            ),
            Effect.WRITE,
            "waiting-capacity",
            ScenePhase.PROCESSING,
            (),
            ready_reason(Reason.WAITING),
        ),
        id="no-capacity-a-scene-with-a-status-says-so-at-once",
    ),
    pytest.param(
        Case(
            observe(expected=LOOK_NOTHING, capacity=False, planned=False),
            Effect.WRITE,
            "waiting-capacity",
            ScenePhase.PENDING,
            (),
            ready_reason(Reason.WAITING),
        ),
        id="no-capacity-a-scene-a-user-applied-says-so-at-once",
    ),
    pytest.param(
        Case(
            settle(observe(expected=LOOK_NOTHING, capacity=False, waiting_since=NOW - NOTICE)),
            Effect.NONE,
            "waiting-capacity",
            ScenePhase.PENDING,
            (),
            unchanged,
        ),
        id="no-capacity-settled-none-with-requeue",
    ),
    pytest.param(
        Case(
            observe(
                capacity=False,
                capacity_limit="replicate has 2 jobs in flight (X)",
                waiting_since=NOW - NOTICE,
            ),
            Effect.WRITE,
            "waiting-capacity",
            ScenePhase.PENDING,
            (),
            ready_reason(
                Reason.WAITING, "waiting for a free job slot: replicate has 2 jobs in flight (X)"
            ),
        ),
        id="no-capacity-waits-without-looking-at-s3-and-names-the-limit",
    ),
    pytest.param(
        Case(
            observe(capacity=False, controls=controls(paused=True)),
            Effect.LOOK_EXPECTED,
            "look-expected",
            None,
            (),
            unchanged,
        ),
        id="no-capacity-but-paused-still-looks-for-an-adoptable-clip",
    ),
    pytest.param(
        Case(
            observe(capacity=False, controls=controls(budget_left=0)),
            Effect.LOOK_EXPECTED,
            "look-expected",
            None,
            (),
            unchanged,
        ),
        id="no-capacity-and-no-budget-still-looks",
    ),
    pytest.param(
        Case(
            settle(
                observe(
                    status(
                        phase=ScenePhase.PROCESSING,
                        attempts=1,
                        generations_started=1,
                        last_error=err(),
                        next_retry_at=rfc3339(NOW + dt.timedelta(seconds=42)),
                    )
                )
            ),
            Effect.NONE,
            "backing-off",
            ScenePhase.PROCESSING,
            (),
            unchanged,
        ),
        id="backing-off-until-next-retry-at-no-look",
    ),
    pytest.param(
        Case(
            observe(
                status(
                    phase=ScenePhase.PROCESSING,
                    attempts=2,
                    generations_started=2,
                    spec_hash="h0",
                    last_error=err(),
                    next_retry_at=rfc3339(NOW + dt.timedelta(seconds=42)),
                )
            ),
            Effect.WRITE,
            "spec-moved",
            ScenePhase.PROCESSING,
            (Reason.SPEC_CHANGED,),
            fields_are(attempts=0, last_error=None, next_retry_at=None, spec_hash="h1"),
        ),
        id="spec-moved-between-attempts-resets-attempts-and-backoff",
    ),
    # --- blocked: project missing or invalid
    pytest.param(
        Case(
            observe(
                desired=None,
                blocked=ErrorInfo(reason=Reason.PROJECT_NOT_FOUND, message="project p not found"),
            ),
            Effect.WRITE,
            "blocked",
            ScenePhase.PENDING,
            (),
            ready_reason(Reason.PROJECT_NOT_FOUND, "project p not found"),
        ),
        id="blocked-project-missing-no-job",
    ),
    pytest.param(
        Case(
            observe(desired=None),
            Effect.WRITE,
            "blocked",
            ScenePhase.PENDING,
            (),
            ready_reason(Reason.INVALID_SPEC),
        ),
        id="blocked-no-desired-state-invalid-spec",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_decide_rule(case: Case) -> None:
    check_case(case)


def test_a_scene_that_already_says_it_waits_keeps_saying_it_without_a_write() -> None:
    """After a restart (no wait remembered) a Scene whose status already says
    WaitingForCapacity is neither rewritten nor taken back to an empty status."""
    shown = settle(observe(expected=LOOK_NOTHING, capacity=False, waiting_since=NOW - NOTICE))
    assert shown.status.phase == ScenePhase.PENDING
    d = decide(replace(shown, waiting_since=None))
    assert d.effect == Effect.NONE and d.rule == "waiting-capacity" and d.park
    assert d.status.wire() == shown.status.wire()
    assert d.requeue_after == CAPACITY_RECHECK_SECONDS
