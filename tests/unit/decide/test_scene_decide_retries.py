"""After a start error (refused, ambiguous, retryable, unanswered) and the backoff between
attempts: what `after_start_error` writes, when the next attempt may run, and the orphan
search before paying again."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from controller.api.project import Backoff
from controller.api.scene import ScenePhase, SceneStatus
from controller.api.vocabulary import Cond, Reason
from controller.decide import scene as sc
from controller.decide.backoff import backoff_seconds
from controller.decide.scene import (
    Effect,
    JobPhase,
    JobSeen,
    Observation,
    Outcome,
    after_start_error,
    decide,
    with_job_id,
)
from controller.decide.timeutil import rfc3339
from tests.unit.decide.scene_builders import (
    LIMIT,
    NOW,
    assert_retry_at,
    cond,
    controls,
    err,
    in_flight,
    key,
    observe,
    reasons,
    seconds_until,
    seen,
    status,
)
from tests.unit.decide.scene_cases import LOOK_NOTHING

# ----------------------------------------------------------------------------- start errors


def _start(before: SceneStatus, **kw: object) -> tuple[Observation, SceneStatus]:
    o = observe(before, expected=seen(key(take=before.take), None), **kw)
    d = decide(o)
    assert d.effect == Effect.START
    return o, d.status


BEFORE_RETRY = status(
    phase=ScenePhase.PROCESSING,
    attempts=1,
    generations_started=4,
    last_error=err(),
    next_retry_at=rfc3339(NOW - dt.timedelta(seconds=5)),
)


@pytest.mark.parametrize(
    ("before", "error", "ambiguous", "rule", "phase", "attempts_delta", "events"),
    [
        pytest.param(
            BEFORE_RETRY,
            err("RateLimited", "HTTP 429", True),
            False,
            "start-refused",
            ScenePhase.PROCESSING,
            0,
            (Reason.RETRY_SCHEDULED,),
            id="start-refused-http-retryable-gives-the-attempt-back",
        ),
        pytest.param(
            SceneStatus(),
            err("ServerError", "HTTP 503", True),
            False,
            "start-refused",
            ScenePhase.PROCESSING,
            0,
            (Reason.RETRY_SCHEDULED,),
            id="start-refused-on-the-first-attempt",
        ),
        pytest.param(
            BEFORE_RETRY,
            err("InvalidInput", "duration must be 4, 6 or 8", False),
            False,
            "start-rejected",
            ScenePhase.FAILED,
            0,
            (Reason.GENERATION_FAILED,),
            id="start-rejected-permanent-fails-with-provider-message",
        ),
    ],
)
def test_after_start_error(before, error, ambiguous, rule, phase, attempts_delta, events) -> None:
    o, marker = _start(before)
    d = after_start_error(o, marker, error, ambiguous=ambiguous)

    assert (d.effect, d.rule, d.status.phase) == (Effect.WRITE, rule, phase)
    assert tuple(reasons(d)) == events
    s = d.status
    assert s.generation is None, "the pending marker must be cleared"
    assert s.attempts == before.attempts + attempts_delta
    assert s.generations_started == before.generations_started + attempts_delta
    assert s.last_error is not None
    if phase == ScenePhase.FAILED and not error.retryable:
        assert (s.last_error.reason, s.last_error.message) == (error.reason, error.message)
        assert cond(s, Cond.READY).message == error.message
    elif phase == ScenePhase.FAILED:
        assert s.last_error.reason == Reason.RETRIES_EXHAUSTED
        assert error.message in s.last_error.message
    else:
        assert s.last_error == error
        assert_retry_at(s, max(s.attempts, 1))


def test_start_refused_does_not_consume_the_retry_limit() -> None:
    before = status(phase=ScenePhase.PROCESSING, attempts=LIMIT - 1, generations_started=2)
    o, marker = _start(before)
    refused = after_start_error(o, marker, err("RateLimited", "429"), ambiguous=False)
    later = observe(refused.status, now=NOW + dt.timedelta(hours=1), expected=seen(key(), None))
    d = decide(later)
    assert d.effect == Effect.START and d.status.attempts == LIMIT


def test_with_job_id_records_the_id_and_nothing_else() -> None:
    _, marker = _start(SceneStatus())
    recorded = with_job_id(marker, "job-42")
    assert recorded.generation is not None and recorded.generation.job_id == "job-42"
    assert recorded.model_copy(update={"generation": marker.generation}) == marker


# ----------------------------------------------------------------------------- backoff


@pytest.mark.parametrize(
    ("attempts", "jitter", "policy", "expected"),
    [
        pytest.param(1, 0.0, Backoff(), 5.0, id="first-failure-lower-bound"),
        pytest.param(1, 0.999999, Backoff(), 10.0, id="first-failure-upper-bound"),
        pytest.param(3, 0.5, Backoff(), 30.0, id="third-failure-doubles-twice"),
        pytest.param(9, 0.999999, Backoff(max_seconds=600), 600.0, id="capped-at-max-seconds"),
        pytest.param(2, 1.7, Backoff(), 20.0, id="jitter-above-one-is-clamped"),
        pytest.param(2, -1.0, Backoff(), 10.0, id="jitter-below-zero-is-clamped"),
        pytest.param(4, 0.3, Backoff(initial_seconds=0), 0.0, id="zero-initial-no-wait"),
    ],
)
def test_backoff_seconds(attempts, jitter, policy, expected) -> None:
    assert backoff_seconds(attempts, policy, jitter) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("jitter", [0.0, 0.25, 0.5, 0.999], ids=lambda j: f"jitter-{j}")
@pytest.mark.parametrize("attempts", [1, 2, 4], ids=lambda a: f"attempt-{a}")
def test_retry_schedule_follows_backoff_with_jitter_bounds(attempts: int, jitter: float) -> None:
    policy = Backoff(initial_seconds=10, factor=3.0, max_seconds=60)
    o = observe(
        in_flight(attempts),
        job=JobSeen("job-1", JobPhase.FAILED, err()),
        expected=LOOK_NOTHING,
        controls=controls(backoff=policy, retry_limit=5),  # 4 hits the 60 s cap
        jitter=jitter,
    )
    d = decide(o)
    assert d.rule == "job-failed" and d.status.phase == ScenePhase.PROCESSING
    exact = backoff_seconds(attempts, policy, jitter)
    assert seconds_until(d.status.next_retry_at) == int(exact)  # RFC 3339 keeps whole seconds
    assert_retry_at(d.status, attempts, policy)


def test_after_start_error_always_asks_to_overwrite_the_marker() -> None:
    """the decision used to be settled against the pre-marker status, so a refusal
    in the same second with backoff 0 answered NONE and left the stored marker behind."""
    ctl = controls(backoff=Backoff(initial_seconds=0))
    refusal = err("RateLimited", "HTTP 429", True)
    o, marker = _start(SceneStatus(), controls=ctl)
    first = after_start_error(o, marker, refusal, ambiguous=False)
    assert first.effect == Effect.WRITE
    o2, marker2 = _start(first.status, controls=ctl)  # the next pass, in the same second
    second = after_start_error(o2, marker2, refusal, ambiguous=False)
    assert second.status.generation is None
    assert second.effect == Effect.WRITE, "the stored marker would be left behind"


@pytest.mark.parametrize(
    ("before", "search", "rule", "phase", "attempts_delta", "events"),
    [
        pytest.param(
            BEFORE_RETRY,
            sc.OrphanSearch("job-7"),
            "unanswered-recovered",
            ScenePhase.PROCESSING,
            1,
            (Reason.JOB_RECOVERED,),
            id="unanswered-create-whose-job-exists-is-resumed",
        ),
        pytest.param(
            BEFORE_RETRY,
            sc.OrphanSearch(None),
            "start-ambiguous",
            ScenePhase.PROCESSING,
            1,
            (Reason.RETRY_SCHEDULED,),
            id="unanswered-create-without-a-job-keeps-the-attempt-counted",
        ),
        pytest.param(
            status(phase=ScenePhase.PROCESSING, attempts=LIMIT - 1, generations_started=2),
            sc.OrphanSearch(None, searched=False),
            "start-ambiguous",
            ScenePhase.FAILED,
            1,
            (Reason.GENERATION_FAILED,),
            id="unanswered-create-on-the-last-attempt-fails",
        ),
    ],
)
def test_unanswered_create_is_searched_for_before_paying_again(
    before, search, rule, phase, attempts_delta, events
) -> None:
    """No answer to a create: the marker stays (attempt counted, no job id) with the
    error; once the create has surely been answered, the provider is searched."""
    o, marker = _start(before)
    timeout = err("Timeout", "read timed out", True).model_copy(update={"at": rfc3339(NOW)})
    kept = after_start_error(o, marker, timeout, ambiguous=True)
    assert (kept.effect, kept.rule) == (Effect.WRITE, "start-unanswered")
    assert kept.status.generation == marker.generation and kept.status.last_error == timeout
    assert kept.requeue_after == pytest.approx(30.0)

    # Watched on this process's monotonic clock (marker_watched), not its wall clock.
    waiting = decide(replace(o, status=kept.status, now=NOW + dt.timedelta(hours=1)))
    assert (waiting.effect, waiting.rule) == (Effect.NONE, "orphan-settling")
    later = replace(o, status=kept.status, marker_watched=31.0)
    assert decide(later).effect == Effect.FIND_JOB

    d = decide(replace(later, orphan=search))
    assert (d.effect, d.rule, d.status.phase) == (Effect.WRITE, rule, phase)
    assert tuple(reasons(d)) == events
    s = d.status
    assert s.attempts == before.attempts + attempts_delta
    assert s.generations_started == before.generations_started + attempts_delta
    if search.job_id:
        assert s.generation is not None and s.generation.job_id == search.job_id
        assert s.last_error is None
    else:
        assert s.generation is None and s.last_error is not None


@pytest.mark.parametrize(
    ("unanswered", "search", "outcome"),
    [
        pytest.param(
            False, sc.OrphanSearch("job-9"), Outcome.ORPHAN_RECOVERED, id="orphan-recovered"
        ),
        pytest.param(
            True, sc.OrphanSearch("job-7"), Outcome.ORPHAN_RECOVERED, id="unanswered-recovered"
        ),
        pytest.param(False, sc.OrphanSearch(None), Outcome.ORPHAN_AGAIN, id="orphan-window"),
        pytest.param(True, sc.OrphanSearch(None), None, id="start-ambiguous"),
    ],
)
def test_every_job_recovered_or_maybe_orphaned_is_an_orphan_window_outcome(
    unanswered: bool, search: sc.OrphanSearch, outcome: Outcome | None
) -> None:
    """scene_operator_orphan_window_total counts decisions by `Decision.outcome`; an
    unanswered create whose job was found posts JobRecovered and is counted too."""
    if unanswered:
        o, marker = _start(BEFORE_RETRY)
        timeout = err("Timeout", "read timed out", True).model_copy(update={"at": rfc3339(NOW)})
        kept = after_start_error(o, marker, timeout, ambiguous=True).status
        o = replace(o, status=kept, now=NOW + dt.timedelta(seconds=31), orphan=search)
    else:
        o = observe(in_flight(1, job_id=None), orphan=search)
    d = decide(o)
    assert d.outcome == outcome, d.rule
    assert (Reason.JOB_RECOVERED in reasons(d)) == (outcome == Outcome.ORPHAN_RECOVERED)
    assert (Reason.JOB_MAY_BE_ORPHANED in reasons(d)) == (outcome == Outcome.ORPHAN_AGAIN)
