"""Builders for the Scene state machine's tests (tests/unit/test_scene_decide_*.py and
others): hand-made `Observation`s, statuses in each phase, and `drive`, one pass of the
runtime's own effect loop (`controller.decide.effects.run_pass`) with a scripted
actuator (a dict plays S3, a fixed `JobSeen` plays the provider).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from controller.api.common import ErrorInfo
from controller.api.project import Backoff
from controller.api.scene import ClipInfo, GenerationInfo, ScenePhase, SceneStatus
from controller.decide import scene as sc
from controller.decide.conditions import get_condition
from controller.decide.effects import MAX_STEPS, Ended, Facts, run_pass
from controller.decide.scene import (
    Controls,
    Decision,
    Effect,
    JobSeen,
    ObjectSeen,
    Observation,
    StoredObject,
    decide,
)
from controller.decide.timeutil import parse_rfc3339, rfc3339
from tests.unit.run_now import run_now

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
        "planned": True,  # created by its Project's plan
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
