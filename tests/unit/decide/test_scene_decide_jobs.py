"""The Scene state machine (docs/architecture.md), rows 4-7: a job is recorded (poll,
upload, orphan search), a retryable failure with attempts left, a permanent failure or
attempts exhausted. One table row per rule; ids name the rule."""

from __future__ import annotations

import datetime as dt

import pytest

from controller.api.scene import ScenePhase
from controller.api.vocabulary import Reason
from controller.decide import scene as sc
from controller.decide.scene import Effect, JobPhase, JobSeen
from tests.unit.decide.scene_builders import (
    LIMIT,
    NOW,
    desired,
    err,
    in_flight,
    key,
    obj,
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
    failed_with,
    fields_are,
    recovered,
    requeued_after,
    retry_scheduled,
    unchanged,
    uploaded,
)

CASES = [
    # --- rows 4-5: a job is recorded
    pytest.param(
        Case(observe(in_flight()), Effect.POLL, "poll-job", None, (), unchanged),
        id="job-recorded-poll-it",
    ),
    pytest.param(
        Case(
            observe(in_flight(), job=JobSeen("job-other", JobPhase.SUCCEEDED)),
            Effect.POLL,
            "poll-job",
            None,
            (),
            unchanged,
        ),
        id="job-seen-for-another-id-poll-again",
    ),
    pytest.param(
        Case(
            settle(observe(in_flight(), job=JobSeen("job-1", JobPhase.RUNNING))),
            Effect.NONE,
            "job-running",
            ScenePhase.PROCESSING,
            (),
            unchanged,
        ),
        id="job-running-waits-never-starts",
    ),
    pytest.param(
        Case(
            settle(observe(in_flight(), job=JobSeen("job-1", JobPhase.UNREACHABLE))),
            Effect.NONE,
            "poll-failed",
            ScenePhase.PROCESSING,
            (),
            unchanged,
        ),
        id="poll-failed-waits-never-starts",
    ),
    pytest.param(
        Case(
            observe(in_flight(), job=JobSeen("job-1", JobPhase.SUCCEEDED)),
            Effect.FINISH,
            "finish-job",
            None,
            (),
            unchanged,
        ),
        id="job-succeeded-finish-it",
    ),
    pytest.param(
        Case(
            observe(
                in_flight(), job=JobSeen("job-1", JobPhase.SUCCEEDED), finished=seen(key(), None)
            ),
            Effect.FINISH,
            "finish-job",
            None,
            (),
            unchanged,
        ),
        id="job-succeeded-upload-not-verified-finish-again",
    ),
    pytest.param(
        Case(
            observe(
                in_flight(), job=JobSeen("job-1", JobPhase.SUCCEEDED), finished=seen(key(take=9))
            ),
            Effect.FINISH,
            "finish-job",
            None,
            (),
            unchanged,
        ),
        id="job-succeeded-upload-of-another-key-finish-again",
    ),
    pytest.param(
        Case(
            observe(
                in_flight(),
                job=JobSeen("job-1", JobPhase.SUCCEEDED),
                finished=seen(key(), obj(key(), size=4321, etag='"up"', sha256="ab")),
            ),
            Effect.WRITE,
            "clip-uploaded",
            ScenePhase.COMPLETED,
            (Reason.CLIP_UPLOADED,),
            uploaded,
        ),
        id="job-succeeded-completed-only-with-the-verified-object",
    ),
    # --- row 6: failed, retryable, attempts < limit
    pytest.param(
        Case(
            observe(
                in_flight(1), job=JobSeen("job-1", JobPhase.FAILED, err()), expected=LOOK_NOTHING
            ),
            Effect.WRITE,
            "job-failed",
            ScenePhase.PROCESSING,
            (Reason.RETRY_SCHEDULED,),
            retry_scheduled("ServerError", 1),
        ),
        id="job-failed-retryable-schedules-retry",
    ),
    pytest.param(
        Case(
            observe(in_flight(2), job=JobSeen("job-1", JobPhase.LOST), expected=LOOK_NOTHING),
            Effect.WRITE,
            "job-lost",
            ScenePhase.PROCESSING,
            (Reason.RETRY_SCHEDULED,),
            retry_scheduled(Reason.JOB_LOST, 2),
        ),
        id="job-lost-retry-path-counted",
    ),
    pytest.param(
        Case(
            observe(in_flight(2), job=JobSeen("job-1", JobPhase.LOST)),
            Effect.LOOK_EXPECTED,
            "look-before-retry",
            None,
            (),
            unchanged,
        ),
        id="job-lost-looks-at-the-deterministic-key-first",
    ),
    pytest.param(
        Case(
            observe(in_flight(2), job=JobSeen("job-1", JobPhase.LOST), expected=seen(key())),
            Effect.WRITE,
            "adopt-after-job-ended",
            ScenePhase.COMPLETED,
            (Reason.CLIP_ADOPTED,),
            adopted,
        ),
        id="job-lost-adopts-the-clip-already-uploaded",
    ),
    pytest.param(
        Case(
            observe(in_flight(1, job_id=None), marker_watched=30.0),
            Effect.FIND_JOB,
            "find-orphan",
            ScenePhase.PROCESSING,
            (),
            unchanged,
        ),
        id="orphan-window-searches-the-provider-before-paying-again",
    ),
    pytest.param(
        Case(
            settle(observe(in_flight(1, job_id=None), marker_watched=10.0)),
            Effect.NONE,
            "orphan-settling",
            ScenePhase.PROCESSING,
            (),
            requeued_after(20.0),
        ),
        id="orphan-window-waits-until-a-create-sent-before-the-stop-is-answered",
    ),
    pytest.param(
        Case(
            # The marker's startedAt is an hour behind this process's wall clock (another
            # node's clock, or ours stepped): the wait counts only what this process saw.
            settle(observe(in_flight(1, job_id=None), now=NOW + dt.timedelta(hours=1))),
            Effect.NONE,
            "orphan-settling",
            ScenePhase.PROCESSING,
            (),
            requeued_after(30.0),
        ),
        id="orphan-window-is-timed-from-first-sight-not-from-another-nodes-clock",
    ),
    pytest.param(
        Case(
            observe(in_flight(1, job_id=None), orphan=sc.OrphanSearch("job-9")),
            Effect.WRITE,
            "orphan-recovered",
            ScenePhase.PROCESSING,
            (Reason.JOB_RECOVERED,),
            recovered("job-9"),
        ),
        id="orphan-window-resumes-the-job-found-no-new-attempt",
    ),
    pytest.param(
        Case(
            settle(
                observe(
                    in_flight(1, job_id=None),
                    orphan=sc.OrphanSearch(None, error=err("ServerError", "HTTP 503", True)),
                )
            ),
            Effect.NONE,
            "orphan-search-failed",
            ScenePhase.PROCESSING,
            (),
            unchanged,
        ),
        id="orphan-window-search-failed-searches-again-later",
    ),
    pytest.param(
        Case(
            observe(in_flight(1, job_id=None), orphan=sc.OrphanSearch(None)),
            Effect.WRITE,
            "orphan-window",
            ScenePhase.PROCESSING,
            (Reason.JOB_MAY_BE_ORPHANED, Reason.RETRY_SCHEDULED),
            retry_scheduled(Reason.JOB_MAY_BE_ORPHANED, 1),
        ),
        id="orphan-window-not-found-event-and-retry-path",
    ),
    pytest.param(
        Case(
            observe(in_flight(1, job_id=None), orphan=sc.OrphanSearch(None, searched=False)),
            Effect.WRITE,
            "orphan-window",
            ScenePhase.PROCESSING,
            (Reason.JOB_MAY_BE_ORPHANED, Reason.RETRY_SCHEDULED),
            retry_scheduled(Reason.JOB_MAY_BE_ORPHANED, 1),
        ),
        id="orphan-window-provider-cannot-list-event-and-retry-path",
    ),
    # --- row 7: failed permanently or attempts exhausted
    pytest.param(
        Case(
            observe(
                in_flight(1),
                job=JobSeen(
                    "job-1", JobPhase.FAILED, err("InvalidInput", "NSFW prompt", retryable=False)
                ),
                expected=LOOK_NOTHING,
            ),
            Effect.WRITE,
            "job-failed",
            ScenePhase.FAILED,
            (Reason.GENERATION_FAILED,),
            failed_with("InvalidInput", "NSFW prompt"),
        ),
        id="job-failed-permanently-fails-with-reason-and-message",
    ),
    pytest.param(
        Case(
            observe(in_flight(1), job=JobSeen("job-1", JobPhase.FAILED), expected=LOOK_NOTHING),
            Effect.WRITE,
            "job-failed",
            ScenePhase.FAILED,
            (Reason.GENERATION_FAILED,),
            failed_with(Reason.GENERATION_FAILED, "the job failed"),
        ),
        id="job-failed-without-error-is-permanent",
    ),
    pytest.param(
        Case(
            observe(
                in_flight(LIMIT),
                job=JobSeen("job-1", JobPhase.FAILED, err()),
                expected=LOOK_NOTHING,
            ),
            Effect.WRITE,
            "job-failed",
            ScenePhase.FAILED,
            (Reason.GENERATION_FAILED,),
            failed_with(
                Reason.RETRIES_EXHAUSTED, "3 attempts failed; last: ServerError: HTTP 503", True
            ),
        ),
        id="job-failed-attempts-exhausted-fails",
    ),
    pytest.param(
        Case(
            observe(in_flight(LIMIT), job=JobSeen("job-1", JobPhase.LOST), expected=LOOK_NOTHING),
            Effect.WRITE,
            "job-lost",
            ScenePhase.FAILED,
            (Reason.GENERATION_FAILED,),
            failed_with(Reason.RETRIES_EXHAUSTED, "JobLost", True),
        ),
        id="job-lost-attempts-exhausted-fails",
    ),
    pytest.param(
        Case(
            observe(in_flight(LIMIT, job_id=None), orphan=sc.OrphanSearch(None)),
            Effect.WRITE,
            "orphan-window",
            ScenePhase.FAILED,
            (Reason.JOB_MAY_BE_ORPHANED, Reason.GENERATION_FAILED),
            failed_with(Reason.RETRIES_EXHAUSTED, Reason.JOB_MAY_BE_ORPHANED, True),
        ),
        id="orphan-window-attempts-exhausted-fails",
    ),
    pytest.param(
        Case(
            observe(status(attempts=LIMIT, generations_started=LIMIT), expected=LOOK_NOTHING),
            Effect.WRITE,
            "attempts-exhausted",
            ScenePhase.FAILED,
            (Reason.RETRIES_EXHAUSTED,),
            failed_with(Reason.RETRIES_EXHAUSTED, "3 attempts used"),
        ),
        id="attempts-exhausted-without-a-job-fails",
    ),
    pytest.param(
        Case(
            observe(in_flight(1), desired=desired("h2")),
            Effect.WRITE,
            "abandon-stale-job",
            ScenePhase.PROCESSING,
            (Reason.SPEC_CHANGED,),
            fields_are(generation=None, attempts=0, next_retry_at=None, spec_hash="h2"),
        ),
        id="abandon-stale-job-when-spec-changed",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_decide_rule(case: Case) -> None:
    check_case(case)
