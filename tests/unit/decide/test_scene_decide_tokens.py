"""The Scene state machine (docs/architecture.md): Failed is sticky until the spec changes
or a retry token arrives; retry and regenerate tokens (annotations) are handled once.
One table row per rule; ids name the rule."""

from __future__ import annotations

import pytest

from controller.api.scene import ScenePhase
from controller.api.vocabulary import Reason
from controller.decide.scene import Effect
from tests.unit.decide.scene_builders import completed, controls, failed, in_flight, observe
from tests.unit.decide.scene_cases import (
    Case,
    all_of,
    check_case,
    fields_are,
    handled,
    old_clip_kept,
    unchanged,
)

CASES = [
    # --- Failed is sticky until the spec changes or a retry token arrives
    pytest.param(
        Case(observe(failed()), Effect.NONE, "failed", ScenePhase.FAILED, (), unchanged),
        id="failed-stays-failed-no-look",
    ),
    pytest.param(
        Case(
            observe(failed(spec_hash="h0")),
            Effect.WRITE,
            "failed-spec-changed",
            ScenePhase.PENDING,
            (Reason.SPEC_CHANGED,),
            fields_are(attempts=0, last_error=None),
        ),
        id="failed-spec-changed-tries-again",
    ),
    # --- tokens (annotations), each handled once
    pytest.param(
        Case(
            observe(failed(), retry_token="r1"),
            Effect.WRITE,
            "retry-token",
            ScenePhase.PENDING,
            (Reason.RETRY_REQUESTED,),
            all_of(
                handled("handled_retry_token", "r1"),
                fields_are(attempts=0, last_error=None, next_retry_at=None),
            ),
        ),
        id="retry-token-on-failed-resets-attempts",
    ),
    pytest.param(
        Case(
            observe(failed(handled_retry_token="r1"), retry_token="r1"),
            Effect.NONE,
            "failed",
            ScenePhase.FAILED,
            (),
            unchanged,
        ),
        id="retry-token-handled-once",
    ),
    pytest.param(
        Case(
            observe(completed(), retry_token="r1"),
            Effect.WRITE,
            "retry-token",
            ScenePhase.COMPLETED,
            (),
            all_of(
                handled("handled_retry_token", "r1"), old_clip_kept, fields_are(attempts=1, take=0)
            ),
        ),
        id="retry-token-on-healthy-scene-only-remembered",
    ),
    pytest.param(
        Case(
            observe(failed(), controls=controls(retry_token="pr1")),
            Effect.WRITE,
            "project-retry-token",
            ScenePhase.PENDING,
            (Reason.RETRY_REQUESTED,),
            all_of(
                handled("handled_project_retry_token", "pr1"),
                fields_are(attempts=0, last_error=None),
            ),
        ),
        id="project-retry-token-on-failed-resets-attempts",
    ),
    pytest.param(
        Case(
            observe(
                failed(handled_project_retry_token="pr1"), controls=controls(retry_token="pr1")
            ),
            Effect.NONE,
            "failed",
            ScenePhase.FAILED,
            (),
            unchanged,
        ),
        id="project-retry-token-handled-once",
    ),
    pytest.param(
        Case(
            observe(completed(), regenerate_token="g1"),
            Effect.WRITE,
            "regenerate-token",
            ScenePhase.PROCESSING,
            (Reason.REGENERATE_REQUESTED,),
            all_of(
                handled("handled_regenerate_token", "g1"),
                old_clip_kept,
                fields_are(take=1, attempts=0),
            ),
        ),
        id="regenerate-token-new-take-old-clip-kept",
    ),
    pytest.param(
        Case(
            observe(failed(), regenerate_token="g1"),
            Effect.WRITE,
            "regenerate-token",
            ScenePhase.PENDING,
            (Reason.REGENERATE_REQUESTED,),
            fields_are(take=1, attempts=0, last_error=None),
        ),
        id="regenerate-token-on-failed-new-take",
    ),
    pytest.param(
        Case(
            observe(in_flight(), regenerate_token="g1"),
            Effect.WRITE,
            "regenerate-token",
            ScenePhase.PENDING,
            (Reason.REGENERATE_REQUESTED,),
            fields_are(take=1, attempts=0, generation=None),
        ),
        id="regenerate-token-drops-the-job-of-the-old-take",
    ),
    pytest.param(
        Case(
            observe(completed(take=1, handled_regenerate_token="g1"), regenerate_token="g1"),
            Effect.NONE,
            "completed",
            ScenePhase.COMPLETED,
            (),
            unchanged,
        ),
        id="regenerate-token-handled-once",
    ),
    pytest.param(
        Case(
            observe(completed(), controls=controls(regenerate_token="pg1")),
            Effect.WRITE,
            "project-regenerate-token",
            ScenePhase.PROCESSING,
            (Reason.REGENERATE_REQUESTED,),
            all_of(
                handled("handled_project_regenerate_token", "pg1"), fields_are(take=1, attempts=0)
            ),
        ),
        id="project-regenerate-token-new-take",
    ),
    pytest.param(
        Case(
            observe(
                completed(take=1, handled_project_regenerate_token="pg1"),
                controls=controls(regenerate_token="pg1"),
            ),
            Effect.NONE,
            "completed",
            ScenePhase.COMPLETED,
            (),
            unchanged,
        ),
        id="project-regenerate-token-handled-once",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_decide_rule(case: Case) -> None:
    check_case(case)
