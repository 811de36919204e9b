"""Before/after snapshots of every counter of a run, and their differences: the
operator's metrics, the API server's requests minus the harness's, CPU per process
(the fakes apart), S3 and provider calls."""

from __future__ import annotations

import collections
import contextlib
import os
import time
from typing import Any

from benchmarks.measure import (
    counter_diff,
    flat,
    machine_busy,
    metric_by,
    per,
    proc_cpu,
    rounded,
    self_cpu,
    sum_by_first,
    writes_of,
)
from controller.api import vocabulary as v


class Snapshot:
    """Everything counted, at one instant."""

    def __init__(self, bench: Any) -> None:
        self.t = time.monotonic()
        text = ""
        with contextlib.suppress(OSError):
            text = bench.op.metrics()
        self.api = metric_by(text, "scene_operator_api_requests_total", ("verb", "resource"))
        self.s3 = metric_by(text, "scene_operator_s3_operations_total", ("operation",))
        self.reconciles = metric_by(text, "scene_operator_reconciles_total", ("kind", "result"))
        self.reconcile_seconds = metric_by(
            text, "scene_operator_reconcile_duration_seconds_sum", ("kind",)
        )
        self.decisions = metric_by(text, "scene_operator_scene_decisions_total", ("rule",))
        self.events = metric_by(text, "scene_operator_events_total", ("reason",))
        self.jobs = metric_by(text, "scene_operator_provider_jobs_total", ("outcome",))
        self.queue = metric_by(text, "scene_operator_workqueue_depth").get((), 0.0)
        self.server = metric_by(
            bench.api.metrics(),
            "apiserver_request_total",
            ("verb", "resource", "subresource"),
            where={"group": v.GROUP},
        )
        self.harness_calls = dict(bench.api.calls)
        self.cpu = {name: proc_cpu(pid) for name, pid in bench.pids().items()}
        # The fakes run in this process: their threads' CPU is counted apart.
        fake = bench.replicate.cpu_seconds() + bench.replicate.webhooks.cpu_seconds
        self.cpu["replicate-fake"] = fake
        self.cpu["harness"] = self_cpu() - fake
        self.machine_busy = machine_busy()
        with bench.replicate.lock:
            self.replicate = dict(bench.replicate.counts)
            self.throttled = dict(bench.replicate.throttled)


def delta(after: Snapshot, before: Snapshot, n: int) -> dict[str, Any]:
    api = flat(counter_diff(after.api, before.api))
    by_verb = sum_by_first(counter_diff(after.api, before.api))
    server = counter_diff(after.server, before.server)
    harness = collections.Counter(after.harness_calls)
    harness.subtract(before.harness_calls)
    server_ours = {}
    for (verb, res, sub), val in server.items():
        name = res + (f"/{sub}" if sub else "")
        mine = harness.get((verb, res), 0) if not sub else 0
        if val - mine:
            server_ours[f"{verb} {name}"] = round(val - mine, 3)
    cpu = {
        k: rounded((after.cpu.get(k) or 0) - (before.cpu.get(k) or 0), 2)
        for k in after.cpu
        if after.cpu.get(k) is not None
    }
    seconds = after.t - before.t
    busy = None
    if after.machine_busy is not None and before.machine_busy is not None:
        busy = after.machine_busy - before.machine_busy
    ours = sum(val or 0 for val in cpu.values())
    return {
        "seconds": round(seconds, 1),
        "machine_cpu": {
            "busy_seconds": rounded(busy, 1),
            "utilisation_of_all_cores": rounded(
                busy / (seconds * (os.cpu_count() or 1)) if busy and seconds else None, 2
            ),
            "this_benchmark_seconds": round(ours, 1),
            # other sessions on a shared machine: this skews every figure
            "other_processes_seconds": rounded(busy - ours if busy is not None else None, 1),
        },
        "operator_api_requests": api,
        "operator_api_requests_by_verb": by_verb,
        "operator_api_requests_per_scene_by_verb": per(by_verb, n),
        "operator_api_writes_per_scene": round(writes_of(by_verb) / n, 3),
        "operator_api_requests_per_scene": per(api, n),
        "apiserver_requests_minus_harness": dict(sorted(server_ours.items())),
        "apiserver_requests_minus_harness_per_scene": per(server_ours, n),
        "harness_api_requests": {f"{a} {b}": c for (a, b), c in sorted(harness.items()) if c},
        "s3_operations": flat(counter_diff(after.s3, before.s3)),
        "s3_operations_per_scene": per(flat(counter_diff(after.s3, before.s3)), n),
        "reconciles": flat(counter_diff(after.reconciles, before.reconciles)),
        "reconciles_per_scene": per(
            sum_by_first(counter_diff(after.reconciles, before.reconciles)), n
        ),
        "reconcile_seconds_sum": flat(
            counter_diff(after.reconcile_seconds, before.reconcile_seconds)
        ),
        "decisions": flat(counter_diff(after.decisions, before.decisions)),
        "events": flat(counter_diff(after.events, before.events)),
        "provider_jobs": flat(counter_diff(after.jobs, before.jobs)),
        "replicate_server_requests": {
            k: after.replicate.get(k, 0) - before.replicate.get(k, 0)
            for k in sorted(after.replicate)
        },
        "replicate_server_429s": {
            k: after.throttled.get(k, 0) - before.throttled.get(k, 0)
            for k in sorted(after.throttled)
        },
        "cpu_seconds": cpu,
        "cpu_ms_per_scene": {k: round(1000 * (val or 0) / n, 2) for k, val in cpu.items()},
    }


def drift(after: Snapshot, before: Snapshot, projects: int, interval: float) -> dict[str, Any]:
    seconds = after.t - before.t
    d = delta(after, before, 1)
    s3 = sum_by_first(counter_diff(after.s3, before.s3))
    lists = s3.get("list", 0.0)
    intervals = seconds / interval
    return {
        "seconds": round(seconds, 1),
        "api_writes": writes_of(d["operator_api_requests_by_verb"]),
        "operator_api_requests": d["operator_api_requests"],
        "apiserver_requests_minus_harness": d["apiserver_requests_minus_harness"],
        "s3_operations": d["s3_operations"],
        "s3_lists_per_project_per_interval": round(lists / projects / intervals, 3),
        "s3_heads": s3.get("head", 0.0),
        "s3_puts": s3.get("put", 0.0),
        "reconciles": d["reconciles"],
        "decisions": d["decisions"],
        "replicate_server_requests": {k: c for k, c in d["replicate_server_requests"].items() if c},
        "cpu_seconds": d["cpu_seconds"],
        "operator_cpu_ms_per_project_per_interval": round(
            1000 * (d["cpu_seconds"].get("operator") or 0) / projects / intervals, 3
        ),
    }
