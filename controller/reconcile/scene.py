"""The Scene state machine, as a pure function: observation -> decision.

No I/O here. The effect loop (controller/reconcile/effects.py) gathers an observation,
calls `decide`, has its actuator carry out the one effect the decision asks for (a
status write, a look at S3, a poll, a job start, an upload), folds what it learned back
into the observation and calls `decide` again. Each rule is a small named step; the
`Rule` that fired is returned with the decision, and the decision says what the runtime
must know of it (`park`, `outcome` for the metrics), so logs, metrics and tests name it
(cert-manager's policy-chain idea). See docs/architecture.md for the state machine.

Invariants (property-tested):
- phase Completed is only ever produced together with a clip that came from a verified
  S3 object (`o.finished` or `o.expected`), never from a promise;
- START is never returned while a job is recorded in status.generation.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from enum import StrEnum

from controller.api.common import MAX_ERROR_MESSAGE, ErrorInfo
from controller.api.project import Backoff, MissingClipPolicy
from controller.api.scene import ClipInfo, GenerationInfo, ScenePhase, SceneStatus
from controller.reconcile.backoff import backoff_seconds
from controller.reconcile.conditions import set_condition
from controller.reconcile.health import with_scene_health
from controller.reconcile.timeutil import parse_rfc3339, rfc3339
from controller.text import bound
from controller.vocabulary import Cond, Reason

# A safety net only: the runtime parks a Scene that waits for a job slot and wakes it
# when a slot frees (controller/waiting.py).
CAPACITY_RECHECK_SECONDS = 300.0
BUCKET_RECHECK_SECONDS = 15.0  # a Scene held by a missing or denied bucket looks again


class Effect(StrEnum):
    NONE = "None"  # nothing to do now (maybe requeue later)
    WRITE = "Write"  # write `status`, then decide again
    LOOK_EXPECTED = "LookExpected"  # HEAD the key of the desired clip, then decide again
    POLL = "Poll"  # poll the recorded job, then decide again
    START = "Start"  # write `status` (the pending marker), then create the job
    FINISH = "Finish"  # download the output, upload, verify, then decide again
    FIND_JOB = "FindJob"  # search the provider for a started job whose id was never recorded
    CHECK_BUCKET = "CheckBucket"  # is the bucket there and writable? (cached), then decide again


class Rule(StrEnum):
    """The name of every rule that can fire: metrics labels, logs and test ids."""

    # blocked, and the controls (annotation tokens)
    BLOCKED = "blocked"
    RETRY_TOKEN = "retry-token"
    PROJECT_RETRY_TOKEN = "project-retry-token"
    REGENERATE_TOKEN = "regenerate-token"
    PROJECT_REGENERATE_TOKEN = "project-regenerate-token"
    # a job in flight
    ABANDON_STALE_JOB = "abandon-stale-job"
    POLL_JOB = "poll-job"
    JOB_RUNNING = "job-running"
    POLL_FAILED = "poll-failed"
    FINISH_JOB = "finish-job"
    CLIP_UPLOADED = "clip-uploaded"
    LOOK_BEFORE_RETRY = "look-before-retry"
    ADOPT_AFTER_JOB_ENDED = "adopt-after-job-ended"
    JOB_FAILED = "job-failed"
    JOB_LOST = "job-lost"
    # a pending marker without a job id (the orphan window, an unanswered create)
    ORPHAN_SETTLING = "orphan-settling"
    FIND_ORPHAN = "find-orphan"
    ORPHAN_RECOVERED = "orphan-recovered"
    UNANSWERED_RECOVERED = "unanswered-recovered"
    ORPHAN_SEARCH_FAILED = "orphan-search-failed"
    START_AMBIGUOUS = "start-ambiguous"
    ORPHAN_WINDOW = "orphan-window"
    UNANSWERED_WINDOW = "unanswered-window"
    # between attempts, Completed and Failed
    SPEC_MOVED = "spec-moved"
    COMPLETED_WITHOUT_CLIP = "completed-without-clip"
    SPEC_CHANGED = "spec-changed"
    CLIP_MISSING_IGNORED = "clip-missing-ignored"
    CLIP_MISSING_FAIL = "clip-missing-fail"
    CLIP_MISSING_REGENERATE = "clip-missing-regenerate"
    CLIP_RESTORED = "clip-restored"
    CLIP_SAME_CONTENT = "clip-etag-changed-same-content"  # a new ETag, the same bytes
    COMPLETED = "completed"
    FAILED_SPEC_CHANGED = "failed-spec-changed"
    FAILED = "failed"
    # generating
    VIDEOS_NOT_REQUESTED = "videos-not-requested"
    BACKING_OFF = "backing-off"
    LOOK_EXPECTED = "look-expected"
    ADOPT = "adopt"
    PAUSED = "paused"
    ATTEMPTS_EXHAUSTED = "attempts-exhausted"
    BUDGET_EXHAUSTED = "budget-exhausted"
    WAITING_CAPACITY = "waiting-capacity"
    CHECK_BUCKET = "check-bucket"
    BUCKET_UNAVAILABLE = "bucket-unavailable"
    START_JOB = "start-job"
    # the answer to a start (after_start_error), and a provider that cannot be built
    START_UNANSWERED = "start-unanswered"
    START_REJECTED = "start-rejected"
    START_REFUSED = "start-refused"
    PROVIDER_UNAVAILABLE = "provider-unavailable"


class Outcome(StrEnum):
    """What a decision means for the metrics, beyond the rule's own counter."""

    ORPHAN_RECOVERED = "recovered"  # JobRecovered: scene_operator_orphan_window_total
    ORPHAN_AGAIN = "again"  # JobMayBeOrphaned: a new job; the only pay-twice window
    DRIFT_REPAIRED = "drift-repaired"  # scene_operator_drift_repairs_total
    JOB_SUCCEEDED = "job-succeeded"  # a job's clip is verified


