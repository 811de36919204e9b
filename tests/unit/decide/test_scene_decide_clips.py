"""The Scene state machine (docs/architecture.md), rows 1-3: an object for the current spec
hash is adopted, a Completed clip that went missing or changed, a spec change. One table
row per rule; ids name the rule."""

from __future__ import annotations

import datetime as dt

import pytest

from controller.api.project import MissingClipPolicy
from controller.api.scene import ScenePhase
from controller.api.vocabulary import Reason
from controller.decide.scene import Effect
from controller.decide.timeutil import rfc3339
from tests.unit.decide.scene_builders import (
    NOW,
    completed,
    controls,
    err,
    key,
    obj,
    observe,
    seen,
    status,
)
from tests.unit.decide.scene_cases import (
    Case,
    adopted,
    all_of,
    check_case,
    clip_cleared,
    failed_with,
    fields_are,
    missing_but_kept,
    new_take,
    old_clip_kept,
    ready_again,
    ready_reason,
    unchanged,
)

CASES = [
    # --- row 1: an object exists for the current spec hash -> adopt it, no job
    pytest.param(
        Case(
            observe(expected=seen(key())),
            Effect.WRITE,
            "adopt",
            ScenePhase.COMPLETED,
            (Reason.CLIP_ADOPTED,),
            adopted,
        ),
        id="adopt-existing-object-for-current-spec-hash",
    ),
    pytest.param(
        Case(
            observe(
                status(
                    phase=ScenePhase.PROCESSING,
                    attempts=1,
                    generations_started=1,
                    last_error=err(),
                    next_retry_at=rfc3339(NOW - dt.timedelta(seconds=1)),
                ),
                expected=seen(key()),
            ),
            Effect.WRITE,
            "adopt",
            ScenePhase.COMPLETED,
            (Reason.CLIP_ADOPTED,),
            adopted,
        ),
        id="adopt-even-when-status-said-processing",
    ),
    pytest.param(
        Case(observe(), Effect.LOOK_EXPECTED, "look-expected", None, (), unchanged),
        id="look-expected-before-starting",
    ),
    pytest.param(
        Case(
            observe(status(take=1), expected=seen(key(take=0))),
            Effect.LOOK_EXPECTED,
            "look-expected",
            None,
            (),
            unchanged,
        ),
        id="look-again-when-the-look-was-for-another-take",
    ),
    # --- row 2: status says Completed but the object is missing or changed
    pytest.param(
        Case(
            observe(status(phase=ScenePhase.COMPLETED, attempts=1, generations_started=1)),
            Effect.WRITE,
            "completed-without-clip",
            ScenePhase.PENDING,
            (Reason.CLIP_MISSING,),
            clip_cleared,
        ),
        id="completed-without-clip-goes-back-to-generation",
    ),
    pytest.param(
        Case(
            observe(completed(), clip_check=seen(key(), None)),
            Effect.WRITE,
            "clip-missing-regenerate",
            ScenePhase.PENDING,
            (Reason.CLIP_MISSING,),
            new_take,
        ),
        id="clip-missing-regenerate-new-take",
    ),
    pytest.param(
        Case(
            observe(completed(), clip_check=seen(key(), obj(key(), size=999))),
            Effect.WRITE,
            "clip-missing-regenerate",
            ScenePhase.PENDING,
            (Reason.CLIP_MISSING,),
            new_take,
        ),
        id="clip-size-changed-regenerate-new-take",
    ),
    pytest.param(
        Case(
            observe(completed(), clip_check=seen(key(), obj(key(), etag='"other"'))),
            Effect.WRITE,
            "clip-missing-regenerate",
            ScenePhase.PENDING,
            (Reason.CLIP_MISSING,),
            new_take,
        ),
        id="clip-etag-changed-regenerate-new-take",
    ),
    pytest.param(
        Case(
            observe(
                completed(),
                clip_check=seen(key(), None),
                controls=controls(missing_clip=MissingClipPolicy.FAIL),
            ),
            Effect.WRITE,
            "clip-missing-fail",
            ScenePhase.FAILED,
            (Reason.CLIP_MISSING,),
            all_of(clip_cleared, failed_with(Reason.CLIP_MISSING, "is missing")),
        ),
        id="clip-missing-fail-policy-fails",
    ),
    pytest.param(
        Case(
            observe(
                completed(),
                clip_check=seen(key(), None),
                controls=controls(missing_clip=MissingClipPolicy.IGNORE),
            ),
            Effect.WRITE,
            "clip-missing-ignored",
            ScenePhase.COMPLETED,
            (Reason.CLIP_MISSING,),
            all_of(ready_reason(Reason.CLIP_MISSING), missing_but_kept),
        ),
        id="clip-missing-ignore-policy-keeps-the-record-but-is-not-ready",
    ),
    pytest.param(
        Case(
            observe(
                completed(last_error=err(Reason.CLIP_MISSING, "gone; Ignore", False)),
                clip_check=seen(key(), None),
                controls=controls(missing_clip=MissingClipPolicy.IGNORE),
            ),
            Effect.NONE,
            "clip-missing-ignored",
            ScenePhase.COMPLETED,
            (),
            unchanged,
        ),
        id="clip-missing-ignored-again-no-write-no-event",
    ),
    pytest.param(
        Case(
            observe(
                completed(last_error=err(Reason.CLIP_MISSING, "gone; Ignore", False)),
                clip_check=seen(key()),
                controls=controls(missing_clip=MissingClipPolicy.IGNORE),
            ),
            Effect.WRITE,
            "clip-restored",
            ScenePhase.COMPLETED,
            (Reason.CLIP_RESTORED,),
            all_of(ready_again, fields_are(last_error=None)),
        ),
        id="ignored-missing-clip-back-intact-is-ready-again",
    ),
    pytest.param(
        Case(
            observe(completed(), clip_check=seen(key())),
            Effect.NONE,
            "completed",
            ScenePhase.COMPLETED,
            (),
            unchanged,
        ),
        id="clip-check-intact-no-write",
    ),
    pytest.param(
        Case(
            observe(completed(), clip_check=seen(key(take=7), None)),
            Effect.NONE,
            "completed",
            ScenePhase.COMPLETED,
            (),
            unchanged,
        ),
        id="clip-check-of-another-key-is-ignored",
    ),
    pytest.param(
        Case(observe(completed()), Effect.NONE, "completed", ScenePhase.COMPLETED, (), unchanged),
        id="completed-healthy-and-settled-zero-writes",
    ),
    # --- row 3: spec changed (the clip is for another hash)
    pytest.param(
        Case(
            observe(completed("h0")),
            Effect.WRITE,
            "spec-changed",
            ScenePhase.PROCESSING,
            (Reason.SPEC_CHANGED,),
            all_of(old_clip_kept, fields_are(attempts=0, last_error=None, next_retry_at=None)),
        ),
        id="spec-changed-regenerates-keeping-the-old-clip",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_decide_rule(case: Case) -> None:
    check_case(case)
