"""The Scene state machine over several passes: requeues, flows driven through the
runtime's own effect loop (`drive`), and regressions of bugs found in `decide`."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from controller.api.common import ErrorInfo
from controller.api.project import MissingClipPolicy
from controller.api.scene import ScenePhase
from controller.api.vocabulary import Cond, Reason
from controller.decide import scene as sc
from controller.decide.scene import (
    CAPACITY_RECHECK_SECONDS,
    WAITING_NOTICE_SECONDS,
    Controls,
    Effect,
    JobPhase,
    JobSeen,
    Observation,
    decide,
    with_job_id,
)
from controller.decide.timeutil import rfc3339
from tests.unit.decide.scene_builders import (
    LIMIT,
    NOW,
    completed,
    cond,
    controls,
    desired,
    drive,
    err,
    failed,
    in_flight,
    key,
    next_pass,
    obj,
    observe,
    reasons,
    seen,
    settle,
    status,
)
from tests.unit.decide.scene_cases import LOOK_NOTHING

# ----------------------------------------------------------------------------- requeues


@pytest.mark.parametrize(
    ("obs", "requeue"),
    [
        pytest.param(
            observe(
                expected=LOOK_NOTHING,
                capacity=False,
                waiting_since=NOW - dt.timedelta(seconds=WAITING_NOTICE_SECONDS),
            ),
            CAPACITY_RECHECK_SECONDS,
            id="waiting-capacity-requeues",
        ),
        pytest.param(
            observe(expected=LOOK_NOTHING, capacity=False),
            WAITING_NOTICE_SECONDS,
            id="waiting-capacity-quietly-requeues-at-the-notice-bound",
        ),
        pytest.param(
            observe(
                status(
                    phase=ScenePhase.PROCESSING,
                    attempts=1,
                    next_retry_at=rfc3339(NOW + dt.timedelta(seconds=42)),
                )
            ),
            42.0,
            id="backing-off-requeues-after-the-remaining-time",
        ),
        pytest.param(
            observe(in_flight(), job=JobSeen("job-1", JobPhase.RUNNING), poll_delay=7.0),
            7.0,
            id="job-running-requeues-after-the-poll-delay",
        ),
        pytest.param(
            observe(in_flight(), job=JobSeen("job-1", JobPhase.UNREACHABLE, retry_after=30.0)),
            30.0,
            id="poll-failed-requeues-after-retry-after",
        ),
    ],
)
def test_waiting_rules_requeue_whether_or_not_they_write(obs: Observation, requeue: float):
    first = decide(obs)
    assert first.requeue_after == pytest.approx(requeue)
    settled = settle(obs)
    again = decide(settled)
    assert again.effect == Effect.NONE
    assert again.requeue_after == pytest.approx(requeue)


def test_no_requeue_when_waiting_on_a_person() -> None:
    for o in (
        observe(expected=LOOK_NOTHING, controls=controls(paused=True)),
        observe(expected=LOOK_NOTHING, controls=controls(budget_left=0)),
        observe(controls=controls(generate_videos=False)),
        observe(failed()),
    ):
        assert decide(settle(o)).requeue_after is None


# ----------------------------------------------------------------------------- flows


def test_generate_videos_false_never_looks_at_s3_even_with_an_object_there() -> None:
    s3 = {key(): obj(key())}
    o, trail = drive(observe(controls=controls(generate_videos=False)), s3)
    assert [d.effect for d in trail] == [Effect.WRITE, Effect.NONE]
    assert o.expected is None
    assert cond(o.status, Cond.READY).reason == Reason.NOT_REQUESTED


@pytest.mark.parametrize(
    "ctl",
    [
        pytest.param(controls(paused=True), id="paused"),
        pytest.param(controls(budget_left=0), id="budget-exhausted"),
        pytest.param(controls(budget_left=-2), id="budget-overdrawn"),
        pytest.param(controls(generate_videos=False), id="videos-not-requested"),
    ],
)
def test_gates_never_start_a_job(ctl: Controls) -> None:
    o, trail = drive(observe(controls=ctl))
    assert Effect.START not in [d.effect for d in trail]
    assert o.status.generation is None and o.status.attempts == 0


def test_blocked_scene_with_a_job_in_flight_abandons_it_without_poll_or_start() -> None:
    """Its Project gone: the job's output cannot be stored, so the job is abandoned (and
    canceled by the runtime) and its slot freed, never polled or replaced."""
    o = observe(
        in_flight(),
        desired=None,
        blocked=ErrorInfo(reason=Reason.PROJECT_NOT_FOUND, message="gone"),
    )
    _, trail = drive(o)
    assert {d.effect for d in trail} <= {Effect.WRITE, Effect.NONE}
    assert trail[0].rule == sc.Rule.ABANDON_BLOCKED_JOB
    assert sc.abandoned_job(o, trail[0]) == o.status.generation
    assert all(d.status.generation is None for d in trail)


def test_completed_without_clip_flows_back_into_generation() -> None:
    o = observe(status(phase=ScenePhase.COMPLETED, attempts=1, generations_started=1))
    _, trail = drive(o)
    assert [d.rule for d in trail] == ["completed-without-clip", "look-expected", "start-job"]


def test_spec_change_keeps_the_old_clip_until_the_new_one_is_verified() -> None:
    s3 = {key("h0"): obj(key("h0"))}
    o = observe(completed("h0"))  # desired is h1
    o, trail = drive(o, s3)
    assert [d.rule for d in trail] == ["spec-changed", "look-expected", "start-job"]
    marker = trail[-1].status
    assert marker.clip is not None and marker.clip.spec_hash == "h0"  # still there
    # The job runs: the old clip stays; it is replaced only by the verified upload.
    o = next_pass(o, status=with_job_id(marker, "job-9"))
    o, trail = drive(o, s3, job=JobSeen("job-9", JobPhase.RUNNING))
    assert o.status.clip is not None and o.status.clip.spec_hash == "h0"
    upload = obj("", size=2222, etag='"new"')
    o, trail = drive(next_pass(o), s3, job=JobSeen("job-9", JobPhase.SUCCEEDED), upload=upload)
    assert [d.rule for d in trail] == ["poll-job", "finish-job", "clip-uploaded", "completed"]
    assert o.status.clip is not None
    assert (o.status.clip.key, o.status.clip.etag) == (key("h1"), '"new"')
    assert o.status.phase == ScenePhase.COMPLETED


def test_regenerate_token_runs_a_new_take_and_then_completes_with_it() -> None:
    s3 = {key(): obj(key())}
    o, trail = drive(observe(completed(), regenerate_token="g1"), s3)
    assert [d.rule for d in trail] == ["regenerate-token", "look-expected", "start-job"]
    assert trail[-1].status.generation is not None and trail[-1].status.generation.take == 1
    o = next_pass(o, status=with_job_id(trail[-1].status, "job-2"))
    o, trail = drive(
        o, s3, job=JobSeen("job-2", JobPhase.SUCCEEDED), upload=obj("", etag='"take1"')
    )
    assert o.status.clip is not None
    assert (o.status.clip.take, o.status.clip.key) == (1, key(take=1))
    # The same token again is not a new request.
    assert decide(o).effect == Effect.NONE


def test_retry_token_on_failed_scene_then_the_same_token_again_does_nothing() -> None:
    o, trail = drive(observe(failed(), retry_token="r1"))
    assert [d.rule for d in trail] == ["retry-token", "look-expected", "start-job"]
    assert trail[-1].status.attempts == 1
    # The job fails for good again: the same token must not reset anything.
    o = next_pass(o, status=with_job_id(trail[-1].status, "job-2"))
    permanent = err("InvalidInput", "no", retryable=False)
    o, trail = drive(o, job=JobSeen("job-2", JobPhase.FAILED, permanent))
    assert o.status.phase == ScenePhase.FAILED
    assert [d.rule for d in trail][-1] == "failed"
    assert decide(o).effect == Effect.NONE


def test_full_retry_ladder_creates_at_most_limit_jobs() -> None:
    """Retryable failures up to the limit, then Failed: exactly LIMIT starts."""
    o, starts = observe(), 0
    for n in range(1, LIMIT + 2):
        o, trail = drive(next_pass(o, now=NOW + dt.timedelta(hours=n)))
        if trail[-1].effect != Effect.START:
            break
        starts += 1
        o = next_pass(o, status=with_job_id(trail[-1].status, f"job-{n}"))
        o, trail = drive(
            replace(o, now=NOW + dt.timedelta(hours=n, minutes=1)),
            job=JobSeen(f"job-{n}", JobPhase.FAILED, err()),
        )
    assert starts == LIMIT
    assert o.status.phase == ScenePhase.FAILED
    assert o.status.last_error is not None
    assert o.status.last_error.reason == Reason.RETRIES_EXHAUSTED
    assert o.status.attempts == o.status.generations_started == LIMIT


def test_job_succeeded_but_status_write_lost_then_job_failed_adopts_without_a_new_job() -> None:
    """Upload done, Completed write lost in a crash, then the job reports a retryable
    failure (its output expired): the clip at the deterministic key is adopted, no START."""
    s3 = {key(): obj(key(), etag='"uploaded"')}
    o = observe(in_flight(1))
    rules: list[str] = []
    events: list[str] = []
    for hours in (1, 2):
        o, trail = drive(
            next_pass(o, now=NOW + dt.timedelta(hours=hours)),
            s3,
            job=JobSeen("job-1", JobPhase.FAILED, err("OutputExpired")),
        )
        rules += [d.rule for d in trail]
        events += [r for d in trail for r in reasons(d)]
    assert Reason.CLIP_ADOPTED in events and "start-job" not in rules, rules
    assert o.status.phase == ScenePhase.COMPLETED
    assert o.status.clip is not None and o.status.clip.etag == '"uploaded"'


# ----------------------------------------------------------------------------- regressions
# Bugs found while writing these tests and fixed in scene.py since (regression tests now).


def test_spec_change_during_the_last_attempt_gets_a_fresh_attempt_budget() -> None:
    """the abandoned job's attempts used to carry over and fail the scene."""
    o = observe(in_flight(LIMIT), desired=desired("h2"), generation=2)
    _, trail = drive(o)
    rules = [d.rule for d in trail]
    assert rules == ["abandon-stale-job", "look-expected", "start-job"]
    assert all(d.status.phase != ScenePhase.FAILED for d in trail), rules
    assert Reason.RETRIES_EXHAUSTED not in [r for d in trail for r in reasons(d)]
    marker = trail[-1].status
    assert marker.generation is not None and marker.generation.spec_hash == "h2"
    assert marker.attempts == 1


