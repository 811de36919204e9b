"""When a running job is polled: the fixed schedule until jobs of its provider and model
have ended, then around when they end (controller/decide/job_durations.py)."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from controller.decide import job_durations as jd

SCHEDULE = jd.PollSchedule(initial=5.0, factor=1.5, maximum=30.0)


def lognormal(median: float, sigma: float, n: int, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    return [median * math.exp(rng.gauss(0.0, sigma)) for _ in range(n)]


def polls_until(duration: float, expected: jd.Estimate | None) -> tuple[int, float]:
    """(polls made, age at the poll that saw the job ended) for a job of `duration` s."""
    age, polls = 0.0, 0
    while True:
        age += jd.next_poll_delay(SCHEDULE, polls, age, expected)
        polls += 1
        if age >= duration:
            return polls, age


def test_too_few_durations_give_no_estimate() -> None:
    assert jd.estimate([60.0] * (jd.MIN_SAMPLES - 1)) is None
    assert jd.estimate([60.0] * jd.MIN_SAMPLES) is not None
    assert jd.estimate([0.0, -1.0] * jd.MIN_SAMPLES) is None  # not durations


def test_the_estimate_brackets_the_durations_and_ignores_an_outlier() -> None:
    durations = lognormal(60.0, 0.1, 49)
    got = jd.estimate([*durations, 3600.0])  # one job stuck for an hour
    assert got is not None and got.samples == 50
    assert got.median == pytest.approx(60.0, rel=0.05)
    below = sum(d < got.low for d in durations) / len(durations)
    above = sum(d > got.high for d in durations) / len(durations)
    assert below <= 0.12 and above <= 0.12


def test_equal_durations_keep_a_spread() -> None:
    got = jd.estimate([60.0] * 10)
    assert got is not None and got.low < 60.0 < got.high


@pytest.mark.parametrize("age", [0.0, 3.0, 60.0, 500.0])
def test_a_cold_start_is_the_fixed_schedule(age: float) -> None:
    for polls in range(12):
        fixed = min(5.0 * 1.5 ** max(polls - 1, 0), 30.0)  # the schedule before estimates
        assert jd.next_poll_delay(SCHEDULE, polls, age, None) == fixed


def test_a_warm_estimate_first_polls_a_step_past_the_low_quantile() -> None:
    expected = jd.estimate(lognormal(60.0, 0.1, 50))
    assert expected is not None
    first = jd.next_poll_delay(SCHEDULE, 0, 0.0, expected)
    assert expected.low < first < expected.median
    # The fixed schedule's first poll comes at 5 s and sees nothing.
    assert polls_until(expected.median, expected)[0] < polls_until(expected.median, None)[0]


def test_reads_per_job_are_bounded_and_fewer_than_the_fixed_schedule() -> None:
    durations = lognormal(60.0, 0.1, 2000, seed=11)
    expected = jd.estimate(lognormal(60.0, 0.1, 50))
    assert expected is not None
    learned = [polls_until(d, expected) for d in durations]
    fixed = [polls_until(d, None) for d in durations]
    mean = sum(p for p, _ in learned) / len(learned)
    assert mean <= 3.2 < sum(p for p, _ in fixed) / len(fixed)
    for d in durations:
        if expected.low <= d <= expected.high:  # every job ending where expected
            assert polls_until(d, expected)[0] <= jd.POLLS_ACROSS + 2
    # Seen ended within about a step: a fifth of the expected range.
    late = sorted(seen - d for d, (_, seen) in zip(durations, learned, strict=True))
    step = (expected.high - expected.low) / jd.POLLS_ACROSS
    assert late[len(late) // 2] <= step / 2 + 0.5 and late[int(0.95 * len(late))] <= 1.5 * step


def test_past_the_estimate_polls_grow_apart_but_never_past_the_maximum() -> None:
    expected = jd.estimate([60.0] * 10)
    assert expected is not None
    ages = [expected.high + 0.5 * i for i in range(20_000)]
    delays = [jd.next_poll_delay(SCHEDULE, 9, age, expected) for age in ages]
    assert all(a <= b for a, b in itertools.pairwise(delays))
    assert max(delays) == SCHEDULE.maximum
    # A job ten times longer than expected is read about as often as on the fixed schedule.
    assert polls_until(600.0, expected)[0] <= polls_until(600.0, None)[0] + jd.POLLS_ACROSS + 2


def test_never_polled_more_often_than_the_floor() -> None:
    expected = jd.estimate([0.05] * 10)  # jobs of 50 ms
    assert expected is not None
    for age in (0.0, 0.01, 0.04, 0.05, 0.3, 1.0, 10.0):
        assert jd.next_poll_delay(SCHEDULE, 1, age, expected) >= jd.MIN_POLL_SECONDS


def test_a_pass_a_little_early_does_not_poll_twice() -> None:
    expected = jd.estimate([60.0] * 10)
    assert expected is not None
    first = jd.next_poll_delay(SCHEDULE, 0, 0.0, expected)
    step = (expected.high - expected.low) / jd.POLLS_ACROSS
    assert jd.next_poll_delay(SCHEDULE, 1, first - 0.01, expected) == pytest.approx(step)
