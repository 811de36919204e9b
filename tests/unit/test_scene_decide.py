"""The Scene state machine, rule by rule (docs/architecture.md): one table row per rule, ids name the rule.

`decide` is pure, so every case is an `Observation` built by hand and a check of the
`Decision`. Flows that need several steps use `drive`: the runtime's own effect loop
(`controller.reconcile.effects.run_pass`) with a scripted actuator (a dict plays S3, a
fixed `JobSeen` plays the provider).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest

from controller.api.common import ErrorInfo
from controller.api.project import Backoff, MissingClipPolicy
from controller.api.scene import ClipInfo, GenerationInfo, ScenePhase, SceneStatus
from controller.reconcile import scene as sc
from controller.reconcile.backoff import backoff_seconds
from controller.reconcile.conditions import get_condition
from controller.reconcile.effects import MAX_STEPS, Ended, Facts, run_pass
from controller.reconcile.scene import (
    CAPACITY_RECHECK_SECONDS,
    Controls,
    Decision,
    Effect,
    JobPhase,
    JobSeen,
    ObjectSeen,
    Observation,
    Outcome,
    StoredObject,
    after_start_error,
    decide,
    with_job_id,
)
from controller.reconcile.timeutil import parse_rfc3339, rfc3339
from controller.vocabulary import Cond, Reason
from tests.unit.fakes import run_now

NOW = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
BUCKET = "clips"
PREFIX = "videos/team-a/uid-1/scenes/1/"
LIMIT = 3

# ----------------------------------------------------------------------------- builders


def desired(spec_hash: str = "h1") -> sc.Desired:
    return sc.Desired(
        spec_hash=spec_hash,
        provider="replicate",
        model="google/veo-3.1",
        duration_seconds=4,
        bucket=BUCKET,
        key_prefix=PREFIX,
    )


def key(spec_hash: str = "h1", take: int = 0) -> str:
    return desired(spec_hash).key(take)


def obj(k: str, size: int = 1000, etag: str = '"e1"', sha256: str | None = None) -> StoredObject:
    return StoredObject(k, size, etag, sha256)


def seen(k: str, o: StoredObject | bool | None = True) -> ObjectSeen:
    """A HEAD of `k`: True = the default object, None = nothing there."""
    return ObjectSeen(k, obj(k) if o is True else (o or None))


def clip(
    spec_hash: str = "h1", take: int = 0, size: int = 1000, etag: str = '"e1"', sha256=None
) -> ClipInfo:
    return ClipInfo(
        bucket=BUCKET,
        key=key(spec_hash, take),
        size=size,
        etag=etag,
        sha256=sha256,
        spec_hash=spec_hash,
        take=take,
        provider="replicate",
        job_id="job-0",
        verified_at=rfc3339(NOW - dt.timedelta(hours=1)),
    )


def gen(
    job_id: str | None = "job-1", attempt: int = 1, spec_hash: str = "h1", take: int = 0
) -> GenerationInfo:
    return GenerationInfo(
        provider="replicate",
        model="google/veo-3.1",
        job_id=job_id,
        started_at=rfc3339(NOW - dt.timedelta(minutes=2)),
        attempt=attempt,
        spec_hash=spec_hash,
        take=take,
    )


def err(reason: str = "ServerError", message: str = "HTTP 503", retryable: bool = True):
    return ErrorInfo(reason=reason, message=message, retryable=retryable, at=rfc3339(NOW))


def controls(**kw: object) -> Controls:
    base: dict[str, object] = {"generate_videos": True, "retry_limit": LIMIT}
    return Controls(**{**base, **kw})  # type: ignore[arg-type]


def status(**kw: object) -> SceneStatus:
    return SceneStatus(**kw)  # type: ignore[arg-type]


def observe(st: SceneStatus | None = None, **kw: object) -> Observation:
    base: dict[str, object] = {
        "now": NOW,
        "generation": 1,
        "status": st if st is not None else SceneStatus(),
        "desired": desired(),
        "controls": controls(),
        "bucket": sc.BucketSeen(),  # the bucket was looked at and is fine
    }
    return Observation(**{**base, **kw})  # type: ignore[arg-type]


def completed(spec_hash: str = "h1", take: int = 0, **kw: object) -> SceneStatus:
    """A Completed status as decide writes it (conditions included)."""
    s = status(
        phase=ScenePhase.COMPLETED,
        clip=clip(spec_hash, take),
        original_video_clip_s3_key=key(spec_hash, take),
        working_video_clip_s3_key=key(spec_hash, take),
        spec_hash=spec_hash,
        take=take,
        attempts=1,
        generations_started=1,
        **kw,
    )
    return settle(observe(s, desired=desired(spec_hash))).status


def in_flight(attempt: int = 1, job_id: str | None = "job-1", **kw: object) -> SceneStatus:
    return status(
        phase=ScenePhase.PROCESSING,
        generation=gen(job_id, attempt),
        attempts=attempt,
        generations_started=attempt,
        spec_hash="h1",
        **kw,
    )


def failed(attempts: int = LIMIT, spec_hash: str = "h1", **kw: object) -> SceneStatus:
    s = status(
        phase=ScenePhase.FAILED,
        attempts=attempts,
        generations_started=attempts,
        spec_hash=spec_hash,
        last_error=err("InvalidInput", "prompt rejected", retryable=False),
        **kw,
    )
    return settle(observe(s, desired=desired(spec_hash))).status


def settle(o: Observation) -> Observation:
    """Apply WRITE decisions until decide asks for something else: a settled status."""
    for _ in range(10):
        d = decide(o)
        if d.effect != Effect.WRITE:
            return o
        o = replace(o, status=d.status)
    raise AssertionError("status did not settle")


def next_pass(o: Observation, **kw: object) -> Observation:
    """The next reconcile pass: facts from the last one are gone."""
    return replace(o, expected=None, job=None, finished=None, clip_check=None, **kw)  # type: ignore[arg-type]


class Scripted:
    """A SceneActuator for `drive`: a dict plays S3, a fixed `JobSeen` plays the provider,
    an upload is the given object; a START is not carried out (the pass ends there)."""

    def __init__(
        self,
        o: Observation,
        s3: dict[str, StoredObject],
        job: JobSeen | None,
        upload: StoredObject | None,
    ) -> None:
        self.o, self.s3, self.job, self.upload = o, s3, job, upload

    async def observe(self, facts: Facts) -> Observation:
        self.o = replace(
            self.o,
            expected=facts.expected,
            clip_check=facts.clip_check,
            job=facts.job,
            finished=facts.finished,
            orphan=facts.orphan,
        )
        return self.o

    def decided(self, o: Observation, d: Decision) -> None:
        pass

    async def write(self, o: Observation, d: Decision) -> bool:
        self.o = replace(self.o, status=d.status)
        return True

    async def look(self, o: Observation) -> ObjectSeen:
        assert o.desired is not None
        k = o.desired.key(o.status.take)
        return ObjectSeen(k, self.s3.get(k))

    async def poll(self, o: Observation) -> JobSeen:
        assert self.job is not None, "a POLL needs a scripted job"
        return self.job

    async def find_job(self, o: Observation) -> sc.OrphanSearch:
        raise AssertionError("unexpected effect FindJob")

    async def check_bucket(self, o: Observation) -> sc.BucketSeen:
        return sc.BucketSeen()

    async def start(self, o: Observation, d: Decision) -> float | None:
        return None

    async def finish(self, o: Observation) -> ObjectSeen:
        assert o.desired is not None and self.upload is not None
        k = o.desired.key(o.status.take)
        self.s3[k] = replace(self.upload, key=k)
        return ObjectSeen(k, self.s3[k])


def drive(
    o: Observation,
    s3: dict[str, StoredObject] | None = None,
    job: JobSeen | None = None,
    upload: StoredObject | None = None,
    max_steps: int = MAX_STEPS,
) -> tuple[Observation, list[Decision]]:
    """One pass of the runtime's own effect loop over scripted effects; stops at NONE or
    START. Returns the last observation and the decisions made."""
    actuator = Scripted(o, {} if s3 is None else s3, job, upload)
    facts = Facts(o.expected, o.clip_check, o.job, o.finished, o.orphan)
    result = run_now(run_pass(actuator, facts, max_steps))
    trail = result.decisions
    if result.ended == Ended.UNSETTLED:
        raise AssertionError(f"no settle within {max_steps} steps: {[d.rule for d in trail]}")
    return actuator.o, trail


def cond(s: SceneStatus, type_: str):
    c = get_condition(s.conditions, type_)
    assert c is not None, f"condition {type_} missing"
    return c


def seconds_until(at: str | None) -> float:
    t = parse_rfc3339(at)
    assert t is not None
    return (t - NOW).total_seconds()


def assert_retry_at(s: SceneStatus, attempts: int, backoff: Backoff | None = None) -> None:
    """next_retry_at lies in the equal-jitter window [capped/2, capped] (RFC 3339 seconds)."""
    backoff = backoff or Backoff()
    capped = min(
        backoff.initial_seconds * backoff.factor ** max(attempts - 1, 0), backoff.max_seconds
    )
    delay = seconds_until(s.next_retry_at)
    assert capped / 2 - 1 < delay <= capped


def reasons(d: Decision) -> list[str]:
    return [e.reason for e in d.events]


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Case:
    obs: Observation
    effect: Effect
    rule: str
    phase: ScenePhase | None = None  # expected phase of the decided status
    events: tuple[str, ...] = ()
    check: Callable[[Observation, Decision], None] | None = None


def _adopted(o: Observation, d: Decision) -> None:
    s = d.status
    assert s.clip is not None and s.clip.key == key() and s.clip.spec_hash == "h1"
    assert (s.clip.size, s.clip.etag) == (1000, '"e1"')
    assert s.original_video_clip_s3_key == s.working_video_clip_s3_key == key()
    assert s.generation is None and s.last_error is None and s.next_retry_at is None
    assert cond(s, Cond.READY).status == "True" and cond(s, Cond.READY).reason == Reason.COMPLETED


def _clip_cleared(o: Observation, d: Decision) -> None:
    s = d.status
    assert s.clip is None
    assert s.original_video_clip_s3_key is None and s.working_video_clip_s3_key is None
    assert cond(s, Cond.READY).status == "False"


def _new_take(o: Observation, d: Decision) -> None:
    _clip_cleared(o, d)
    assert d.status.take == o.status.take + 1 and d.status.attempts == 0
    assert d.status.generations_started == o.status.generations_started  # usage is kept


def _ready_again(o: Observation, d: Decision) -> None:
    ready = cond(d.status, Cond.READY)
    assert (ready.status, ready.reason) == ("True", Reason.COMPLETED)


def _missing_but_kept(o: Observation, d: Decision) -> None:
    s = d.status
    assert s.clip == o.status.clip and s.original_video_clip_s3_key == o.status.clip.key
    assert s.last_error is not None and s.last_error.reason == Reason.CLIP_MISSING
    assert "Ignore" in s.last_error.message and cond(s, Cond.READY).status == "False"


def _failed_with(reason: str, message: str | None = None, retryable: bool = False):
    def check(o: Observation, d: Decision) -> None:
        s = d.status
        assert s.last_error is not None
        assert s.last_error.reason == reason and s.last_error.retryable is retryable
        if message is not None:
            assert message in s.last_error.message
        assert s.generation is None and s.next_retry_at is None
        ready, failed_ = cond(s, Cond.READY), cond(s, Cond.FAILED)
        assert (ready.status, ready.reason) == ("False", reason)
        assert (failed_.status, failed_.reason) == ("True", reason)

    return check


def _retry_scheduled(last_reason: str, attempts: int):
    def check(o: Observation, d: Decision) -> None:
        s = d.status
        assert s.generation is None and s.attempts == attempts
        assert s.last_error is not None and s.last_error.reason == last_reason
        assert s.last_error.retryable
        assert_retry_at(s, attempts, o.controls.backoff)
        gen_cond = cond(s, Cond.GENERATING)
        assert (gen_cond.status, gen_cond.reason) == ("False", Reason.RETRY_SCHEDULED)
        assert all(e.type == "Warning" for e in d.events)

    return check


def _unchanged(o: Observation, d: Decision) -> None:
    assert d.status.wire() == o.status.wire()


def _requeued_after(seconds: float):
    def check(o: Observation, d: Decision) -> None:
        assert d.status.wire() == o.status.wire()
        assert d.requeue_after == pytest.approx(seconds)

    return check


def _recovered(job_id: str):
    def check(o: Observation, d: Decision) -> None:
        before, after = o.status, d.status
        assert after.generation is not None and after.generation.job_id == job_id
        assert after.generation.started_at == before.generation.started_at  # type: ignore[union-attr]
        assert (after.attempts, after.generations_started) == (1, 1)  # no new attempt

    return check


def _ready_reason(reason: str, message: str | None = None):
    def check(o: Observation, d: Decision) -> None:
        ready = cond(d.status, Cond.READY)
        assert (ready.status, ready.reason) == ("False", reason)
        if message is not None:
            assert ready.message == message
        assert d.status.generation is None

    return check


def _marker(o: Observation, d: Decision) -> None:
    s, before = d.status, o.status
    g = s.generation
    assert g is not None and g.job_id is None  # the pending marker, written before the call
    assert g.attempt == s.attempts == before.attempts + 1
    assert s.generations_started == before.generations_started + 1
    assert (g.spec_hash, g.take, g.provider, g.model) == (
        "h1",
        before.take,
        "replicate",
        "google/veo-3.1",
    )
    assert g.started_at == rfc3339(NOW)
    assert s.phase == ScenePhase.PROCESSING and s.next_retry_at is None and s.spec_hash == "h1"
    assert cond(s, Cond.GENERATING).status == "True"
    assert cond(s, Cond.READY).reason == Reason.IN_PROGRESS


def _handled(field: str, token: str):
    def check(o: Observation, d: Decision) -> None:
        assert getattr(d.status, field) == token

    return check


def _all(*checks: Callable[[Observation, Decision], None]):
    def check(o: Observation, d: Decision) -> None:
        for c in checks:
            c(o, d)

    return check


def _fields(**expected: object):
    def check(o: Observation, d: Decision) -> None:
        actual = {k: getattr(d.status, k) for k in expected}
        assert actual == expected

    return check


def _uploaded(o: Observation, d: Decision) -> None:
    s = d.status
    assert o.finished is not None and o.finished.obj is not None and s.clip is not None
    up = o.finished.obj
    assert (s.clip.key, s.clip.size, s.clip.etag, s.clip.sha256) == (
        up.key,
        up.size,
        up.etag,
        up.sha256,
    )
    assert s.clip.job_id == "job-1" and s.clip.verified_at == rfc3339(NOW)
    assert s.generation is None and s.last_error is None
    assert s.original_video_clip_s3_key == s.working_video_clip_s3_key == up.key
    assert cond(s, Cond.READY).status == "True"


def _old_clip_kept(o: Observation, d: Decision) -> None:
    s = d.status
    assert s.clip == o.status.clip and s.clip is not None
    assert s.original_video_clip_s3_key == s.clip.key


LOOK_NOTHING = seen(key(), None)

CASES = [
    # --- row 1: an object exists for the current spec hash -> adopt it, no job
    pytest.param(
        Case(
            observe(expected=seen(key())),
            Effect.WRITE,
            "adopt",
            ScenePhase.COMPLETED,
            (Reason.CLIP_ADOPTED,),
            _adopted,
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
            _adopted,
        ),
        id="adopt-even-when-status-said-processing",
    ),
    pytest.param(
        Case(observe(), Effect.LOOK_EXPECTED, "look-expected", None, (), _unchanged),
        id="look-expected-before-starting",
    ),
    pytest.param(
        Case(
            observe(status(take=1), expected=seen(key(take=0))),
            Effect.LOOK_EXPECTED,
            "look-expected",
            None,
            (),
            _unchanged,
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
            _clip_cleared,
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
            _new_take,
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
            _new_take,
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
            _new_take,
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
            _all(_clip_cleared, _failed_with(Reason.CLIP_MISSING, "is missing")),
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
            _all(_ready_reason(Reason.CLIP_MISSING), _missing_but_kept),
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
            _unchanged,
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
            _all(_ready_again, _fields(last_error=None)),
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
            _unchanged,
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
            _unchanged,
        ),
        id="clip-check-of-another-key-is-ignored",
    ),
    pytest.param(
        Case(observe(completed()), Effect.NONE, "completed", ScenePhase.COMPLETED, (), _unchanged),
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
            _all(_old_clip_kept, _fields(attempts=0, last_error=None, next_retry_at=None)),
        ),
        id="spec-changed-regenerates-keeping-the-old-clip",
    ),
    # --- rows 4-5: a job is recorded
    pytest.param(
        Case(observe(in_flight()), Effect.POLL, "poll-job", None, (), _unchanged),
        id="job-recorded-poll-it",
    ),
    pytest.param(
        Case(
            observe(in_flight(), job=JobSeen("job-other", JobPhase.SUCCEEDED)),
            Effect.POLL,
            "poll-job",
            None,
            (),
            _unchanged,
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
            _unchanged,
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
            _unchanged,
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
            _unchanged,
        ),
        id="job-succeeded-finish-it",
    ),
    pytest.param(
        Case(
            observe(
                in_flight(),
                job=JobSeen("job-1", JobPhase.SUCCEEDED),
                finished=seen(key(), None),
            ),
            Effect.FINISH,
            "finish-job",
            None,
            (),
            _unchanged,
        ),
        id="job-succeeded-upload-not-verified-finish-again",
    ),
    pytest.param(
        Case(
            observe(
                in_flight(),
                job=JobSeen("job-1", JobPhase.SUCCEEDED),
                finished=seen(key(take=9)),
            ),
            Effect.FINISH,
            "finish-job",
            None,
            (),
            _unchanged,
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
            _uploaded,
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
            _retry_scheduled("ServerError", 1),
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
            _retry_scheduled(Reason.JOB_LOST, 2),
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
            _unchanged,
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
            _adopted,
        ),
        id="job-lost-adopts-the-clip-already-uploaded",
    ),
    pytest.param(
        Case(
            observe(in_flight(1, job_id=None)),
            Effect.FIND_JOB,
            "find-orphan",
            ScenePhase.PROCESSING,
            (),
            _unchanged,
        ),
        id="orphan-window-searches-the-provider-before-paying-again",
    ),
    pytest.param(
        Case(
            settle(
                observe(in_flight(1, job_id=None), now=NOW - dt.timedelta(minutes=2, seconds=-10))
            ),
            Effect.NONE,
            "orphan-settling",
            ScenePhase.PROCESSING,
            (),
            _requeued_after(20.0),
        ),
        id="orphan-window-waits-until-a-create-sent-before-the-stop-is-answered",
    ),
    pytest.param(
        Case(
            observe(in_flight(1, job_id=None), orphan=sc.OrphanSearch("job-9")),
            Effect.WRITE,
            "orphan-recovered",
            ScenePhase.PROCESSING,
            (Reason.JOB_RECOVERED,),
            _recovered("job-9"),
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
            _unchanged,
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
            _retry_scheduled(Reason.JOB_MAY_BE_ORPHANED, 1),
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
            _retry_scheduled(Reason.JOB_MAY_BE_ORPHANED, 1),
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
            _failed_with("InvalidInput", "NSFW prompt"),
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
            _failed_with(Reason.GENERATION_FAILED, "the job failed"),
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
            _failed_with(
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
            _failed_with(Reason.RETRIES_EXHAUSTED, "JobLost", True),
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
            _failed_with(Reason.RETRIES_EXHAUSTED, Reason.JOB_MAY_BE_ORPHANED, True),
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
            _failed_with(Reason.RETRIES_EXHAUSTED, "3 attempts used"),
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
            _fields(generation=None, attempts=0, next_retry_at=None, spec_hash="h2"),
        ),
        id="abandon-stale-job-when-spec-changed",
    ),
    # --- row 8: nothing yet -> start, or one of the gates says why not
    pytest.param(
        Case(
            observe(expected=LOOK_NOTHING),
            Effect.START,
            "start-job",
            ScenePhase.PROCESSING,
            (),
            _marker,
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
            _marker,
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
            _ready_reason(Reason.NOT_REQUESTED, "spec.generateVideos is false"),
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
            _unchanged,
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
            _ready_reason(Reason.PAUSED),
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
            _unchanged,
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
            _ready_reason(Reason.BUDGET_EXHAUSTED),
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
            _adopted,
        ),
        id="adopt-needs-no-budget-and-ignores-pause",
    ),
    pytest.param(
        Case(
            observe(expected=LOOK_NOTHING, capacity=False),
            Effect.WRITE,
            "waiting-capacity",
            ScenePhase.PENDING,
            (),
            _ready_reason(Reason.WAITING),
        ),
        id="no-capacity-waits",
    ),
    pytest.param(
        Case(
            settle(observe(expected=LOOK_NOTHING, capacity=False)),
            Effect.NONE,
            "waiting-capacity",
            ScenePhase.PENDING,
            (),
            _unchanged,
        ),
        id="no-capacity-settled-none-with-requeue",
    ),
    pytest.param(
        Case(
            observe(capacity=False, capacity_limit="replicate has 2 jobs in flight (X)"),
            Effect.WRITE,
            "waiting-capacity",
            ScenePhase.PENDING,
            (),
            _ready_reason(
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
            _unchanged,
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
            _unchanged,
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
            _unchanged,
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
            _fields(attempts=0, last_error=None, next_retry_at=None, spec_hash="h1"),
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
            _ready_reason(Reason.PROJECT_NOT_FOUND, "project p not found"),
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
            _ready_reason(Reason.INVALID_SPEC),
        ),
        id="blocked-no-desired-state-invalid-spec",
    ),
    # --- Failed is sticky until the spec changes or a retry token arrives
    pytest.param(
        Case(observe(failed()), Effect.NONE, "failed", ScenePhase.FAILED, (), _unchanged),
        id="failed-stays-failed-no-look",
    ),
    pytest.param(
        Case(
            observe(failed(spec_hash="h0")),
            Effect.WRITE,
            "failed-spec-changed",
            ScenePhase.PENDING,
            (Reason.SPEC_CHANGED,),
            _fields(attempts=0, last_error=None),
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
            _all(
                _handled("handled_retry_token", "r1"),
                _fields(attempts=0, last_error=None, next_retry_at=None),
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
            _unchanged,
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
            _all(
                _handled("handled_retry_token", "r1"),
                _old_clip_kept,
                _fields(attempts=1, take=0),
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
            _all(
                _handled("handled_project_retry_token", "pr1"),
                _fields(attempts=0, last_error=None),
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
            _unchanged,
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
            _all(
                _handled("handled_regenerate_token", "g1"),
                _old_clip_kept,
                _fields(take=1, attempts=0),
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
            _fields(take=1, attempts=0, last_error=None),
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
            _fields(take=1, attempts=0, generation=None),
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
            _unchanged,
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
            _all(
                _handled("handled_project_regenerate_token", "pg1"),
                _fields(take=1, attempts=0),
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
            _unchanged,
        ),
        id="project-regenerate-token-handled-once",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_decide_rule(case: Case) -> None:
    before = case.obs.status.wire()
    d = decide(case.obs)

    assert (d.effect, d.rule) == (case.effect, case.rule)
    if case.phase is not None:
        assert d.status.phase == case.phase
    assert tuple(reasons(d)) == case.events
    if case.check is not None:
        case.check(case.obs, d)
    # Invariants that hold for every row.
    assert case.obs.status.wire() == before, "decide mutated its input"
    assert decide(case.obs) == d, "decide is not deterministic"
    assert not (d.effect == Effect.START and case.obs.status.generation is not None)
    if d.status.phase == ScenePhase.COMPLETED:
        assert d.status.clip is not None
    if d.effect == Effect.WRITE:
        assert d.status.wire() != case.obs.status.wire(), "WRITE of an unchanged status"
    if d.effect in (Effect.WRITE, Effect.START):
        assert d.status.observed_generation == case.obs.generation
    assert d.status.attempts <= case.obs.controls.retry_limit


# ----------------------------------------------------------------------------- requeues


@pytest.mark.parametrize(
    ("obs", "requeue"),
    [
        pytest.param(
            observe(expected=LOOK_NOTHING, capacity=False),
            CAPACITY_RECHECK_SECONDS,
            id="waiting-capacity-requeues",
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


# ----------------------------------------------------------------------------- conditions


def test_last_transition_time_unchanged_when_status_does_not_change() -> None:
    s = completed()
    later = observe(s, now=NOW + dt.timedelta(hours=5))
    d = decide(later)
    assert d.effect == Effect.NONE
    assert d.status.conditions == s.conditions
    assert {c.last_transition_time for c in s.conditions} == {rfc3339(NOW)}


def test_last_transition_time_moves_only_for_conditions_whose_status_flips() -> None:
    backing_off = settle(
        observe(
            status(
                phase=ScenePhase.PROCESSING,
                attempts=1,
                generations_started=1,
                last_error=err(),
                next_retry_at=rfc3339(NOW + dt.timedelta(seconds=30)),
            )
        )
    ).status
    t2 = NOW + dt.timedelta(minutes=5)
    d = decide(observe(backing_off, now=t2, expected=seen(key(), None)))
    assert d.effect == Effect.START
    ready, generating = cond(d.status, Cond.READY), cond(d.status, Cond.GENERATING)
    assert ready.status == "False" and ready.reason == Reason.IN_PROGRESS
    assert ready.last_transition_time == rfc3339(NOW)  # False before and after
    assert generating.status == "True" and generating.last_transition_time == rfc3339(t2)


def test_observed_generation_follows_metadata_generation() -> None:
    s = completed()
    assert s.observed_generation == 1
    d = decide(observe(s, generation=7, now=NOW + dt.timedelta(minutes=1)))
    assert d.effect == Effect.WRITE and d.rule == "completed"
    assert d.status.observed_generation == 7
    assert {c.observed_generation for c in d.status.conditions} == {7}
    assert [c.last_transition_time for c in d.status.conditions] == [
        c.last_transition_time for c in s.conditions
    ]
    assert decide(observe(d.status, generation=7)).effect == Effect.NONE


def test_conditions_agree_with_phase() -> None:
    for s, ready, failed_ in (
        (completed(), "True", "False"),
        (failed(), "False", "True"),
        (
            settle(observe(in_flight(), job=JobSeen("job-1", JobPhase.RUNNING))).status,
            "False",
            "False",
        ),
    ):
        assert cond(s, Cond.READY).status == ready
        assert cond(s, Cond.FAILED).status == failed_


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

    waiting = decide(replace(o, status=kept.status, now=NOW + dt.timedelta(seconds=10)))
    assert (waiting.effect, waiting.rule) == (Effect.NONE, "orphan-settling")
    later = replace(o, status=kept.status, now=NOW + dt.timedelta(seconds=31))
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
