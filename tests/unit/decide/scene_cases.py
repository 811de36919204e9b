"""The table of `decide` rules (tests/unit/test_scene_decide_*.py): a `Case` per row,
the checks rows share, and `check_case`, which also asserts the invariants every row keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from controller.api.scene import ScenePhase
from controller.api.vocabulary import Cond, Reason
from controller.decide.scene import Decision, Effect, Observation, decide
from controller.decide.timeutil import rfc3339
from tests.unit.decide.scene_builders import NOW, assert_retry_at, cond, key, reasons, seen


@dataclass(frozen=True)
class Case:
    obs: Observation
    effect: Effect
    rule: str
    phase: ScenePhase | None = None  # expected phase of the decided status
    events: tuple[str, ...] = ()
    check: Callable[[Observation, Decision], None] | None = None


def adopted(o: Observation, d: Decision) -> None:
    s = d.status
    assert s.clip is not None and s.clip.key == key() and s.clip.spec_hash == "h1"
    assert (s.clip.size, s.clip.etag) == (1000, '"e1"')
    assert s.original_video_clip_s3_key == s.working_video_clip_s3_key == key()
    assert s.generation is None and s.last_error is None and s.next_retry_at is None
    assert cond(s, Cond.READY).status == "True" and cond(s, Cond.READY).reason == Reason.COMPLETED


def clip_cleared(o: Observation, d: Decision) -> None:
    s = d.status
    assert s.clip is None
    assert s.original_video_clip_s3_key is None and s.working_video_clip_s3_key is None
    assert cond(s, Cond.READY).status == "False"


def new_take(o: Observation, d: Decision) -> None:
    clip_cleared(o, d)
    assert d.status.take == o.status.take + 1 and d.status.attempts == 0
    assert d.status.generations_started == o.status.generations_started  # usage is kept


def ready_again(o: Observation, d: Decision) -> None:
    ready = cond(d.status, Cond.READY)
    assert (ready.status, ready.reason) == ("True", Reason.COMPLETED)


def missing_but_kept(o: Observation, d: Decision) -> None:
    s = d.status
    assert s.clip == o.status.clip and s.original_video_clip_s3_key == o.status.clip.key
    assert s.last_error is not None and s.last_error.reason == Reason.CLIP_MISSING
    assert "Ignore" in s.last_error.message and cond(s, Cond.READY).status == "False"


def failed_with(reason: str, message: str | None = None, retryable: bool = False):
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


def retry_scheduled(last_reason: str, attempts: int):
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


def unchanged(o: Observation, d: Decision) -> None:
    assert d.status.wire() == o.status.wire()


def requeued_after(seconds: float):
    def check(o: Observation, d: Decision) -> None:
        assert d.status.wire() == o.status.wire()
        assert d.requeue_after == pytest.approx(seconds)

    return check


def recovered(job_id: str):
    def check(o: Observation, d: Decision) -> None:
        before, after = o.status, d.status
        assert after.generation is not None and after.generation.job_id == job_id
        assert after.generation.started_at == before.generation.started_at  # type: ignore[union-attr]
        assert (after.attempts, after.generations_started) == (1, 1)  # no new attempt

    return check


def ready_reason(reason: str, message: str | None = None):
    def check(o: Observation, d: Decision) -> None:
        ready = cond(d.status, Cond.READY)
        assert (ready.status, ready.reason) == ("False", reason)
        if message is not None:
            assert ready.message == message
        assert d.status.generation is None

    return check


def marker_written(o: Observation, d: Decision) -> None:
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


def handled(field: str, token: str):
    def check(o: Observation, d: Decision) -> None:
        assert getattr(d.status, field) == token

    return check


def all_of(*checks: Callable[[Observation, Decision], None]):
    def check(o: Observation, d: Decision) -> None:
        for c in checks:
            c(o, d)

    return check


def fields_are(**expected: object):
    def check(o: Observation, d: Decision) -> None:
        actual = {k: getattr(d.status, k) for k in expected}
        assert actual == expected

    return check


def uploaded(o: Observation, d: Decision) -> None:
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


def old_clip_kept(o: Observation, d: Decision) -> None:
    s = d.status
    assert s.clip == o.status.clip and s.clip is not None
    assert s.original_video_clip_s3_key == s.clip.key


LOOK_NOTHING = seen(key(), None)


def check_case(case: Case) -> None:
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
