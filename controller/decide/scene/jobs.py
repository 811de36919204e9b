"""Rules for a Scene with a job: requested retries and takes, a job in flight, a
marker without an id (a job that may exist), a spec that moved between attempts."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from controller.api.common import ErrorInfo
from controller.api.scene import GenerationInfo, ScenePhase, SceneStatus
from controller.api.vocabulary import Reason
from controller.decide.backoff import backoff_seconds
from controller.decide.scene.model import Decision, Effect, Event, JobPhase, Observation, Rule
from controller.decide.scene.status import (
    completed,
    error_at,
    fresh_attempts,
    retry_or_fail,
    settle,
    with_conditions,
    with_job_id,
)
from controller.decide.timeutil import parse_rfc3339, rfc3339


def after_start_error(
    o: Observation, marker: SceneStatus, err: ErrorInfo, ambiguous: bool
) -> Decision:
    """The provider call after the pending marker failed.

    An HTTP answer means no job was created: the attempt is given back (nothing was paid)
    and the scene backs off. No answer (timeout, reset) is ambiguous: a job may exist, so
    the marker is kept (attempt counted, no job id) with the error, and the next passes
    look for the job at the provider before paying again (see `_orphaned`).
    """
    before = o.status
    # Compare against what is stored now (the marker), so the marker is always replaced.
    o = replace(o, status=marker)
    if ambiguous:
        assert marker.generation is not None
        kept = marker.model_copy(update={"last_error": err})
        return settle(
            o,
            kept,
            Rule.START_UNANSWERED,
            requeue_after=o.orphan_search_after,  # a new marker_key: watched from now
        )
    restored = marker.model_copy(
        update={"attempts": before.attempts, "generations_started": before.generations_started}
    )
    if not err.retryable:
        return retry_or_fail(o, restored, err, Rule.START_REJECTED)
    delay = backoff_seconds(max(before.attempts, 1), o.controls.backoff, o.jitter)
    at = rfc3339(o.now + dt.timedelta(seconds=delay))
    nxt = restored.model_copy(update={"generation": None, "last_error": err, "next_retry_at": at})
    msg = f"provider refused to start a job ({err.reason}: {err.message}); retry at {at}"
    return settle(
        o,
        nxt,
        Rule.START_REFUSED,
        (Reason.RETRY_SCHEDULED, ""),
        (Event(Reason.RETRY_SCHEDULED, msg, "Warning"),),
    )


def tokens(o: Observation) -> Decision | None:
    s, c = o.status, o.controls
    if o.retry_token and o.retry_token != s.handled_retry_token:
        return _retry(o, {"handled_retry_token": o.retry_token}, Rule.RETRY_TOKEN)
    if c.retry_token and c.retry_token != s.handled_project_retry_token:
        return _retry(o, {"handled_project_retry_token": c.retry_token}, Rule.PROJECT_RETRY_TOKEN)
    if o.regenerate_token and o.regenerate_token != s.handled_regenerate_token:
        return _regenerate(
            o, {"handled_regenerate_token": o.regenerate_token}, Rule.REGENERATE_TOKEN
        )
    if c.regenerate_token and c.regenerate_token != s.handled_project_regenerate_token:
        return _regenerate(
            o,
            {"handled_project_regenerate_token": c.regenerate_token},
            Rule.PROJECT_REGENERATE_TOKEN,
        )
    return None


def _retry(o: Observation, handled: dict[str, object], rule: Rule) -> Decision:
    s = o.status
    update = dict(handled)
    events: tuple[Event, ...] = ()
    if s.phase == ScenePhase.FAILED:
        update.update(phase=ScenePhase.PENDING, attempts=0, last_error=None, next_retry_at=None)
        events = (Event(Reason.RETRY_REQUESTED, "retry requested: attempts reset"),)
    return Decision(
        Effect.WRITE,
        with_conditions(o, s.model_copy(update=update), (Reason.RETRY_REQUESTED, "")),
        rule,
        events,
    )


def _regenerate(o: Observation, handled: dict[str, object], rule: Rule) -> Decision:
    s = o.status
    update = dict(handled)
    update.update(take=s.take + 1, attempts=0, generation=None, last_error=None, next_retry_at=None)
    if s.phase != ScenePhase.COMPLETED or s.clip is None:
        update["phase"] = ScenePhase.PENDING
    else:
        # The old clip stays in status until the new take is verified.
        update["phase"] = ScenePhase.PROCESSING
    msg = f"regenerate requested: new take {s.take + 1}"
    nxt = s.model_copy(update=update)
    return Decision(
        Effect.WRITE,
        with_conditions(o, nxt, (Reason.REGENERATE_REQUESTED, "")),
        rule,
        (Event(Reason.REGENERATE_REQUESTED, msg),),
    )


def marker_key(s: SceneStatus) -> str | None:
    """What identifies a pending marker without a job id, and the unanswered create of
    it if any: the runtime times how long it has watched one (`marker_watched`) and
    starts again when this changes. None: no such marker."""
    g = s.generation
    if g is None or g.job_id is not None:
        return None
    unanswered = _unanswered(s, g)
    return f"{g.started_at}/t{g.take}/a{s.attempts}/{unanswered.at if unanswered else ''}"


def _search_wait(o: Observation) -> float:
    """Seconds until a create sent for this marker has surely been answered (or, when it
    got no answer, until a provider that was slow to act has surely acted): measured on
    this process's monotonic clock from when it first saw the marker or the unanswered
    create. Never by comparing the marker's startedAt, written by another node's wall
    clock, with ours: a node whose clock runs ahead would search too soon and pay again.
    A process sees a marker only while it leads (a standby's queue hands out no key), so
    the wait also starts no earlier than its taking of the lease."""
    return o.orphan_search_after - o.marker_watched


def _unanswered(s: SceneStatus, g: GenerationInfo) -> ErrorInfo | None:
    """The error of a create of this marker that got no answer (set by after_start_error);
    None when the marker was left by an operator that stopped."""
    e = s.last_error
    at, started = parse_rfc3339(e.at) if e else None, parse_rfc3339(g.started_at)
    return e if e and at is not None and started is not None and at >= started else None


def _orphaned(o: Observation, s: SceneStatus, g: GenerationInfo) -> Decision:
    """A pending marker without a job id: a job may exist, because the operator stopped
    between the provider's create and the id write, or the create got no answer. Once
    any create sent has surely been answered, look for the job at the provider and
    resume it; pay for another only if it is not there (or the provider cannot list)."""
    unanswered = _unanswered(s, g)
    if o.orphan is None:
        wait = _search_wait(o)
        if wait > 0:
            return settle(o, s, Rule.ORPHAN_SETTLING, requeue_after=wait)
        return Decision(Effect.FIND_JOB, s, Rule.FIND_ORPHAN)
    if o.orphan.job_id is not None:
        cause = (
            f"the create got no answer ({unanswered.reason})"
            if unanswered
            else "the operator stopped between the create and recording its id"
        )
        msg = f"{cause}; found job {o.orphan.job_id} at the provider: resumed, no new job"
        found = with_job_id(s, o.orphan.job_id)
        if unanswered:
            found = found.model_copy(update={"last_error": None})
        rule = Rule.UNANSWERED_RECOVERED if unanswered else Rule.ORPHAN_RECOVERED
        return settle(o, found, rule, events=(Event(Reason.JOB_RECOVERED, msg),))
    if o.orphan.error is not None and o.orphan.error.retryable:
        return settle(o, s, Rule.ORPHAN_SEARCH_FAILED, requeue_after=o.poll_delay)
    searched = o.orphan.searched and o.orphan.error is None
    again = unanswered is not None and unanswered.retryable and s.attempts < o.controls.retry_limit
    if unanswered and (searched or not again):
        # No job came of it (or no other job will be started): the attempt failed with
        # the create's own error.
        return retry_or_fail(o, s, unanswered, Rule.START_AMBIGUOUS)
    if o.orphan.error is not None:
        why = f"searching the provider failed: {o.orphan.error.message}"
    else:
        why = "not found at the provider" if searched else "the provider cannot list jobs"
    if unanswered:  # a job may exist, and nothing can tell: starting again may pay twice
        cause = f"the create got no answer ({unanswered.reason}: {unanswered.message})"
        rule = Rule.UNANSWERED_WINDOW
    else:
        cause = "the operator stopped between starting a job and recording its id"
        rule = Rule.ORPHAN_WINDOW
    err = error_at(o, Reason.JOB_MAY_BE_ORPHANED, f"{cause} ({why})", True)
    d_ = retry_or_fail(o, s, err, rule)
    return replace(
        d_, events=(Event(Reason.JOB_MAY_BE_ORPHANED, err.message, "Warning"), *d_.events)
    )


def in_flight(o: Observation) -> Decision | None:
    s, d = o.status, o.desired
    g = s.generation
    if g is None or d is None:
        return None
    if g.spec_hash != d.spec_hash or g.take != s.take:
        nxt = (
            fresh_attempts(s, d.spec_hash, generation=None)
            if g.spec_hash != d.spec_hash
            else s.model_copy(update={"generation": None})
        )
        msg = f"spec or take changed while job {g.job_id} ran; its output will not be used"
        return settle(o, nxt, Rule.ABANDON_STALE_JOB, events=(Event(Reason.SPEC_CHANGED, msg),))
    if g.job_id is None:
        return _orphaned(o, s, g)
    job = o.job
    if job is None or job.job_id != g.job_id:
        return Decision(Effect.POLL, s, Rule.POLL_JOB)
    if job.phase == JobPhase.RUNNING:
        return settle(o, s, Rule.JOB_RUNNING, requeue_after=o.poll_delay)
    if job.phase == JobPhase.UNREACHABLE:
        return settle(
            o, s, Rule.POLL_FAILED, requeue_after=max(o.poll_delay, job.retry_after or 0.0)
        )
    if job.phase == JobPhase.SUCCEEDED:
        key = d.key(s.take)
        if o.finished is None or o.finished.key != key or o.finished.obj is None:
            if job.error is not None and job.error.reason == Reason.UPLOAD_RETRYING:
                return _upload_retrying(o, s, job.error, job.retry_after)
            return Decision(Effect.FINISH, s, Rule.FINISH_JOB)
        done = completed(o, o.finished, g.job_id)
        msg = f"clip uploaded and verified: s3://{d.bucket}/{key} ({o.finished.obj.size} bytes)"
        return settle(o, done, Rule.CLIP_UPLOADED, events=(Event(Reason.CLIP_UPLOADED, msg),))
    # Lost or Failed (e.g. "output download failed" after its upload went through but the
    # Completed write was lost): what is at the deterministic key wins.
    key = d.key(s.take)
    if o.expected is None or o.expected.key != key:
        return Decision(Effect.LOOK_EXPECTED, s, Rule.LOOK_BEFORE_RETRY)
    if o.expected.obj is not None and not o.expected.obj.invalid:
        done = completed(o, o.expected, g.job_id)
        msg = f"job {g.job_id} ended {job.phase} but its clip is at s3://{d.bucket}/{key}: adopted"
        return settle(
            o, done, Rule.ADOPT_AFTER_JOB_ENDED, events=(Event(Reason.CLIP_ADOPTED, msg),)
        )
    err = job.error or error_at(o, Reason.GENERATION_FAILED, "the job failed", False)
    if job.phase == JobPhase.LOST:
        err = error_at(
            o,
            Reason.JOB_LOST,
            (job.error.message if job.error else "job unknown to the provider"),
            True,
        )
    return retry_or_fail(
        o, s, err, Rule.JOB_FAILED if job.phase == JobPhase.FAILED else Rule.JOB_LOST
    )


def _upload_retrying(
    o: Observation, s: SceneStatus, err: ErrorInfo, retry_after: float | None
) -> Decision:
    """A succeeded (paid) job whose upload failed: never Failed for it. The job stays in
    flight, the output is kept, and the condition says why it is not Completed yet. The
    time of the first failure is kept, so a retry costs a write only if the error moved."""
    last = s.last_error
    if last is not None and last.reason == Reason.UPLOAD_RETRYING:
        err = err.model_copy(update={"at": last.at})
    return settle(
        o, s.model_copy(update={"last_error": err}), Rule.UPLOAD_RETRYING, requeue_after=retry_after
    )


# Rules after which a create sent for the marker may still land at the provider (late):
# its job was found (so any other is a duplicate), or it was searched for and not found
# (a new one will be started).
LATE_DUPLICATES = frozenset(
    {
        Rule.ORPHAN_RECOVERED,
        Rule.UNANSWERED_RECOVERED,
        Rule.ORPHAN_WINDOW,
        Rule.UNANSWERED_WINDOW,
        Rule.START_AMBIGUOUS,
    }
)


def late_duplicates(o: Observation, d: Decision) -> GenerationInfo | None:
    """The marker (without a job id) whose late creates the runtime looks for after
    `d`: a second job found for it is canceled (DuplicateCanceled), never recorded."""
    g = o.status.generation
    if d.rule not in LATE_DUPLICATES or g is None or g.job_id is not None:
        return None
    return g


# Rules that stop recording a job whose output will not be used: it is canceled at the
# provider after the write (controller/controllers/scene/cancel.py).
ABANDONING = frozenset(
    {
        Rule.ABANDON_STALE_JOB,
        Rule.ABANDON_BLOCKED_JOB,
        Rule.REGENERATE_TOKEN,
        Rule.PROJECT_REGENERATE_TOKEN,
    }
)


def abandoned_job(o: Observation, d: Decision) -> GenerationInfo | None:
    """The job `d` abandons (recorded before, not after, by an abandoning rule), if any."""
    g, after = o.status.generation, d.status.generation
    if d.rule not in ABANDONING or g is None or g.job_id is None:
        return None
    if after is not None and after.job_id == g.job_id:
        return None
    return g


def blocked_job(o: Observation) -> Decision | None:
    """A job in flight for a Scene that cannot go on (its Project gone, being deleted or
    invalid; its own spec invalid): nothing can store its output, so it is abandoned
    (canceled at the provider where it can be) and its job slot freed at once, rather
    than held until the Project comes back, perhaps never. Attempts stay counted."""
    s, g = o.status, o.status.generation
    if g is None:
        return None
    err = o.blocked or ErrorInfo(reason=Reason.INVALID_SPEC, message="no desired state")
    update: dict[str, object] = {"generation": None}
    if s.phase == ScenePhase.PROCESSING and s.clip is None:
        update["phase"] = ScenePhase.PENDING
    what = (
        f"job {g.job_id}" if g.job_id else "a job that may have started (its id was never recorded)"
    )
    msg = (
        f"{err.message}: {g.provider} {what} abandoned, its output will not be used "
        "(canceled at the provider where it can be)"
    )
    return settle(
        o,
        s.model_copy(update=update),
        Rule.ABANDON_BLOCKED_JOB,
        (err.reason, err.message),
        (Event(Reason.JOB_ABANDONED, msg, "Warning"),),
    )


def spec_moved(o: Observation) -> Decision | None:
    """Between attempts, the spec changed: the new spec gets a fresh attempt budget."""
    s, d = o.status, o.desired
    if (
        d is None
        or s.generation is not None
        or s.phase not in (ScenePhase.PENDING, ScenePhase.PROCESSING)
    ):
        return None
    if s.spec_hash is None or s.spec_hash == d.spec_hash:
        return None
    nxt = fresh_attempts(s, d.spec_hash)
    msg = f"spec changed ({s.spec_hash} -> {d.spec_hash}): attempts reset"
    return settle(o, nxt, Rule.SPEC_MOVED, events=(Event(Reason.SPEC_CHANGED, msg),))
