"""Decisions on refused provider output and on ambiguous creates (pure, table-driven):
an object that is not a video is never adopted; a job failure is retried unless it is
a named permanent one; a create whose job cannot be looked for, started again, is
reported as JobMayBeOrphaned and counted."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from controller.api.common import ErrorInfo
from controller.api.scene import ScenePhase
from controller.api.vocabulary import Reason
from controller.decide import scene as sc
from controller.decide.scene import Effect, JobPhase, JobSeen, ObjectSeen, decide
from controller.decide.timeutil import rfc3339
from controller.providers import errors
from tests.unit.decide.scene_builders import (
    LIMIT,
    NOW,
    drive,
    err,
    gen,
    in_flight,
    key,
    obj,
    observe,
    reasons,
    status,
)

CUDA = "CUDA error: an illegal memory access was encountered"
HTML = "output is not a readable video (56 bytes): InvalidDataError: Invalid data found"


def not_a_video(k: str) -> sc.StoredObject:
    return replace(obj(k, size=56), invalid=HTML)


def test_an_object_that_is_not_a_video_is_not_adopted_a_job_starts() -> None:
    s3 = {key(): not_a_video(key())}
    _, trail = drive(observe(status()), s3)
    assert [d.rule for d in trail] == ["look-expected", "start-job"]
    start = trail[-1]
    assert start.effect == Effect.START and start.status.clip is None
    assert reasons(start) == [Reason.INVALID_OUTPUT]
    assert HTML in start.events[0].message and start.events[0].type == "Warning"


def test_a_video_at_the_key_is_still_adopted() -> None:
    o, trail = drive(observe(status()), {key(): obj(key())})
    assert "adopt" in [d.rule for d in trail] and o.status.phase == ScenePhase.COMPLETED


def test_after_a_failed_job_an_object_that_is_not_a_video_is_not_adopted() -> None:
    failure = err(Reason.INVALID_OUTPUT, HTML, True)
    o, trail = drive(
        observe(in_flight(1)),
        {key(): not_a_video(key())},
        job=JobSeen("job-1", JobPhase.FAILED, failure),
    )
    assert "adopt-after-job-ended" not in [d.rule for d in trail]
    assert o.status.phase == ScenePhase.PROCESSING and o.status.clip is None
    assert o.status.last_error is not None and o.status.last_error.reason == Reason.INVALID_OUTPUT
    assert Reason.RETRY_SCHEDULED in [r for d in trail for r in reasons(d)]


@pytest.mark.parametrize(
    ("text", "phase", "reason"),
    [
        (CUDA, ScenePhase.PROCESSING, "GenerationFailed"),  # retried: RetryScheduled
        ("NSFW content detected", ScenePhase.FAILED, "SafetyBlocked"),
        ("Prediction input failed validation: duration", ScenePhase.FAILED, "InvalidRequest"),
    ],
)
def test_a_failed_job_is_retried_unless_permanent(text: str, phase: ScenePhase, reason: str):
    e = errors.job_failure("GenerationFailed", text)
    info = ErrorInfo(reason=e.reason, message=e.message, retryable=e.retryable, at=rfc3339(NOW))
    o, trail = drive(observe(in_flight(1)), {}, job=JobSeen("job-1", JobPhase.FAILED, info))
    assert o.status.phase == phase, [d.rule for d in trail]
    assert o.status.last_error is not None and o.status.last_error.reason == reason


def test_invalid_output_of_the_wrong_length_fails_at_once() -> None:
    info = err(Reason.INVALID_OUTPUT, "output is 4.00s of video, 8s were asked", False)
    o, _ = drive(observe(in_flight(1)), {}, job=JobSeen("job-1", JobPhase.FAILED, info))
    assert o.status.phase == ScenePhase.FAILED and o.status.attempts == 1
    assert o.status.last_error is not None
    assert o.status.last_error.reason == Reason.INVALID_OUTPUT


def test_a_long_error_text_fits_the_status_when_retries_are_exhausted() -> None:
    info = ErrorInfo(reason="GenerationFailed", message="x" * 4096, retryable=True)
    o, _ = drive(observe(in_flight(LIMIT)), {}, job=JobSeen("job-1", JobPhase.FAILED, info))
    assert o.status.phase == ScenePhase.FAILED
    last = o.status.last_error
    assert last is not None and last.reason == Reason.RETRIES_EXHAUSTED
    assert len(last.message) <= 4096 and "characters cut" in last.message
    ErrorInfo.model_validate(last.model_dump())  # the API server's schema accepts it


# ----------------------------------------------------------------------------- orphan window


def unanswered(attempt: int = 1) -> sc.Observation:
    """A marker whose create got no answer (a dropped connection), long enough ago."""
    g = gen(job_id=None, attempt=attempt)
    at = rfc3339(NOW - dt.timedelta(minutes=1))
    e = ErrorInfo(reason="ConnectionError", message="RemoteProtocolError", retryable=True, at=at)
    st = status(
        phase=ScenePhase.PROCESSING,
        generation=g,
        attempts=attempt,
        generations_started=attempt,
        spec_hash="h1",
        last_error=e,
    )
    return observe(st, marker_watched=60.0)


@pytest.mark.parametrize(
    ("search", "rule", "orphan_event"),
    [
        pytest.param(sc.OrphanSearch(None, searched=False), "unanswered-window", True, id="veo"),
        pytest.param(
            sc.OrphanSearch(None, error=err("Unauthorized", "list refused", False)),
            "unanswered-window",
            True,
            id="search-failed",
        ),
        pytest.param(sc.OrphanSearch(None), "start-ambiguous", False, id="searched-not-found"),
    ],
)
def test_an_unanswered_create_started_again_without_a_search_is_may_be_orphaned(
    search: sc.OrphanSearch, rule: str, orphan_event: bool
) -> None:
    o = unanswered()
    assert decide(o).effect == Effect.FIND_JOB
    d = decide(replace(o, orphan=search))
    assert d.rule == rule and d.effect == Effect.WRITE
    assert d.status.phase == ScenePhase.PROCESSING and d.status.next_retry_at  # started again
    assert (Reason.JOB_MAY_BE_ORPHANED in reasons(d)) == orphan_event
    assert (sc.OUTCOMES.get(d.rule) == sc.Outcome.ORPHAN_AGAIN) == orphan_event
    if orphan_event:
        assert d.status.last_error is not None
        assert d.status.last_error.reason == Reason.JOB_MAY_BE_ORPHANED
        assert "the create got no answer" in d.status.last_error.message


def test_every_orphan_rule_has_an_outcome_label() -> None:
    assert {sc.OUTCOMES[r] for r in (sc.Rule.ORPHAN_WINDOW, sc.Rule.UNANSWERED_WINDOW)} == {
        sc.Outcome.ORPHAN_AGAIN
    }
    recovered = decide(replace(unanswered(), orphan=sc.OrphanSearch("job-9")))
    assert recovered.outcome == sc.Outcome.ORPHAN_RECOVERED
    stopped = observe(in_flight(1, job_id=None))
    again = decide(replace(stopped, orphan=sc.OrphanSearch(None, searched=False)))
    assert again.outcome == sc.Outcome.ORPHAN_AGAIN
    assert ObjectSeen  # imported for readers of the table above
