"""The pure parts of the benchmark harness: no cluster, no processes."""

from __future__ import annotations

import pytest

from benchmarks import kubeside, limits, measure, profile, table

# ----------------------------------------------------------------------- ideal makespan


@pytest.mark.parametrize(
    ("scenes", "concurrency", "latency", "ideal"),
    [
        pytest.param(100, 200, 2.0, 2.0, id="one-partial-wave"),
        pytest.param(200, 200, 2.0, 2.0, id="one-full-wave"),
        pytest.param(201, 200, 2.0, 4.0, id="one-more-scene-costs-a-wave"),
        pytest.param(1_000, 200, 2.0, 10.0, id="medium"),
        pytest.param(10_000, 200, 2.0, 100.0, id="large"),
        pytest.param(10_000, 200, 0.5, 25.0, id="fractional-latency"),
        pytest.param(0, 200, 2.0, 0.0, id="nothing-to-do"),
    ],
)
def test_ideal_makespan_is_whole_waves_of_jobs(
    scenes: int, concurrency: int, latency: float, ideal: float
) -> None:
    assert limits.ideal_makespan(scenes, concurrency, latency) == ideal


def test_ideal_makespan_rejects_no_concurrency() -> None:
    with pytest.raises(ValueError):
        limits.ideal_makespan(10, 0, 2.0)


# ----------------------------------------------------------------------- /proc parsing

# A real /proc/PID/stat line, with a command name holding spaces and a ')'.
STAT = (
    "4242 (python -m x) y) S 1 4242 4242 0 -1 4194560 52000 0 12 0 "
    "1234 567 0 0 20 0 40 0 9000 812345678 51234 18446744073709551615 "
    "1 1 0 0 0 0 0 16781312 17642 0 0 0 17 1 0 0 0 0 0"
)


def test_cpu_seconds_is_utime_plus_stime_counted_after_the_command_name() -> None:
    assert measure.cpu_seconds_from_stat(STAT, 100) == pytest.approx((1234 + 567) / 100)


def test_cpu_seconds_uses_the_clock_tick_rate() -> None:
    plain = STAT.replace("(python -m x) y)", "(python)")
    assert measure.cpu_seconds_from_stat(plain, 1000) == pytest.approx(1.801)


STATUS = """Name:\tpython
State:\tS (sleeping)
VmPeak:\t  912340 kB
VmSize:\t  901234 kB
VmHWM:\t  210000 kB
VmRSS:\t  190000 kB
RssAnon:\t  150000 kB
Threads:\t40
"""


def test_memory_from_status_reads_kilobytes_as_bytes() -> None:
    mem = measure.memory_from_status(STATUS)
    assert mem["VmHWM"] == 210000 * 1024
    assert mem["VmRSS"] == 190000 * 1024
    assert mem["RssAnon"] == 150000 * 1024
    assert "Threads" not in mem and "Name" not in mem


def test_memory_from_status_of_a_kernel_thread_is_empty() -> None:
    assert measure.memory_from_status("Name:\tkthreadd\nState:\tS (sleeping)\n") == {}


def test_machine_busy_excludes_idle_and_iowait() -> None:
    text = "cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 50 2 25 400 20 1 1 0 0 0\nintr 1 2 3\n"
    busy, total = measure.busy_seconds_from_proc_stat(text, 100)
    assert total == pytest.approx(10.0)
    assert busy == pytest.approx((100 + 5 + 50 + 3 + 2) / 100)


def test_machine_busy_needs_the_aggregate_line() -> None:
    with pytest.raises(ValueError):
        measure.busy_seconds_from_proc_stat("cpu0 1 2 3 4\n", 100)


# ----------------------------------------------------------------------- metrics

OPERATOR_METRICS = """# HELP scene_operator_api_requests_total Kubernetes API requests
# TYPE scene_operator_api_requests_total counter
scene_operator_api_requests_total{resource="scenes/status",verb="PATCH"} 300.0
scene_operator_api_requests_total{resource="projects/status",verb="PATCH"} 65.0
scene_operator_api_requests_total{resource="events",verb="POST"} 210.0
scene_operator_api_requests_total{resource="scenes",verb="POST"} 100.0
scene_operator_api_requests_total{resource="scenes",verb="GET"} 10.0
# HELP scene_operator_api_requests_created Kubernetes API requests
# TYPE scene_operator_api_requests_created gauge
scene_operator_api_requests_created{resource="scenes",verb="GET"} 1.7e+09
# TYPE scene_operator_reconcile_duration_seconds histogram
scene_operator_reconcile_duration_seconds_bucket{kind="scene",le="0.001"} 3.0
scene_operator_reconcile_duration_seconds_sum{kind="scene"} 2.5
scene_operator_reconcile_duration_seconds_sum{kind="project"} 0.5
scene_operator_workqueue_depth 7.0
"""


def test_metric_by_sums_samples_by_the_labels_asked_for() -> None:
    by_verb = measure.metric_by(OPERATOR_METRICS, "scene_operator_api_requests_total", ("verb",))
    assert by_verb == {("PATCH",): 365.0, ("POST",): 310.0, ("GET",): 10.0}