OUTCOMES: dict[Rule, Outcome] = {
    Rule.ORPHAN_RECOVERED: Outcome.ORPHAN_RECOVERED,
    Rule.UNANSWERED_RECOVERED: Outcome.ORPHAN_RECOVERED,
    Rule.ORPHAN_WINDOW: Outcome.ORPHAN_AGAIN,
    Rule.UNANSWERED_WINDOW: Outcome.ORPHAN_AGAIN,
    Rule.CLIP_UPLOADED: Outcome.JOB_SUCCEEDED,
    Rule.COMPLETED_WITHOUT_CLIP: Outcome.DRIFT_REPAIRED,
    Rule.CLIP_MISSING_IGNORED: Outcome.DRIFT_REPAIRED,
    Rule.CLIP_MISSING_FAIL: Outcome.DRIFT_REPAIRED,
    Rule.CLIP_MISSING_REGENERATE: Outcome.DRIFT_REPAIRED,
    Rule.ADOPT: Outcome.DRIFT_REPAIRED,
    Rule.ADOPT_AFTER_JOB_ENDED: Outcome.DRIFT_REPAIRED,
}


class JobPhase(StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    LOST = "Lost"  # the provider no longer knows the job
    UNREACHABLE = "Unreachable"  # the poll itself failed; try again later


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    etag: str
    sha256: str | None = None  # as recorded in the object's metadata at upload
    content_sha256: str | None = None  # of the bytes, read back when the ETag moved
    invalid: str | None = None  # why the object is not a usable clip (not a video, ...)


@dataclass(frozen=True)
class ObjectSeen:
    """A look at one S3 key: `obj` is None when nothing is there."""

    key: str
    obj: StoredObject | None


@dataclass(frozen=True)
class JobSeen:
    job_id: str
    phase: JobPhase
    error: ErrorInfo | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class BucketSeen:
    """A look at the bucket a clip goes to, before a job is paid for."""

    problem: str | None = None  # None: there and reachable; else why not, naming it


@dataclass(frozen=True)
class OrphanSearch:
    """The provider searched for the job of a pending marker that has no job id."""

    job_id: str | None  # the job found
    searched: bool = True  # False: the provider cannot list its jobs
    error: ErrorInfo | None = None  # the search failed


@dataclass(frozen=True)
class Desired:
    """What the clip must be, from the Scene spec and its Project."""

    spec_hash: str
    provider: str
    model: str
    duration_seconds: int
    bucket: str
    key_prefix: str  # the scene's folder: "<prefix>/<ns>/<project uid>/scenes/<seq>/"

    def key(self, take: int) -> str:
        return f"{self.key_prefix}{self.spec_hash}-t{take}.mp4"


@dataclass(frozen=True)
class Controls:
    """Project-level switches and policies that bear on this scene."""

    generate_videos: bool = False
    paused: bool = False
    retry_limit: int = 3
    backoff: Backoff = field(default_factory=Backoff)
    missing_clip: MissingClipPolicy = MissingClipPolicy.REGENERATE
    budget_left: int | None = None  # None: no cap
    regenerate_token: str | None = None  # the Project's annotation
    retry_token: str | None = None


@dataclass(frozen=True)
class Event:
    reason: str
    message: str
    type: str = "Normal"


@dataclass(frozen=True)
class Observation:
    now: dt.datetime
    generation: int  # metadata.generation
    status: SceneStatus
    desired: Desired | None = None
    blocked: ErrorInfo | None = None  # project missing, invalid spec: nothing can proceed
    controls: Controls = field(default_factory=Controls)
    regenerate_token: str | None = None  # the Scene's annotations
    retry_token: str | None = None
    expected: ObjectSeen | None = None  # None: not looked yet
    clip_check: ObjectSeen | None = None  # set when drift polling asked for a check
    job: JobSeen | None = None
    finished: ObjectSeen | None = None  # the verified upload of a succeeded job
    capacity: bool = True  # a job slot is free for this provider and project
    capacity_limit: str = ""  # when not: which limit is reached, for the condition message
    orphan: OrphanSearch | None = None  # None: not searched yet
    bucket: BucketSeen | None = None  # None: not looked at yet
    orphan_search_after: float = 30.0  # seconds after a marker's start
    poll_delay: float = 5.0
    jitter: float = 0.5  # a random draw in [0, 1) for backoff


@dataclass(frozen=True)
class Decision:
    effect: Effect
    status: SceneStatus
    rule: Rule
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None

    @property
    def park(self) -> bool:
        """The Scene waits for a job slot: the runtime parks it until one frees."""
        return self.rule == Rule.WAITING_CAPACITY

    @property
    def outcome(self) -> Outcome | None:
        return OUTCOMES.get(self.rule)


# ----------------------------------------------------------------------------- helpers


def _now(o: Observation) -> str:
    return rfc3339(o.now)


def _error(o: Observation, reason: str, message: str, retryable: bool) -> ErrorInfo:
    return ErrorInfo(reason=reason, message=message, retryable=retryable, at=_now(o))


def _conditions(o: Observation, s: SceneStatus, waiting: tuple[str, str]) -> SceneStatus:
    """Derive Ready / Generating / Failed from the status itself, so they cannot disagree."""
    now, gen = _now(o), o.generation
    conds = list(s.conditions)
    if s.phase == ScenePhase.COMPLETED and s.clip is not None and clip_missing(s):
        # repair.missingClip Ignore: no new job, but no claim that the clip is there
        assert s.last_error is not None
        ready = ("False", Reason.CLIP_MISSING, s.last_error.message)
    elif s.phase == ScenePhase.COMPLETED and s.clip is not None:
        ready = ("True", Reason.COMPLETED, f"clip verified at s3://{s.clip.bucket}/{s.clip.key}")
    elif s.phase == ScenePhase.FAILED:
        err = s.last_error
        ready = (
            "False",
            err.reason if err else Reason.GENERATION_FAILED,
            err.message if err else "",
        )
    elif s.generation is not None:
        ready = ("False", Reason.IN_PROGRESS, "a generation job is in flight")
    else:
        ready = ("False", waiting[0], waiting[1])
    conds = set_condition(conds, Cond.READY, ready[0], ready[1], ready[2], generation=gen, now=now)  # type: ignore[arg-type]
    g = s.generation
    if g is not None:
        # No job id in the message: recording the id must not cost one more write.
        generating = (
            "True",
            Reason.GENERATION_STARTED,
            f"{g.provider} job, attempt {g.attempt}, take {g.take}",
        )
    elif s.next_retry_at:
        generating = ("False", Reason.RETRY_SCHEDULED, f"next attempt at {s.next_retry_at}")
    else:
        generating = ("False", ready[1], "")
    conds = set_condition(
        conds,
        Cond.GENERATING,
        generating[0],
        generating[1],
        generating[2],
        generation=gen,
        now=now,  # type: ignore[arg-type]
    )
    if s.phase == ScenePhase.FAILED:
        failed = ("True", ready[1], ready[2])
    else:
        failed = ("False", "NotFailed", "")
    conds = set_condition(
        conds, Cond.FAILED, failed[0], failed[1], failed[2], generation=gen, now=now
    )  # type: ignore[arg-type]
    conds = with_scene_health(conds, s.phase, s.next_retry_at, generation=gen, now=now)
    return s.model_copy(update={"conditions": conds, "observed_generation": gen})


def _settle(
    o: Observation,
    s: SceneStatus,
    rule: Rule,
    waiting: tuple[str, str] = (Reason.IN_PROGRESS, ""),
    events: tuple[Event, ...] = (),
    requeue_after: float | None = None,
    effect: Effect = Effect.WRITE,
) -> Decision:
    """Finish a status: derive conditions; WRITE only if something differs."""
    if s.phase is None:
        s = s.model_copy(update={"phase": ScenePhase.PENDING})
    s = _conditions(o, s, waiting)
    if effect == Effect.WRITE and s.wire() == o.status.wire():
        return Decision(Effect.NONE, s, rule, (), requeue_after)
    return Decision(effect, s, rule, events, requeue_after)


def _completed(o: Observation, seen: ObjectSeen, job_id: str | None) -> SceneStatus:
    d, s = o.desired, o.status
    assert d is not None and seen.obj is not None
    clip = ClipInfo(
        bucket=d.bucket,
        key=seen.key,
        size=seen.obj.size,
        etag=seen.obj.etag,
        sha256=seen.obj.sha256,
        spec_hash=d.spec_hash,
        take=s.take,
        provider=d.provider,
        job_id=job_id,
        verified_at=_now(o),
    )
    return s.model_copy(
        update={
            "phase": ScenePhase.COMPLETED,
            "clip": clip,
            "original_video_clip_s3_key": seen.key,
            "working_video_clip_s3_key": seen.key,
            "generation": None,
            "last_error": None,
            "next_retry_at": None,
            "spec_hash": d.spec_hash,
        }
    )


def _clip_gone(s: SceneStatus, **update: object) -> SceneStatus:
    """Status must not point at an object that is not there."""
    return s.model_copy(
        update={
            "clip": None,
            "original_video_clip_s3_key": None,
            "working_video_clip_s3_key": None,
            **update,
        }
    )


def retry_or_fail(o: Observation, s: SceneStatus, err: ErrorInfo, rule: Rule) -> Decision:
    """A failed attempt (already counted): back off and retry, or fail for good."""
    c = o.controls
    base = s.model_copy(update={"generation": None, "last_error": err})
    if err.retryable and s.attempts < c.retry_limit:
        delay = backoff_seconds(s.attempts, c.backoff, o.jitter)
        at = rfc3339(o.now + dt.timedelta(seconds=delay))
        nxt = base.model_copy(update={"phase": ScenePhase.PROCESSING, "next_retry_at": at})
        msg = f"attempt {s.attempts}/{c.retry_limit} failed ({err.reason}: {err.message}); retry at {at}"
        return _settle(
            o,
            nxt,
            rule,
            (Reason.RETRY_SCHEDULED, ""),
            (Event(Reason.RETRY_SCHEDULED, msg, "Warning"),),
        )
    reason = err.reason if not err.retryable else Reason.RETRIES_EXHAUSTED
    final_err = (
        err
        if not err.retryable
        else err.model_copy(
            update={
                "reason": Reason.RETRIES_EXHAUSTED,
                "message": bound(
                    f"{s.attempts} attempts failed; last: {err.reason}: {err.message}",
                    MAX_ERROR_MESSAGE,
                ),
            }
        )
    )
    failed = base.model_copy(
        update={"phase": ScenePhase.FAILED, "next_retry_at": None, "last_error": final_err}
    )
    return _settle(
        o,
        failed,
        rule,
        events=(Event(Reason.GENERATION_FAILED, f"{reason}: {final_err.message}", "Warning"),),
    )


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
        return _settle(
            o,
            kept,
            Rule.START_UNANSWERED,
            requeue_after=max(_search_wait(o, marker.generation, err), 0.0),
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
    return _settle(
        o,
        nxt,
        Rule.START_REFUSED,
        (Reason.RETRY_SCHEDULED, ""),
        (Event(Reason.RETRY_SCHEDULED, msg, "Warning"),),
    )


# ----------------------------------------------------------------------------- rules


def _tokens(o: Observation) -> Decision | None:
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
        _conditions(o, s.model_copy(update=update), (Reason.RETRY_REQUESTED, "")),
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
        _conditions(o, nxt, (Reason.REGENERATE_REQUESTED, "")),
        rule,
        (Event(Reason.REGENERATE_REQUESTED, msg),),
    )


def _search_wait(o: Observation, g: GenerationInfo, unanswered: ErrorInfo | None) -> float:
    """Seconds until a create sent for this marker has surely been answered (or, when it
    got no answer, until a provider that was slow to act has surely acted)."""
    since = parse_rfc3339(unanswered.at if unanswered and unanswered.at else g.started_at)
    elapsed = (o.now - since).total_seconds() if since is not None else o.orphan_search_after
    return o.orphan_search_after - elapsed


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
        wait = _search_wait(o, g, unanswered)
        if wait > 0:
            return _settle(o, s, Rule.ORPHAN_SETTLING, requeue_after=wait)
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
        return _settle(o, found, rule, events=(Event(Reason.JOB_RECOVERED, msg),))
    if o.orphan.error is not None and o.orphan.error.retryable:
        return _settle(o, s, Rule.ORPHAN_SEARCH_FAILED, requeue_after=o.poll_delay)
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
    err = _error(o, Reason.JOB_MAY_BE_ORPHANED, f"{cause} ({why})", True)
    d_ = retry_or_fail(o, s, err, rule)
    return replace(
        d_, events=(Event(Reason.JOB_MAY_BE_ORPHANED, err.message, "Warning"), *d_.events)
    )


def _in_flight(o: Observation) -> Decision | None:
    s, d = o.status, o.desired
    g = s.generation
    if g is None or d is None:
        return None
    if g.spec_hash != d.spec_hash or g.take != s.take:
        update: dict[str, object] = {"generation": None}
        if g.spec_hash != d.spec_hash:  # a new spec gets a fresh attempt budget
            update.update(attempts=0, last_error=None, next_retry_at=None, spec_hash=d.spec_hash)
        nxt = s.model_copy(update=update)
        msg = f"spec or take changed while job {g.job_id} ran; its output will not be used"
        return _settle(o, nxt, Rule.ABANDON_STALE_JOB, events=(Event(Reason.SPEC_CHANGED, msg),))
    if g.job_id is None:
        return _orphaned(o, s, g)
    job = o.job
    if job is None or job.job_id != g.job_id:
        return Decision(Effect.POLL, s, Rule.POLL_JOB)
    if job.phase == JobPhase.RUNNING:
        return _settle(o, s, Rule.JOB_RUNNING, requeue_after=o.poll_delay)
    if job.phase == JobPhase.UNREACHABLE:
        return _settle(
            o, s, Rule.POLL_FAILED, requeue_after=max(o.poll_delay, job.retry_after or 0.0)
        )
    if job.phase == JobPhase.SUCCEEDED:
        key = d.key(s.take)
        if o.finished is None or o.finished.key != key or o.finished.obj is None:
            return Decision(Effect.FINISH, s, Rule.FINISH_JOB)
        done = _completed(o, o.finished, g.job_id)
        msg = f"clip uploaded and verified: s3://{d.bucket}/{key} ({o.finished.obj.size} bytes)"
        return _settle(o, done, Rule.CLIP_UPLOADED, events=(Event(Reason.CLIP_UPLOADED, msg),))
    # Lost or Failed (e.g. "output download failed" after its upload went through but the
    # Completed write was lost): what is at the deterministic key wins.
    key = d.key(s.take)
    if o.expected is None or o.expected.key != key:
        return Decision(Effect.LOOK_EXPECTED, s, Rule.LOOK_BEFORE_RETRY)
    if o.expected.obj is not None and not o.expected.obj.invalid:
        done = _completed(o, o.expected, g.job_id)
        msg = f"job {g.job_id} ended {job.phase} but its clip is at s3://{d.bucket}/{key}: adopted"
        return _settle(
            o, done, Rule.ADOPT_AFTER_JOB_ENDED, events=(Event(Reason.CLIP_ADOPTED, msg),)
        )
    err = job.error or _error(o, Reason.GENERATION_FAILED, "the job failed", False)
    if job.phase == JobPhase.LOST:
        err = _error(
            o,
            Reason.JOB_LOST,
            (job.error.message if job.error else "job unknown to the provider"),
            True,
        )
    return retry_or_fail(
        o, s, err, Rule.JOB_FAILED if job.phase == JobPhase.FAILED else Rule.JOB_LOST
    )


def _spec_moved(o: Observation) -> Decision | None:
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
    nxt = s.model_copy(
        update={"attempts": 0, "last_error": None, "next_retry_at": None, "spec_hash": d.spec_hash}
    )
    msg = f"spec changed ({s.spec_hash} -> {d.spec_hash}): attempts reset"
    return _settle(o, nxt, Rule.SPEC_MOVED, events=(Event(Reason.SPEC_CHANGED, msg),))


def _completed_checks(o: Observation) -> Decision | None:
    s, d, c = o.status, o.desired, o.controls
    if s.phase != ScenePhase.COMPLETED or d is None:
        return None
    clip = s.clip
    if clip is None:
        nxt = _clip_gone(s, phase=ScenePhase.PENDING)
        msg = "status said Completed but recorded no clip; generating it"
        return _settle(
            o,
            nxt,
            Rule.COMPLETED_WITHOUT_CLIP,
            events=(Event(Reason.CLIP_MISSING, msg, "Warning"),),
        )
    if clip.spec_hash != d.spec_hash or clip.take != s.take:
        nxt = s.model_copy(
            update={
                "phase": ScenePhase.PROCESSING,
                "attempts": 0,
                "last_error": None,
                "next_retry_at": None,
                "spec_hash": d.spec_hash,
            }
        )
        msg = f"spec changed (clip {clip.spec_hash}, spec {d.spec_hash}): regenerating; the old clip stays until the new one is verified"
        return _settle(o, nxt, Rule.SPEC_CHANGED, events=(Event(Reason.SPEC_CHANGED, msg),))
    check = o.clip_check
    if check is not None and check.key == clip.key:
        obj = check.obj
        intact = obj is not None and same_clip(clip, obj)
        if not intact:
            what = "missing" if obj is None else "changed (size or checksum differs)"
            msg = f"clip s3://{clip.bucket}/{clip.key} is {what}"
            if c.missing_clip == MissingClipPolicy.IGNORE:
                if clip_missing(s):
                    return _settle(o, s, Rule.CLIP_MISSING_IGNORED)  # reported already
                msg += "; repair.missingClip is Ignore: not regenerated"
                nxt = s.model_copy(
                    update={"last_error": _error(o, Reason.CLIP_MISSING, msg, False)}
                )
                return _settle(
                    o,
                    nxt,
                    Rule.CLIP_MISSING_IGNORED,
                    events=(Event(Reason.CLIP_MISSING, msg, "Warning"),),
                )
            if c.missing_clip == MissingClipPolicy.FAIL:
                err = _error(o, Reason.CLIP_MISSING, msg, False)
                nxt = _clip_gone(s, phase=ScenePhase.FAILED, last_error=err)
                return _settle(
                    o,
                    nxt,
                    Rule.CLIP_MISSING_FAIL,
                    events=(Event(Reason.CLIP_MISSING, msg, "Warning"),),
                )
            nxt = _clip_gone(
                s, phase=ScenePhase.PENDING, take=s.take + 1, attempts=0, last_error=None
            )
            return _settle(
                o,
                nxt,
                Rule.CLIP_MISSING_REGENERATE,
                events=(Event(Reason.CLIP_MISSING, msg + "; regenerating", "Warning"),),
            )
        assert obj is not None
        if obj.etag != clip.etag:  # the same bytes under a new ETag: remember the new one
            s = s.model_copy(
                update={"clip": clip.model_copy(update={"etag": obj.etag, "verified_at": _now(o)})}
            )
        if clip_missing(s):  # an ignored missing clip is back, intact
            msg = f"clip s3://{clip.bucket}/{clip.key} is back and intact"
            nxt = s.model_copy(update={"last_error": None})
            return _settle(o, nxt, Rule.CLIP_RESTORED, events=(Event(Reason.CLIP_RESTORED, msg),))
        if obj.etag != clip.etag:
            return _settle(o, s, Rule.CLIP_SAME_CONTENT)
    return _settle(o, s, Rule.COMPLETED)


def same_clip(clip: ClipInfo, obj: StoredObject) -> bool:
    """Whether the object is still the recorded clip. Same size, and: the same bytes
    (their SHA-256, read back, equals the one recorded at upload: an ETag may change
    without them, e.g. a copy onto itself), or the same ETag and no contrary checksum."""
    if obj.size != clip.size:
        return False
    if clip.sha256 is not None and obj.content_sha256 is not None:
        return obj.content_sha256 == clip.sha256
    return obj.etag == clip.etag and (
        clip.sha256 is None or obj.sha256 is None or obj.sha256 == clip.sha256
    )


def clip_missing(s: SceneStatus) -> bool:
    """A Completed Scene whose clip drift found missing, kept as is (policy Ignore)."""
    return s.last_error is not None and s.last_error.reason == Reason.CLIP_MISSING


def _failed_checks(o: Observation) -> Decision | None:
    s, d = o.status, o.desired
    if s.phase != ScenePhase.FAILED or d is None:
        return None
    if s.spec_hash is not None and s.spec_hash != d.spec_hash:
        nxt = s.model_copy(
            update={
                "phase": ScenePhase.PENDING,
                "attempts": 0,
                "last_error": None,
                "next_retry_at": None,
                "spec_hash": d.spec_hash,
            }
        )
        return _settle(
            o,
            nxt,
            Rule.FAILED_SPEC_CHANGED,
            events=(Event(Reason.SPEC_CHANGED, "spec changed: trying again"),),
        )
    return _settle(o, s, Rule.FAILED)


def _waiting_capacity(o: Observation) -> Decision:
    return _settle(
        o,
        o.status,
        Rule.WAITING_CAPACITY,
        (Reason.WAITING, f"waiting for a free job slot: {o.capacity_limit or 'limit reached'}"),
        requeue_after=CAPACITY_RECHECK_SECONDS,
    )


def _generate(o: Observation) -> Decision:
    s, d, c = o.status, o.desired, o.controls
    assert d is not None
    if not c.generate_videos:
        return _settle(
            o, s, Rule.VIDEOS_NOT_REQUESTED, (Reason.NOT_REQUESTED, "spec.generateVideos is false")
        )
    if s.next_retry_at:
        at = parse_rfc3339(s.next_retry_at)
        if at is not None and at > o.now:
            return _settle(
                o,
                s,
                Rule.BACKING_OFF,
                (Reason.RETRY_SCHEDULED, ""),
                requeue_after=(at - o.now).total_seconds(),
            )
    key = d.key(s.take)
    if o.expected is None or o.expected.key != key:
        startable = (
            not c.paused
            and s.attempts < c.retry_limit
            and (c.budget_left is None or c.budget_left > 0)
        )
        if startable and not o.capacity:
            # Look at S3 only once a slot is free: a waiting Scene then costs no HEAD.
            return _waiting_capacity(o)
        held = _bucket_hold(o) if startable else None
        return held or Decision(Effect.LOOK_EXPECTED, s, Rule.LOOK_EXPECTED)
    if o.expected.obj is not None and not o.expected.obj.invalid:
        done = _completed(o, o.expected, s.clip.job_id if s.clip and s.clip.key == key else None)
        msg = f"adopted existing clip s3://{d.bucket}/{key}: no new job"
        return _settle(o, done, Rule.ADOPT, events=(Event(Reason.CLIP_ADOPTED, msg),))
    if c.paused:
        return _settle(o, s, Rule.PAUSED, (Reason.PAUSED, "spec.paused is true: no new jobs"))
    if s.attempts >= c.retry_limit:
        err = s.last_error or _error(
            o, Reason.RETRIES_EXHAUSTED, f"{s.attempts} attempts used", False
        )
        failed = s.model_copy(
            update={"phase": ScenePhase.FAILED, "last_error": err, "next_retry_at": None}
        )
        return _settle(
            o,
            failed,
            Rule.ATTEMPTS_EXHAUSTED,
            events=(Event(Reason.RETRIES_EXHAUSTED, err.message, "Warning"),),
        )
    if c.budget_left is not None and c.budget_left <= 0:
        return _settle(
            o,
            s,
            Rule.BUDGET_EXHAUSTED,
            (Reason.BUDGET_EXHAUSTED, "spec.budget.maxGenerations reached"),
        )
    if not o.capacity:
        return _waiting_capacity(o)
    held = _bucket_hold(o)
    if held is not None:
        return held
    attempt = s.attempts + 1
    marker = s.model_copy(
        update={
            "phase": ScenePhase.PROCESSING,
            "generation": GenerationInfo(
                provider=d.provider,
                model=d.model,
                job_id=None,
                started_at=_now(o),
                attempt=attempt,
                spec_hash=d.spec_hash,
                take=s.take,
            ),
            "attempts": attempt,
            "generations_started": s.generations_started + 1,
            "next_retry_at": None,
            "spec_hash": d.spec_hash,
        }
    )
    return _settle(o, marker, Rule.START_JOB, events=_not_adopted(o), effect=Effect.START)


def _not_adopted(o: Observation) -> tuple[Event, ...]:
    """An object at the clip's key that is not a video is not adopted: the new job's clip
    replaces it. Said once, with the start."""
    seen = o.expected
    if seen is None or seen.obj is None or not seen.obj.invalid:
        return ()
    msg = f"object at s3://{o.desired.bucket if o.desired else ''}/{seen.key} is not a usable clip ({seen.obj.invalid}): not adopted; generating"
    return (Event(Reason.INVALID_OUTPUT, msg, "Warning"),)


def _bucket_hold(o: Observation) -> Decision | None:
    """No paid job whose clip cannot be stored: the bucket is looked at before a Scene
    that may start looks for its clip or starts; a missing or denied one holds it."""
    if o.bucket is None:
        return Decision(Effect.CHECK_BUCKET, o.status, Rule.CHECK_BUCKET)
    if o.bucket.problem:
        return _settle(
            o,
            o.status,
            Rule.BUCKET_UNAVAILABLE,
            (Reason.BUCKET_UNAVAILABLE, o.bucket.problem),
            requeue_after=BUCKET_RECHECK_SECONDS,
        )
    return None


def decide(o: Observation) -> Decision:
    if o.blocked is not None or o.desired is None:
        err = o.blocked or ErrorInfo(reason=Reason.INVALID_SPEC, message="no desired state")
        return _settle(o, o.status, Rule.BLOCKED, (err.reason, err.message))
    for rule in (_tokens, _in_flight, _spec_moved, _completed_checks, _failed_checks):
        decision = rule(o)
        if decision is not None:
            return decision
    return _generate(o)


def with_job_id(marker: SceneStatus, job_id: str) -> SceneStatus:
    """The write right after the provider returned: the job id, before any waiting."""
    assert marker.generation is not None
    return marker.model_copy(
        update={"generation": marker.generation.model_copy(update={"job_id": job_id})}
    )