def test_spec_change_while_backing_off_resets_the_attempt_budget() -> None:
    """attempts and backoff of the old spec used to apply to the new one."""
    s = settle(
        observe(
            status(
                phase=ScenePhase.PROCESSING,
                attempts=LIMIT - 1,
                generations_started=LIMIT - 1,
                spec_hash="h1",
                last_error=err(),
                next_retry_at=rfc3339(NOW + dt.timedelta(minutes=10)),
            )
        )
    ).status
    _, trail = drive(observe(s, desired=desired("h2"), generation=2))
    assert [d.rule for d in trail] == ["spec-moved", "look-expected", "start-job"]
    assert trail[0].status.next_retry_at is None
    assert trail[-1].status.attempts == 1
    assert trail[-1].status.generations_started == LIMIT  # usage is never given back


def test_job_lost_on_the_last_attempt_adopts_the_already_uploaded_clip() -> None:
    """upload done, Completed write lost, then the provider forgot the job."""
    s3 = {key(): obj(key(), etag='"uploaded"')}
    o, trail = drive(observe(in_flight(LIMIT)), s3, job=JobSeen("job-1", JobPhase.LOST))
    assert o.status.phase == ScenePhase.COMPLETED, [d.rule for d in trail]
    assert o.status.clip is not None and o.status.clip.etag == '"uploaded"'
    assert o.status.clip.job_id == "job-1"
    assert Effect.START not in [d.effect for d in trail]


