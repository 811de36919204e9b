"""What the provider's limits allow: the ideal makespans the runs are measured against, and
the statistics of how long a finished job waits before its Scene is Completed. Pure."""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def ideal_makespan(
    scenes: int, concurrency: int, latency: float, durations: Sequence[float] | None = None
) -> float:
    """The best any operator could do: full waves of `concurrency` jobs of `latency` s.
    With `durations` (each job's own, in creation order: the fake draws them so), each
    job takes the first slot that frees, as an operator that sees every end at once
    would start the next; equal durations give the waves again."""
    if scenes <= 0:
        return 0.0
    if concurrency <= 0:
        raise ValueError("concurrency must be positive")
    if durations is None:
        return math.ceil(scenes / concurrency) * latency
    return pipeline_bound(scenes, concurrency, latency, math.inf, 0.0, durations)


def limited_ideal(
    scenes: int,
    concurrency: int,
    latency: float,
    creates_per_second: float,
    reads_per_second: float | None,
    durations: Sequence[float] | None = None,
) -> dict[str, float]:
    """Issue 14's ideal under a provider's rate limits:
    `max(N / create rate, ceil(N / concurrency) x latency)` plus the polling delay the
    read limit forces.

    That delay: with `c = min(N, concurrency)` jobs in flight sharing `reads_per_second`,
    each job is looked at every `c / reads` s at best, so a finished job waits half that on
    average before a poll sees it, and the next wave's slot frees only then: once per wave.
    `reads_per_second=None` means completions are pushed (webhooks): no polling delay.
    `durations`: the jobs' own lengths, for the waves (`ideal_makespan`).
    """
    if scenes <= 0:
        return {"create_bound": 0.0, "wave_bound": 0.0, "poll_delay": 0.0, "ideal": 0.0}
    if creates_per_second <= 0 or (reads_per_second is not None and reads_per_second <= 0):
        raise ValueError("rates must be positive")
    create_bound = scenes / creates_per_second
    wave_bound = ideal_makespan(scenes, concurrency, latency, durations)
    waves = math.ceil(scenes / concurrency)
    in_flight = min(scenes, concurrency)
    poll_delay = 0.0 if reads_per_second is None else waves * in_flight / reads_per_second / 2
    return {
        "create_bound": round(create_bound, 3),
        "wave_bound": round(wave_bound, 3),
        "poll_delay": round(poll_delay, 3),
        "ideal": round(max(create_bound, wave_bound) + poll_delay, 3),
    }


def pipeline_bound(
    scenes: int,
    concurrency: int,
    latency: float,
    creates_per_second: float,
    detect: float,
    durations: Sequence[float] | None = None,
) -> float:
    """A tighter bound than `limited_ideal`: job k starts at the later of its create slot
    (`k / rate`: creates are spaced) and the moment a slot frees, the first job to be
    seen finished (its length + `detect` after it started); the last one seen finished
    ends the run. The create spacing of the first wave carries over to every later wave.
    Each job lasts `latency`, or its own length from `durations` (in creation order)."""
    if scenes <= 0:
        return 0.0
    if concurrency <= 0 or creates_per_second <= 0:
        raise ValueError("concurrency and rate must be positive")
    if durations is not None and len(durations) < scenes:
        raise ValueError("a duration for every job")
    free = [0.0] * min(concurrency, scenes)  # when each slot is free again
    last = 0.0
    for k in range(scenes):
        start = max(k / creates_per_second, heapq.heappop(free))
        seen = start + (latency if durations is None else durations[k]) + detect
        heapq.heappush(free, seen)
        last = max(last, seen)
    return round(last, 3)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of sorted `values` (non-empty)."""
    rank = max(1, math.ceil(pct / 100.0 * len(values)))
    return values[rank - 1]


def delay_stats(finished: Mapping[str, float], completed: Mapping[str, float]) -> dict[str, Any]:
    """Seconds from a job finishing at the provider (`finished`: job id -> time) to its
    Scene being seen Completed (`completed`: job id -> time), over jobs in both. A negative
    delay (clocks of two observers) is kept: it shows the measurement's resolution."""
    delays = sorted(completed[j] - t for j, t in finished.items() if j in completed)
    out: dict[str, Any] = {
        "jobs_finished": len(finished),
        "scenes_seen_completed": len(completed),
        "matched": len(delays),
    }
    if delays:
        out.update(
            {
                "mean": round(sum(delays) / len(delays), 3),
                "p50": round(percentile(delays, 50), 3),
                "p95": round(percentile(delays, 95), 3),
                "max": round(delays[-1], 3),
                "min": round(delays[0], 3),
            }
        )
    return out


def reads_per_job(get_ids: Iterable[str], job_ids: Iterable[str]) -> dict[str, Any]:
    """GETs of each created job (`get_ids`: the prediction id of every GET, answered or
    throttled): mean, max, and how many jobs were read at most once."""
    jobs = set(job_ids)
    per_job = dict.fromkeys(jobs, 0)
    for i in get_ids:
        if i in per_job:
            per_job[i] += 1
    counts = list(per_job.values())
    if not counts:
        return {"jobs": 0, "gets": 0}
    return {
        "jobs": len(counts),
        "gets": sum(counts),
        "mean": round(sum(counts) / len(counts), 3),
        "max": max(counts),
        "jobs_read_at_most_once": sum(1 for c in counts if c <= 1),
    }
