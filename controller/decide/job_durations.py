"""How long a provider's jobs take, and when to poll a running one next. Pure.

Jobs of one provider and model take about as long as one another: from the durations of
the last ones seen to end (the runtime keeps them: controller/controllers/job_durations.py)
a job's end is expected between a low and a high quantile, and it is polled there,
instead of on the fixed growing schedule that reads a 60 s job six times. Until enough
jobs have ended (a cold start, a model not seen yet, a restart) the fixed schedule
applies unchanged.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

MIN_SAMPLES = 5  # jobs seen to end before their durations are trusted
WINDOW = 50  # recent durations kept per provider and model: a slower provider shows soon
Z = 1.645  # the expected end: between the 5th and the 95th percentile
# Polls spread over that range: about three reads a job whatever its length and spread,
# a job seen ended within about a fifth of the range (modelled: benchmarks/poll_model.py).
POLLS_ACROSS = 5
# Jobs of exactly equal length still end spread to the operator: a pass waits its turn,
# a read takes time. Log-scale, so 5 % of the duration.
MIN_SPREAD = 0.05
MIN_POLL_SECONDS = 0.25  # never polled more often than this, however short its jobs


@dataclass(frozen=True)
class Estimate:
    """When a job of one provider and model is expected to end, in seconds of its age."""

    median: float
    low: float  # the 5th percentile
    high: float  # the 95th
    samples: int


def estimate(durations: Iterable[float]) -> Estimate | None:
    """The expected end from recent durations (seconds), or None with too few of them.
    Log-normal, with the median and the median absolute deviation of the logs: one job
    stuck for an hour moves neither."""
    logs = [math.log(d) for d in durations if d > 0]
    if len(logs) < MIN_SAMPLES:
        return None
    mid = statistics.median(logs)
    mad = statistics.median(abs(x - mid) for x in logs)
    spread = max(1.4826 * mad, MIN_SPREAD)  # 1.4826 x MAD: the standard deviation
    return Estimate(
        median=math.exp(mid),
        low=math.exp(mid - Z * spread),
        high=math.exp(mid + Z * spread),
        samples=len(logs),
    )


@dataclass(frozen=True)
class PollSchedule:
    """The fixed schedule (SCENE_OPERATOR_POLL_*): the first wait, each next one this
    many times longer, up to the maximum."""

    initial: float
    factor: float
    maximum: float

    def fixed(self, polls: int) -> float:
        """The wait after `polls` polls (0: after the start)."""
        return min(self.initial * self.factor ** max(polls - 1, 0), self.maximum)


def next_poll_delay(
    schedule: PollSchedule, polls: int, age: float, expected: Estimate | None
) -> float:
    """Seconds until the next poll of a running job `age` seconds old, polled `polls`
    times so far. Without an estimate: the fixed schedule. With one: asleep until a
    step past the low quantile (a job that ended before it is seen there, no later than
    a job of usual length), then a poll every step up to the high quantile, then longer
    waits as the job runs later than expected (each the factor times the last, as on
    the fixed schedule), never over the schedule's maximum. A job that fails early is seen late:
    its retry starts no later than a success would have been seen."""
    if expected is None:
        return schedule.fixed(polls)
    step = min(
        max((expected.high - expected.low) / POLLS_ACROSS, MIN_POLL_SECONDS), schedule.maximum
    )
    first = expected.low + step
    if age < first - step / 2:  # a pass a little early polls on the grid, not twice
        return max(first - age, MIN_POLL_SECONDS)
    if age < expected.high:
        return step
    late = (age - expected.high) * (schedule.factor - 1)  # grows as the fixed schedule does
    return min(step + late, schedule.maximum)
