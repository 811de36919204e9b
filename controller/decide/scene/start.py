"""Rules for a Scene without a job: back off, adopt a clip already stored, hold for a
slot, a budget or a bucket, or start a job (the pending marker before any create)."""

from __future__ import annotations

from controller.api.scene import GenerationInfo, ScenePhase
from controller.api.vocabulary import PAUSED_MESSAGE, Reason
from controller.decide.scene.model import (
    BUCKET_RECHECK_SECONDS,
    CAPACITY_RECHECK_SECONDS,
    WAITING_NOTICE_SECONDS,
    Decision,
    Effect,
    Event,
    Observation,
    Rule,
)
from controller.decide.scene.status import completed, error_at, now_text, settle
from controller.decide.timeutil import parse_rfc3339


def _waiting_capacity(o: Observation) -> Decision:
    """Park for a slot. A planned Scene the operator never wrote waits quietly for up to
    WAITING_NOTICE_SECONDS (its Project, what a user or GitOps tool applied and watches,
    counts the Scenes waiting): the write would say nothing its empty status gets wrong,
    and would be the fifth per Scene. A Scene a user applied (kstatus would read its
    empty status as Current), one whose status says anything already, or one that has
    waited longer says it waits."""
    waited = (o.now - o.waiting_since).total_seconds() if o.waiting_since else 0.0
    unwritten = o.planned and o.status.phase is None and not o.status.conditions
    if unwritten and waited < WAITING_NOTICE_SECONDS:
        left = WAITING_NOTICE_SECONDS - waited
        return Decision(Effect.NONE, o.status, Rule.WAITING_CAPACITY, requeue_after=left)
    return settle(
        o,
        o.status,
        Rule.WAITING_CAPACITY,
        (Reason.WAITING, f"waiting for a free job slot: {o.capacity_limit or 'limit reached'}"),
        requeue_after=CAPACITY_RECHECK_SECONDS,
    )


def generate(o: Observation) -> Decision:
    s, d, c = o.status, o.desired, o.controls
    assert d is not None
    if not c.generate_videos:
        return settle(
            o, s, Rule.VIDEOS_NOT_REQUESTED, (Reason.NOT_REQUESTED, "spec.generateVideos is false")
        )
    if s.next_retry_at:
        at = parse_rfc3339(s.next_retry_at)
        if at is not None and at > o.now:
            return settle(
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
        done = completed(o, o.expected, s.clip.job_id if s.clip and s.clip.key == key else None)
        msg = f"adopted existing clip s3://{d.bucket}/{key}: no new job"
        return settle(o, done, Rule.ADOPT, events=(Event(Reason.CLIP_ADOPTED, msg),))
    if c.paused:
        return settle(o, s, Rule.PAUSED, (Reason.PAUSED, PAUSED_MESSAGE))
    if s.attempts >= c.retry_limit:
        err = s.last_error or error_at(
            o, Reason.RETRIES_EXHAUSTED, f"{s.attempts} attempts used", False
        )
        failed = s.model_copy(
            update={"phase": ScenePhase.FAILED, "last_error": err, "next_retry_at": None}
        )
        return settle(
            o,
            failed,
            Rule.ATTEMPTS_EXHAUSTED,
            events=(Event(Reason.RETRIES_EXHAUSTED, err.message, "Warning"),),
        )
    if c.budget_left is not None and c.budget_left <= 0:
        return settle(
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
                started_at=now_text(o),
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
    return settle(o, marker, Rule.START_JOB, events=_not_adopted(o), effect=Effect.START)


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
        return settle(
            o,
            o.status,
            Rule.BUCKET_UNAVAILABLE,
            (Reason.BUCKET_UNAVAILABLE, o.bucket.problem),
            requeue_after=BUCKET_RECHECK_SECONDS,
        )
    return None