def test_clip_missing_ignored_still_follows_metadata_generation() -> None:
    """the Ignore rule used to return the status unsettled (stale observedGeneration)."""
    o = observe(
        completed(),
        generation=2,
        clip_check=seen(key(), None),
        controls=controls(missing_clip=MissingClipPolicy.IGNORE),
    )
    d = decide(o)
    assert (d.effect, d.rule) == (Effect.WRITE, "clip-missing-ignored")
    assert d.status.phase == ScenePhase.COMPLETED and d.status.clip == o.status.clip
    assert d.status.observed_generation == 2
    assert decide(replace(o, status=d.status)).effect == Effect.NONE


# ----------------------------------------------------------------------------- open bugs


def test_bug2_job_failed_on_the_last_attempt_adopts_the_already_uploaded_clip() -> None:
    # The runtime reports a succeeded job whose output can no longer be downloaded as
    # Failed ("output download failed"): the upload of an earlier pass is still in S3.
    s3 = {key(): obj(key(), etag='"uploaded"')}
    expired = err("OutputUnavailable", "output download failed: 404", True)
    o, trail = drive(observe(in_flight(LIMIT)), s3, job=JobSeen("job-1", JobPhase.FAILED, expired))
    assert o.status.phase == ScenePhase.COMPLETED, [d.rule for d in trail]
    assert o.status.clip is not None and o.status.clip.etag == '"uploaded"'


def test_bug5_one_spec_edit_of_a_failed_scene_is_one_write_and_one_event() -> None:
    _, trail = drive(observe(failed(spec_hash="h0")))
    assert [d.rule for d in trail] == ["failed-spec-changed", "look-expected", "start-job"]
    assert [r for d in trail for r in reasons(d)] == [Reason.SPEC_CHANGED]