def test_metric_by_without_labels_is_the_total_and_ignores_created_samples() -> None:
    total = measure.metric_by(OPERATOR_METRICS, "scene_operator_api_requests_total")
    assert total == {(): 685.0}


def test_metric_by_filters_on_label_values() -> None:
    writes = measure.metric_by(
        OPERATOR_METRICS,
        "scene_operator_api_requests_total",
        ("resource",),
        where={"verb": ["POST", "PATCH"]},
    )
    assert writes == {
        ("scenes/status",): 300.0,
        ("projects/status",): 65.0,
        ("events",): 210.0,
        ("scenes",): 100.0,
    }


def test_metric_by_reads_histogram_sums_and_gauges() -> None:
    sums = measure.metric_by(
        OPERATOR_METRICS, "scene_operator_reconcile_duration_seconds_sum", ("kind",)
    )
    assert sums == {("scene",): 2.5, ("project",): 0.5}
    assert measure.metric_by(OPERATOR_METRICS, "scene_operator_workqueue_depth") == {(): 7.0}


def test_metric_by_a_missing_metric_is_empty() -> None:
    assert measure.metric_by(OPERATOR_METRICS, "nope_total", ("verb",)) == {}


APISERVER_METRICS = """# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",contentType="application/json",dry_run="",group="video.scene-operator.io",resource="projects",scope="resource",subresource="",verb="POST",version="v1alpha1"} 100
apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="video.scene-operator.io",resource="scenes",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 3000
apiserver_request_total{code="409",component="apiserver",contentType="application/json",dry_run="",group="video.scene-operator.io",resource="scenes",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 4
apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="",resource="pods",scope="cluster",subresource="",verb="LIST",version="v1"} 9
"""


def test_metric_by_groups_api_server_requests_of_one_group_across_codes() -> None:
    got = measure.metric_by(
        APISERVER_METRICS,
        "apiserver_request_total",
        ("verb", "resource", "subresource"),
        where={"group": "video.scene-operator.io"},
    )
    assert got == {("POST", "projects", ""): 100.0, ("PATCH", "scenes", "status"): 3004.0}


def test_counter_diff_keeps_only_what_moved() -> None:
    before = {("GET",): 10.0, ("PATCH",): 5.0}
    after = {("GET",): 10.0, ("PATCH",): 8.0, ("POST",): 2.0}
    assert measure.counter_diff(after, before) == {("PATCH",): 3.0, ("POST",): 2.0}


def test_flat_per_and_writes() -> None:
    counts = measure.flat({("PATCH", "scenes/status"): 300.0, ("GET", "scenes"): 10.0})
    assert counts == {"GET scenes": 10.0, "PATCH scenes/status": 300.0}
    assert measure.per(counts, 100) == {"GET scenes": 0.1, "PATCH scenes/status": 3.0}
    assert measure.per(counts, 0) == {}
    by_verb = {"GET": 10.0, "PATCH": 300.0, "POST": 210.0, "LIST": 3.0, "DELETE": 1.0}
    assert measure.writes_of(by_verb) == 511.0
    assert measure.writes_of({"PATCH scenes/status": 3.0, "LIST scenes": 1.0}) == 3.0


# ----------------------------------------------------------------------- jobs and readiness


def test_duplicate_jobs_counts_jobs_beyond_the_first_per_scene() -> None:
    scenes = ["a", "b", "c", "d"]
    jobs = ["a", "b", "b", "c", "c", "c", "zzz"]
    assert measure.duplicate_jobs(jobs, scenes) == {
        "jobs": 7,
        "scenes": 4,
        "scenes_with_job": 3,
        "scenes_without_job": 1,
        "duplicates": 3,
        "unmatched": 1,
    }


def test_one_job_per_scene_has_no_duplicates() -> None:
    got = measure.duplicate_jobs(["a", "b"], ["b", "a"])
    assert got["duplicates"] == 0 and got["scenes_without_job"] == 0 and got["jobs"] == 2


def test_readiness_reads_the_printer_columns_of_a_table() -> None:
    table = {
        "kind": "Table",
        "columnDefinitions": [
            {"name": "Name"},
            {"name": "Phase"},
            {"name": "Scenes"},
            {"name": "Completed"},
            {"name": "Failed"},
            {"name": "Ready"},
            {"name": "Age"},
        ],
        "rows": [
            {"cells": ["p-0", "Ready", 10, 10, 0, "True", "1m"]},
            {"cells": ["p-1", "Generating", 10, 4, 0, "False", "1m"]},
            {"cells": ["p-2", None, None, None, None, None, "1s"]},
        ],
    }
    assert kubeside.readiness(table) == (3, 1, 14)


def test_readiness_of_an_empty_table() -> None:
    assert kubeside.readiness({"columnDefinitions": [], "rows": []}) == (0, 0, 0)


