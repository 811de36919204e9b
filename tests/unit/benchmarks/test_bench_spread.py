"""Jobs of spread lengths in the benchmark: the fake provider draws them, the ideal uses
each job's own, and the completion figures single out the jobs after the first wave."""

from __future__ import annotations

import json
import statistics
import time
from datetime import datetime

import pytest

from benchmarks import limits
from benchmarks.provider import completion_figures
from benchmarks.runner import ideal_of
from benchmarks.scenarios import SCENARIOS, SPREAD_SEED, customised
from tests.support.replicate_server import ReplicateServer

BODY = json.dumps({"input": {"prompt": "p"}}).encode()


def create_jobs(server: ReplicateServer, n: int) -> list[str]:
    auth = {"Authorization": f"Bearer {server.token}"}
    ids = []
    for _ in range(n):
        reply = server.dispatch("POST", "/v1/models/a/b/predictions", auth, BODY)
        assert reply is not None and reply.status == 201
        ids.append(json.loads(reply.body)["id"])
    return ids


def lengths(sigma: float, seed: int, n: int = 300) -> list[float]:
    with ReplicateServer(latency_seconds=60.0, latency_sigma=sigma, seed=seed) as server:
        create_jobs(server, n)
        return [j["seconds"] for j in server.created]


def test_the_fake_spreads_job_lengths_around_the_latency_the_same_way_each_run() -> None:
    spread = lengths(0.1, SPREAD_SEED)
    assert statistics.median(spread) == pytest.approx(60.0, rel=0.03)
    assert min(spread) < 50.0 and max(spread) > 70.0
    assert lengths(0.1, SPREAD_SEED) == spread  # seeded: the same in creation order
    assert lengths(0.1, SPREAD_SEED + 1) != spread
    assert set(lengths(0.0, SPREAD_SEED, 5)) == {60.0}  # no spread: the latency itself


def test_a_spread_jobs_times_say_how_long_it_ran() -> None:
    with ReplicateServer(latency_seconds=0.05, latency_sigma=0.5, seed=3) as server:
        ids = create_jobs(server, 5)
        time.sleep(0.5)  # all done: the longest is far under (5 sigma)
        auth = {"Authorization": f"Bearer {server.token}"}
        for job_id, created in zip(ids, server.created, strict=True):
            reply = server.dispatch("GET", f"/v1/predictions/{job_id}", auth, b"")
            assert reply is not None
            p = json.loads(reply.body)
            ran = datetime.fromisoformat(p["completed_at"]) - datetime.fromisoformat(
                p["created_at"]
            )
            assert p["status"] == "succeeded"
            assert ran.total_seconds() == pytest.approx(created["seconds"], abs=1e-3)
        assert len(server.finished_at()) == 5


def test_the_ideal_takes_each_jobs_own_length_in_the_first_slot_to_free() -> None:
    # Two slots: 10 s in one; the three 1 s jobs follow each other in the other.
    assert limits.ideal_makespan(4, 2, 3.0, [10.0, 1.0, 1.0, 1.0]) == 10.0
    assert limits.ideal_makespan(4, 2, 3.0) == 6.0  # whole waves of the median
    assert limits.ideal_makespan(1000, 100, 2.0, [2.0] * 1000) == 20.0  # equal: the waves
    # Creates at 1/s: job 2 starts at 2 s in the slot job 1 freed at 1 + 1 + 0.5.
    assert limits.pipeline_bound(3, 2, 9.0, 1.0, 0.5, [4.0, 1.0, 1.0]) == pytest.approx(4.5)
    with pytest.raises(ValueError):
        limits.pipeline_bound(3, 2, 9.0, 1.0, 0.5, [4.0])


def test_a_spread_scenario_is_measured_against_its_jobs_own_lengths() -> None:
    s = SCENARIOS["realistic"]
    assert s.latency_sigma > 0  # its jobs are spread; the main scenarios' are not
    assert all(SCENARIOS[n].latency_sigma == 0 for n in ("small", "medium", "large"))
    equal = ideal_of(s, [60.0] * s.total)
    assert equal["ideal"] == 260.0 and equal["pipeline_bound"] == pytest.approx(309.9)
    late = ideal_of(s, [60.0] * (s.total - 1) + [120.0])  # the last job created is slow
    assert late["wave_bound"] == pytest.approx(300.0) and late["ideal"] == pytest.approx(320.0)
    assert "own lengths" in late["formula"]
    assert customised(s, latency_sigma=0.3).name == "realistic-sigma0.3"


def test_the_jobs_after_the_first_wave_have_their_own_figures() -> None:
    with ReplicateServer(latency_seconds=0.01) as server:
        ids = create_jobs(server, 4)
        time.sleep(0.1)
        auth = {"Authorization": f"Bearer {server.token}"}
        for job_id in ids + ids[:1]:  # the first job is read twice
            server.dispatch("GET", f"/v1/predictions/{job_id}", auth, b"")
        finished = server.finished_at()
        completed = {j: finished[j] + (5.0 if j == ids[0] else 1.0) for j in ids}
        got = completion_figures(server, completed, first_wave=2)
    assert got["gets_per_job"]["mean"] == pytest.approx(1.25)
    later = got["after_first_wave"]
    assert later["jobs"] == 2 and later["gets_per_job"]["mean"] == 1.0
    assert later["completion_to_completed_seconds"]["max"] == pytest.approx(1.0)
    assert got["completion_to_completed_seconds"]["max"] == pytest.approx(5.0)
