"""Conditions written by `decide`: lastTransitionTime moves only on a flip,
observedGeneration follows metadata.generation, conditions agree with the phase."""

from __future__ import annotations

import datetime as dt

from controller.api.scene import ScenePhase
from controller.api.vocabulary import Cond, Reason
from controller.decide.scene import Effect, JobPhase, JobSeen, decide
from controller.decide.timeutil import rfc3339
from tests.unit.decide.scene_builders import (
    NOW,
    completed,
    cond,
    err,
    failed,
    in_flight,
    key,
    observe,
    seen,
    settle,
    status,
)

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
