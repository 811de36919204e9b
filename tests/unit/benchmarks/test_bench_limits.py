"""The benchmark's pure parts for the rate-limited scenario: ideal makespans under a
provider's limits, delay statistics, GETs per job, the fake provider's token bucket, the
scenarios' settings and the README tables. No cluster, no operator process."""

from __future__ import annotations

import json

import pytest

from benchmarks import limits, table
from benchmarks.runner import ideal_of
from benchmarks.scenarios import SCENARIOS, customised, operator_env
from tests.support.replicate_server import ReplicateServer
from tests.support.token_bucket import TokenBucket, retry_after_header

# ----------------------------------------------------------------------- ideal under limits


def test_realistic_ideal_is_the_wave_bound_plus_one_mean_poll_gap_per_wave() -> None:
    # 2,000 jobs of 60 s, 500 at a time: 4 waves = 240 s (creates alone: 2,000 / 10 = 200 s).
    # 500 jobs share 50 reads/s: each is looked at every 10 s, so 5 s on average per wave.
    got = limits.limited_ideal(2000, 500, 60.0, 10.0, 50.0)
    assert got == {"create_bound": 200.0, "wave_bound": 240.0, "poll_delay": 20.0, "ideal": 260.0}


def test_pushed_completions_have_no_polling_delay() -> None:
    assert limits.limited_ideal(2000, 500, 60.0, 10.0, None)["ideal"] == 240.0


def test_the_create_limit_bounds_when_concurrency_is_ample() -> None:
    got = limits.limited_ideal(2000, 2000, 60.0, 10.0, 50.0)
    # one wave of 60 s, but 200 s of creates; 2,000 jobs share the reads: 20 s mean gap
    assert got["create_bound"] == 200.0 and got["wave_bound"] == 60.0
    assert got["ideal"] == 220.0


def test_limited_ideal_of_nothing_and_bad_rates() -> None:
    assert limits.limited_ideal(0, 500, 60.0, 10.0, 50.0)["ideal"] == 0.0
    with pytest.raises(ValueError):
        limits.limited_ideal(10, 5, 60.0, 0.0, 50.0)
    with pytest.raises(ValueError):
        limits.limited_ideal(10, 5, 60.0, 10.0, 0.0)


def test_pipeline_bound_carries_the_first_waves_create_spacing_into_every_wave() -> None:
    # Job k < 500 is created at k/10 s and seen done 65 s later; job 500 + k waits for
    # job k's slot, so each wave ends 65 s after the previous one's matching job.
    assert limits.pipeline_bound(2000, 500, 60.0, 10.0, 5.0) == pytest.approx(309.9)
    assert limits.pipeline_bound(2000, 500, 60.0, 10.0, 0.0) == pytest.approx(289.9)


def test_pipeline_bound_without_a_create_limit_is_whole_waves() -> None:
    assert limits.pipeline_bound(201, 100, 2.0, 1e12, 0.0) == pytest.approx(6.0)
    assert limits.pipeline_bound(0, 100, 2.0, 10.0, 0.0) == 0.0


def test_each_scenario_is_measured_against_its_own_ideal() -> None:
    realistic = ideal_of(SCENARIOS["realistic"])
    assert realistic["ideal"] == 260.0 and realistic["pipeline_bound"] == pytest.approx(309.9)
    pushed = ideal_of(customised(SCENARIOS["realistic"], webhooks=True))
    assert pushed["ideal"] == 240.0 and pushed["poll_delay"] == 0.0
    assert ideal_of(SCENARIOS["large"])["ideal"] == 200.0  # 10,000 / 100 waves of 2 s


# ----------------------------------------------------------------------- delays and reads


def test_percentile_is_nearest_rank() -> None:
    values = [float(x) for x in range(1, 21)]
    assert limits.percentile(values, 50) == 10.0
    assert limits.percentile(values, 95) == 19.0
    assert limits.percentile(values, 100) == 20.0
    assert limits.percentile([3.0], 95) == 3.0


