"""Building a Scene status: conditions derived from it, a write only when it differs,
the shapes of a completed clip and of a failed attempt."""

from __future__ import annotations

import datetime as dt

from controller.api.common import MAX_ERROR_MESSAGE, ConditionStatus, ErrorInfo
from controller.api.scene import ClipInfo, ScenePhase, SceneStatus, WorkingClipInfo
from controller.api.text import bound
from controller.api.vocabulary import Cond, Reason
from controller.decide.backoff import backoff_seconds
from controller.decide.conditions import set_condition
from controller.decide.health import with_scene_health
from controller.decide.scene.editing import editing
from controller.decide.scene.model import (
    Decision,
    Effect,
    Event,
    ObjectSeen,
    Observation,
    Rule,
    StoredObject,
)
from controller.decide.timeutil import rfc3339


def now_text(o: Observation) -> str:
    return rfc3339(o.now)


def error_at(o: Observation, reason: str, message: str, retryable: bool) -> ErrorInfo:
    return ErrorInfo(reason=reason, message=message, retryable=retryable, at=now_text(o))


def with_conditions(o: Observation, s: SceneStatus, waiting: tuple[str, str]) -> SceneStatus:
    """Derive Ready / Generating / Failed from the status itself, so they cannot disagree."""
    now, gen = now_text(o), o.generation
    conds = list(s.conditions)
    ready: tuple[ConditionStatus, str, str]
    generating: tuple[ConditionStatus, str, str]
    failed: tuple[ConditionStatus, str, str]
    if s.phase == ScenePhase.COMPLETED and s.clip is not None and clip_missing(s):
        # repair.missingClip Ignore: no new job, but no claim that the clip is there
        assert s.last_error is not None
        ready = ("False", Reason.CLIP_MISSING, s.last_error.message)
    elif s.phase == ScenePhase.COMPLETED and s.clip is not None and (edit := editing(o, s)):
        ready = ("False", edit[0], edit[1])
    elif s.phase == ScenePhase.COMPLETED and s.clip is not None:
        working = s.working_video_clip_s3_key or s.clip.key
        ready = ("True", Reason.COMPLETED, f"clip verified at s3://{s.clip.bucket}/{working}")
    elif s.phase == ScenePhase.FAILED:
        err = s.last_error
        ready = (
            "False",
            err.reason if err else Reason.GENERATION_FAILED,
            err.message if err else "",
        )
    elif s.generation is not None and upload_retrying(s):
        assert s.last_error is not None
        ready = ("False", Reason.UPLOAD_RETRYING, s.last_error.message)
    elif s.generation is not None:
        ready = ("False", Reason.IN_PROGRESS, "a generation job is in flight")
    else:
        ready = ("False", waiting[0], waiting[1])
    conds = set_condition(conds, Cond.READY, ready[0], ready[1], ready[2], generation=gen, now=now)
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
        now=now,
    )
    if s.phase == ScenePhase.FAILED:
        failed = ("True", ready[1], ready[2])
    else:
        failed = ("False", "NotFailed", "")
    conds = set_condition(
        conds, Cond.FAILED, failed[0], failed[1], failed[2], generation=gen, now=now
    )
    conds = with_scene_health(conds, s.phase, s.next_retry_at, generation=gen, now=now)
    return s.model_copy(update={"conditions": conds, "observed_generation": gen})


def settle(
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
    s = with_conditions(o, s, waiting)
    if effect == Effect.WRITE and s.wire() == o.status.wire():
        return Decision(Effect.NONE, s, rule, (), requeue_after)
    return Decision(effect, s, rule, events, requeue_after)


def completed(o: Observation, seen: ObjectSeen, job_id: str | None) -> SceneStatus:
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
        verified_at=now_text(o),
    )
    return s.model_copy(
        update={
            "phase": ScenePhase.COMPLETED,
            "clip": clip,
            "original_video_clip_s3_key": seen.key,
            # with an edit, the working clip is derived next (working.py)
            "working_video_clip_s3_key": seen.key if d.edit is None else None,
            "working_clip": None,
            "refused_edit": None,
            "generation": None,
            "last_error": None,
            "next_retry_at": None,
            "spec_hash": d.spec_hash,
        }
    )


def fresh_attempts(s: SceneStatus, spec_hash: str, **update: object) -> SceneStatus:
    """A new spec gets a fresh attempt budget: attempts, the last error and a scheduled
    retry reset, and the spec they are for recorded."""
    return s.model_copy(
        update={
            "attempts": 0,
            "last_error": None,
            "next_retry_at": None,
            "spec_hash": spec_hash,
            **update,
        }
    )


def clip_gone(s: SceneStatus, **update: object) -> SceneStatus:
    """Status must not point at an object that is not there."""
    return s.model_copy(
        update={
            "clip": None,
            "original_video_clip_s3_key": None,
            "working_video_clip_s3_key": None,
            "working_clip": None,
            "refused_edit": None,
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
        return settle(
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
    return settle(
        o,
        failed,
        rule,
        events=(Event(Reason.GENERATION_FAILED, f"{reason}: {final_err.message}", "Warning"),),
    )


def same_clip(clip: ClipInfo | WorkingClipInfo, obj: StoredObject) -> bool:
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


def upload_retrying(s: SceneStatus) -> bool:
    """A succeeded job whose output is kept while its upload is tried again."""
    return s.last_error is not None and s.last_error.reason == Reason.UPLOAD_RETRYING


def clip_missing(s: SceneStatus) -> bool:
    """A Completed Scene whose clip drift found missing, kept as is (policy Ignore)."""
    return s.last_error is not None and s.last_error.reason == Reason.CLIP_MISSING


def with_job_id(marker: SceneStatus, job_id: str) -> SceneStatus:
    """The write right after the provider returned: the job id, before any waiting."""
    assert marker.generation is not None
    return marker.model_copy(
        update={"generation": marker.generation.model_copy(update={"job_id": job_id})}
    )
