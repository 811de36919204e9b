"""A model of the realistic scenario's polling, in a second instead of seven minutes: the
operator's own poll delays (controller/decide/job_durations.py) against jobs of spread
lengths, with the create and read limits as queues. No operator, no cluster: what it
leaves out (a pass's own time, the API server, 429s) the real benchmark measures.

``python -m benchmarks.poll_model [--sigma 0.1 ...] [--scenes 2000]``
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
from dataclasses import dataclass, field
from typing import Any

from benchmarks.limits import limited_ideal, percentile
from benchmarks.scenarios import SCENARIOS, SPREAD_SEED
from controller.decide import job_durations as jd

FINISH_SECONDS = 0.3  # a seen job's download, upload and status write


@dataclass
class Shape:
    scenes: int = 2000
    slots: int = 500
    creates_per_second: float = 10.0
    reads_per_second: float = 50.0
    latency: float = 60.0
    sigma: float = 0.1
    schedule: jd.PollSchedule = field(default_factory=lambda: jd.PollSchedule(5.0, 1.5, 30.0))


def run(shape: Shape, learn: bool, seed: int = SPREAD_SEED) -> dict[str, Any]:
    """One run: each job's reads and how late its end was seen; creates and reads are
    served in order at their rates, a slot frees once its job is seen ended."""
    rng = random.Random(seed)
    lengths = [shape.latency * math.exp(rng.gauss(0.0, shape.sigma)) for _ in range(shape.scenes)]
    recent: list[float] = []
    expected: jd.Estimate | None = None
    polls: list[tuple[float, int]] = []  # (due, job)
    created: list[float] = []
    reads = [0] * shape.scenes
    late = [0.0] * shape.scenes
    next_create = next_read = end = 0.0

    def create(at: float) -> None:
        nonlocal next_create
        start = max(at, next_create)
        next_create = start + 1 / shape.creates_per_second
        created.append(start)
        wait = jd.next_poll_delay(shape.schedule, 0, 0.0, expected if learn else None)
        heapq.heappush(polls, (start + wait, len(created) - 1))

    for _ in range(min(shape.slots, shape.scenes)):
        create(0.0)
    while polls:
        due, job = heapq.heappop(polls)
        now = max(due, next_read)
        next_read = now + 1 / shape.reads_per_second
        reads[job] += 1
        age = now - created[job]
        if age < lengths[job]:
            wait = jd.next_poll_delay(shape.schedule, reads[job], age, expected if learn else None)
            heapq.heappush(polls, (now + wait, job))
            continue
        late[job] = age - lengths[job] + FINISH_SECONDS
        end = max(end, now + FINISH_SECONDS)
        recent = [*recent[-(jd.WINDOW - 1) :], lengths[job]]
        expected = jd.estimate(recent)
        if len(created) < shape.scenes:
            create(now + FINISH_SECONDS)
    ideal = limited_ideal(
        shape.scenes,
        shape.slots,
        shape.latency,
        shape.creates_per_second,
        shape.reads_per_second,
        lengths,
    )["ideal"]
    return {
        "makespan / ideal": round(end / ideal, 2),
        "all": figures(reads, late),
        "after the first wave": figures(reads[shape.slots :], late[shape.slots :]),
    }


def figures(reads: list[int], late: list[float]) -> dict[str, float]:
    if not reads:
        return {}
    seen = sorted(late)
    return {
        "reads per job": round(sum(reads) / len(reads), 2),
        "p50": round(percentile(seen, 50), 2),
        "p95": round(percentile(seen, 95), 2),
    }


def cell(f: dict[str, float]) -> str:
    if not f:
        return "—"
    return f"{f['reads per job']:.2f}, {f['p50']:.1f} / {f['p95']:.1f} s"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.poll_model", description=__doc__)
    realistic = SCENARIOS["realistic"]
    p.add_argument(
        "--sigma", type=float, nargs="*", default=[0.0, 0.05, realistic.latency_sigma, 0.25]
    )
    p.add_argument("--scenes", type=int, default=realistic.total)
    args = p.parse_args(argv)
    print(
        "| log-sd | schedule | makespan / ideal | reads per job, p50 / p95 late (all) | after the first wave |"
    )
    print("|---|---|---|---|---|")
    for sigma in args.sigma:
        for learn in (False, True):
            r = run(Shape(scenes=args.scenes, sigma=sigma), learn)
            cells = [cell(r["all"]), cell(r["after the first wave"])]
            name = "learned" if learn else "fixed"
            print(f"| {sigma:g} | {name} | {r['makespan / ideal']:.2f} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