def test_delay_stats_pair_jobs_finished_with_scenes_seen_completed() -> None:
    finished = {"a": 10.0, "b": 20.0, "c": 30.0}  # c: its Scene not seen Completed
    completed = {"a": 10.5, "b": 21.0, "zzz": 99.0}  # zzz: no such finished job
    got = limits.delay_stats(finished, completed)
    assert got == {
        "jobs_finished": 3,
        "scenes_seen_completed": 3,
        "matched": 2,
        "mean": 0.75,
        "p50": 0.5,
        "p95": 1.0,
        "max": 1.0,
        "min": 0.5,
    }


def test_delay_stats_of_nothing_matched_has_no_figures() -> None:
    got = limits.delay_stats({"a": 1.0}, {})
    assert got["matched"] == 0 and "mean" not in got


def test_reads_per_job_counts_gets_of_created_jobs_only() -> None:
    got = limits.reads_per_job(["a", "a", "b", "zzz"], ["a", "b", "c"])
    assert got == {"jobs": 3, "gets": 3, "mean": 1.0, "max": 2, "jobs_read_at_most_once": 2}
    assert limits.reads_per_job([], []) == {"jobs": 0, "gets": 0}


# ----------------------------------------------------------------------- the token bucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_grants_a_burst_then_says_how_long_to_wait() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=1.0, burst=2.0, clock=clock)
    assert bucket.take() == 0.0 and bucket.take() == 0.0
    assert bucket.take() == pytest.approx(1.0)  # refused: nothing taken
    clock.now += 0.5
    assert bucket.take() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.take() == 0.0
    clock.now += 60.0  # idle time saves up no more than the burst
    assert [bucket.take() for _ in range(3)][:2] == [0.0, 0.0] and bucket.tokens < 1.0


def test_token_bucket_per_minute_and_its_bounds() -> None:
    bucket = TokenBucket.per_minute(600, burst_seconds=1.0, clock=Clock())
    assert bucket.rate == pytest.approx(10.0) and bucket.burst == pytest.approx(10.0)
    assert TokenBucket.per_minute(6, clock=Clock()).burst == 1.0  # at least one request
    with pytest.raises(ValueError):
        TokenBucket(rate=0.0, burst=1.0)


def test_retry_after_is_whole_seconds_and_never_zero() -> None:
    assert retry_after_header(0.02) == "1"
    assert retry_after_header(1.2) == "2"


def test_the_fake_provider_answers_429_beyond_its_limits_and_only_when_asked() -> None:
    with ReplicateServer() as server:
        auth = {"Authorization": f"Bearer {server.token}"}
        body = json.dumps({"input": {"prompt": "p"}}).encode()

        def create() -> int:
            reply = server.dispatch("POST", "/v1/models/a/b/predictions", auth, body)
            assert reply is not None
            return reply.status

        assert [create() for _ in range(5)] == [201] * 5  # default: no limit
        server.limit(creates_per_minute=60, reads_per_minute=120)  # bursts of 1 and 2
        assert create() == 201
        reply = server.dispatch("POST", "/v1/models/a/b/predictions", auth, body)
        assert reply is not None and reply.status == 429
        assert reply.headers["Retry-After"] == "1"
        gets = [server.dispatch("GET", "/v1/predictions/x", auth, b"") for _ in range(3)]
        assert [r.status for r in gets if r] == [404, 404, 429]  # reads: their own bucket
        assert server.throttled == {"create": 1, "get": 1}


# ----------------------------------------------------------------------- scenarios and tables