def test_project_body_is_a_valid_project_spec() -> None:
    from controller.api.project import ProjectSpec

    body = kubeside.project_body("bench-1", "p-00007", 7, 10, 20, "b-p-00007")
    spec = ProjectSpec.model_validate(body["spec"])
    assert spec.scene_count() == 10 and spec.duration_seconds() == 4
    assert spec.repair.interval_seconds == 20 and spec.generate_videos
    assert spec.storage.bucket == "b-p-00007"
    assert body["metadata"] == {"name": "p-00007", "namespace": "bench-1"}
    # the style lands in every planned scene prompt: jobs can be told apart per project
    assert kubeside.project_body("n", "p", 8, 10, 20, "b")["spec"]["style"] != spec.style


def test_a_bucket_per_project_per_namespace_or_shared() -> None:
    from benchmarks.scenarios import BUCKET, bucket_of

    assert bucket_of("project", "p-00001", "bench-0") != bucket_of("project", "p-00002", "bench-0")
    assert bucket_of("namespace", "p-00001", "bench-0") == bucket_of("namespace", "p-2", "bench-0")
    assert bucket_of("namespace", "p-1", "bench-0") != bucket_of("namespace", "p-1", "bench-1")
    assert bucket_of("shared", "p-00001", "bench-3") == BUCKET
    with pytest.raises(ValueError):
        bucket_of("tenant", "p", "n")


# ----------------------------------------------------------------------- profiles

COLLAPSED = """process 1:"python -m controller run";Thread 1 (active+gil): "MainThread";run (asyncio/runners.py:190);_worker (controller/app.py:150);request (controller/kube/client.py:120) 6
process 1:"python -m controller run";Thread 1 (active+gil): "MainThread";run (asyncio/runners.py:190);_worker (controller/app.py:150);request (controller/kube/client.py:121) 2
process 1:"python -m controller run";Thread 1 (active+gil): "MainThread";run (asyncio/runners.py:190);_worker (controller/app.py:151);decide (controller/decide/scene/__init__.py:600) 2

not a sample line
"""


def test_summarize_collapsed_ranks_self_and_inclusive_time_by_function() -> None:
    got = profile.summarize_collapsed(COLLAPSED.splitlines())
    assert got["samples"] == 10
    assert got["self_pct"][0] == ("request (controller/kube/client.py)", 80.0)
    assert ("decide (controller/decide/scene/__init__.py)", 20.0) in got["self_pct"]
    inclusive = dict(got["inclusive_pct"])
    assert inclusive["_worker (controller/app.py)"] == 100.0
    assert inclusive["run (asyncio/runners.py)"] == 100.0
    assert not any(name.startswith(("process ", "Thread ")) for name in inclusive)


def test_summarize_collapsed_shortens_library_paths() -> None:
    line = "f (/tmp/venv/lib/python3.11/site-packages/httpcore/_async/pool.py:10) 3"
    assert profile.summarize_collapsed([line])["self_pct"] == [
        ("f (httpcore/_async/pool.py)", 100.0)
    ]


def test_summarize_collapsed_of_nothing() -> None:
    assert profile.summarize_collapsed([]) == {"samples": 0, "self_pct": [], "inclusive_pct": []}


def test_markdown_table_has_one_column_per_result_and_marks_a_timeout() -> None:
    done = {
        "scenario": "small",
        "projects": 10,
        "scenes_per_project": 10,
        "scenes": 100,
        "completed": True,
        "completed_scenes": 100,
        "makespan_seconds": 10.1,
        "ideal_seconds": 2.0,
        "ratio": 5.05,
        "run": {"operator_api_writes_per_scene": 6.81, "cpu_seconds": {"a": 1.5, "b": 2.5}},
        "operator": {"cpu_ms_per_scene": 67.7, "peak_rss_mb": 157.5},
        "drift_window": {"api_writes": 0, "s3_lists_per_project_per_interval": 1.0, "s3_heads": 0},
        "provider": {"jobs": 100, "scenes": 100, "duplicates": 0},
    }
    partial = {**done, "scenario": "large", "completed": False, "completed_scenes": 7164}
    del partial["drift_window"]
    lines = table.markdown_table([done, partial]).splitlines()
    assert lines[0] == "| figure | small | large |"
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines[2:]}
    assert rows["completed"].endswith("| 100 / 100 Scenes | 7,164 / 100 Scenes (timed out) |")
    assert "| 5.05 |" in rows["ratio measured / ideal"]
    assert rows["all CPU of the run (2 cores)"].endswith("| 4.00 s | 4.00 s |")
    assert rows["drift interval: API writes"].endswith("| 0 | — |")
    assert "| 100 / 100 / 0 |" in rows["provider jobs / Scenes / duplicates"]


def test_a_run_with_other_buckets_says_so_in_its_name() -> None:
    from benchmarks.scenarios import SCENARIOS, customised

    assert customised(SCENARIOS["medium"], buckets=None).name == "medium"
    assert customised(SCENARIOS["medium"], buckets="project").name == "medium"
    shared = customised(SCENARIOS["medium"], buckets="shared")
    assert shared.buckets == "shared" and shared.name == "medium-shared-bucket"