def test_realistic_operator_settings_match_the_enforced_limits() -> None:
    s = customised(SCENARIOS["realistic"], projects=2, scenes=5, webhooks=True)
    assert s.name == "realistic-2x5-webhooks" and s.latency == 60.0 and s.total == 10
    env = operator_env(s, {}, {}, webhook_port=8123)
    assert env["SCENE_OPERATOR_CREATES_PER_SECOND_REPLICATE"] == "10"
    assert env["SCENE_OPERATOR_READS_PER_SECOND_REPLICATE"] == "50"
    assert env["SCENE_OPERATOR_CONCURRENCY_REPLICATE"] == "500"
    assert env["SCENE_OPERATOR_WEBHOOK_URL"] == "http://127.0.0.1:8123"
    assert "SCENE_OPERATOR_POLL_INITIAL_SECONDS" not in env  # the operator's defaults


def test_main_scenarios_run_at_concurrency_100_without_limits() -> None:
    env = operator_env(SCENARIOS["medium"], {}, {}, webhook_port=None)
    assert env["SCENE_OPERATOR_CONCURRENCY_REPLICATE"] == "100"
    assert env["SCENE_OPERATOR_POLL_INITIAL_SECONDS"] == "1"
    assert "SCENE_OPERATOR_WEBHOOK_URL" not in env


def realistic_result(name: str, mean: float, gets: float, throttled: dict[str, int]) -> dict:
    return {
        "scenario": name,
        "scenes": 2000,
        "concurrency": 500,
        "latency_seconds": 60.0,
        "completed": True,
        "completed_scenes": 2000,
        "makespan_seconds": 312.0,
        "ideal_seconds": 260.0,
        "ideal": {"poll_delay": 20.0, "pipeline_bound": 309.9},
        "ratio": 1.2,
        "ratio_to_pipeline_bound": 1.01,
        "completions": {
            "completion_to_completed_seconds": {"mean": mean, "p50": mean, "p95": 2 * mean},
            "gets_per_job": {"mean": gets, "max": 3},
            "http_429s": {"total": sum(throttled.values()), **throttled},
        },
        "provider": {"duplicates": 0},
    }


def test_readme_tables_have_labelled_columns_and_the_realistic_figures() -> None:
    before = {
        "scenario": "small",
        "scenes": 100,
        "concurrency": 200,
        "completed": True,
        "completed_scenes": 100,
        "makespan_seconds": 6.1,
        "ideal_seconds": 2.0,
        "ratio": 3.05,
        "run": {"operator_api_writes_per_scene": 6.96, "cpu_seconds": {"a": 5.0, "b": 2.9}},
        "operator": {"cpu_ms_per_scene": 35.7, "peak_rss_mb": 157.9},
        "drift_window": {"api_writes": 0, "s3_lists_per_project_per_interval": 1.0},
        "provider": {"duplicates": 0},
    }
    polled = realistic_result("realistic", 6.25, 5.5, {"create": 3, "get": 40, "list": 1})
    pushed = realistic_result("realistic-webhooks", 0.4, 1.0, {})
    text = table.readme_tables(
        [("small before", before)], [("polling", polled), ("webhooks", pushed)]
    )
    first, second = text.split("\n\n")
    assert first.splitlines()[0] == "| figure | small before |"
    rows = {line.split(" | ")[0].lstrip("| "): line for line in first.splitlines()[2:]}
    assert rows["all CPU of the run per Scene (all processes)"].endswith("| 79.0 ms |")
    assert rows["makespan / ideal"].endswith("| 6.10 s / 2.00 s = 3.05 |")
    assert second.splitlines()[0] == "| figure | polling | webhooks |"
    rows = {line.split(" | ")[0].lstrip("| "): line for line in second.splitlines()[2:]}
    assert rows["429s received (creates / reads)"].endswith("| 3 / 41 | 0 / 0 |")
    assert rows["completion → Completed, mean / p50 / p95"].endswith(
        "| 6.25 / 6.25 / 12.5 s | 0.40 / 0.40 / 0.80 s |"
    )
    assert rows["makespan / that bound"].endswith("| 1.01 | 1.01 |")
    assert rows["GETs per job, mean / max"].endswith("| 5.50 / 3 | 1.00 / 3 |")
    assert table.readme_tables([], []) == ""
