"""Throughput benchmark: N Projects x M Scenes through the real operator process.

Everything runs on this machine: a local control plane (etcd + kube-apiserver +
kube-controller-manager), a moto S3 server, a local Replicate-protocol server whose jobs
take ``--latency`` seconds, and the operator as a separate process (``python -m
controller run``, all namespaces), exactly as a user runs it. The harness creates the
Projects as fast as the API server takes them, then polls one LIST of Projects per second
until every one is Ready, and reports:

- makespan (first create to all Ready) against the ideal ``ceil(scenes / concurrency) *
  latency``;
- the operator's own Kubernetes API requests per Scene by verb (its client counts them in
  ``scene_operator_api_requests_total``; kopf's watch and list calls are not in there, so
  the API server's ``apiserver_request_total`` is read too, minus the harness's own calls);
- one steady-state drift interval on the healthy fleet: API writes (target 0) and S3 calls
  (target: one LIST per Project per interval, no HEAD);
- operator CPU seconds (/proc/PID/stat) and peak RSS (VmHWM), CPU ms per Scene, and the CPU
  of the API server, etcd and the harness (which hosts the S3 and Replicate fakes);
- provider jobs created against Scenes, and duplicates per Scene.

``python -m benchmarks.bench --scenario small|medium|large|all [--projects N --scenes M]
[--latency 2.0] [--concurrency 200] [--out benchmarks/results/NAME.json]``
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import json
import logging
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from controller import vocabulary as v

SCENARIOS: dict[str, tuple[int, int]] = {
    "small": (10, 10),
    "medium": (100, 10),
    "large": (1000, 10),
}
TIME_BOX: dict[str, float] = {"small": 300.0, "medium": 900.0, "large": 1800.0}
BUCKET = "scene-operator-bench"
S3_PREFIX = "bench"
PROVIDER_RATE = 500.0  # creates/s and reads/s: far above what the local server needs
PROJECT_CONCURRENCY = 10
WORKERS = 32
SCENE_DURATION = 4
PROMPT = (
    "A lighthouse keeper finds a message in a bottle. A storm gathers over the sea. "
    "The keeper climbs the tower to light the lamp. At dawn a ship comes home."
)
STYLE = "benchmark film {n}"  # in every scene prompt: jobs can be matched to scenes
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE")
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "REPLICATE_API_TOKEN")

# ======================================================================= pure helpers


def ideal_makespan(scenes: int, concurrency: int, latency: float) -> float:
    """The best any operator could do: full waves of `concurrency` jobs of `latency` s."""
    if scenes <= 0:
        return 0.0
    if concurrency <= 0:
        raise ValueError("concurrency must be positive")
    return math.ceil(scenes / concurrency) * latency


def cpu_seconds_from_stat(text: str, clock_ticks: int) -> float:
    """utime + stime of a /proc/PID/stat line, in seconds.

    The command name (field 2) is in parentheses and may itself contain spaces or ')',
    so fields are counted from the last ')': state is the first after it, utime the 12th
    and stime the 13th (fields 14 and 15 of proc(5))."""
    rest = text[text.rindex(")") + 1 :].split()
    return (int(rest[11]) + int(rest[12])) / clock_ticks


def memory_from_status(text: str) -> dict[str, int]:
    """The Vm* and Rss* lines of /proc/PID/status, in bytes (the file says kB)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.startswith(("Vm", "Rss")):
            parts = value.split()
            if parts and parts[0].isdigit():
                factor = 1024 if len(parts) > 1 and parts[1].lower() == "kb" else 1
                out[name] = int(parts[0]) * factor
    return out


def busy_seconds_from_proc_stat(text: str, clock_ticks: int) -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, summed over cores, from the
    aggregate "cpu" line of /proc/stat (idle and iowait are not busy)."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            ticks = [int(x) for x in line.split()[1:]]
            # guest time is already included in user and nice
            total = sum(ticks[:8])
            idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
            return (total - idle) / clock_ticks, total / clock_ticks
    raise ValueError("no aggregate cpu line in /proc/stat")


def metric_by(
    text: str,
    name: str,
    labels: Sequence[str] = (),
    where: Mapping[str, str | Iterable[str]] | None = None,
) -> dict[tuple[str, ...], float]:
    """Samples called `name` in a Prometheus text exposition, summed by `labels`.

    `where` keeps only samples whose label equals a value (or is in a set of values).
    Only the lines of `name` are parsed, so a multi-megabyte API server exposition is cheap.
    """
    from prometheus_client.parser import text_string_to_metric_families

    lines = [
        ln
        for ln in text.splitlines()
        if ln.startswith(name) and ln[len(name) : len(name) + 1] in ("{", " ")
    ]
    wanted = {k: ({w} if isinstance(w, str) else set(w)) for k, w in (where or {}).items()}
    out: dict[tuple[str, ...], float] = collections.defaultdict(float)
    for family in text_string_to_metric_families("\n".join(lines) + "\n"):
        for sample in family.samples:
            if sample.name != name:
                continue
            if any(sample.labels.get(k, "") not in vals for k, vals in wanted.items()):
                continue
            out[tuple(sample.labels.get(k, "") for k in labels)] += sample.value
    return dict(out)


def counter_diff(
    after: Mapping[tuple[str, ...], float], before: Mapping[tuple[str, ...], float]
) -> dict[tuple[str, ...], float]:
    """after - before per key, dropping keys that did not move."""
    out = {}
    for key in set(after) | set(before):
        d = after.get(key, 0.0) - before.get(key, 0.0)
        if d:
            out[key] = d
    return out


def flat(counts: Mapping[tuple[str, ...], float]) -> dict[str, float]:
    """JSON-friendly: keys joined with ' ', values rounded, sorted by key."""
    return {" ".join(k) or "total": round(val, 3) for k, val in sorted(counts.items())}


def per(counts: Mapping[str, float], n: int, digits: int = 3) -> dict[str, float]:
    return {k: round(val / n, digits) for k, val in counts.items()} if n else {}


def writes_of(by_verb: Mapping[str, float]) -> float:
    return sum(val for k, val in by_verb.items() if k.split(" ")[0] in WRITE_VERBS)


def duplicate_jobs(job_prompts: Iterable[str], scene_prompts: Iterable[str]) -> dict[str, int]:
    """Jobs per Scene matched by prompt (the benchmark makes every scene prompt unique).

    Returns jobs, scenes, scenes_with_job, scenes_without_job, duplicates (jobs beyond the
    first for a scene) and unmatched (jobs whose prompt is no scene's)."""
    per_prompt = collections.Counter(job_prompts)
    scenes = set(scene_prompts)
    matched = {p: c for p, c in per_prompt.items() if p in scenes}
    return {
        "jobs": sum(per_prompt.values()),
        "scenes": len(scenes),
        "scenes_with_job": len(matched),
        "scenes_without_job": len(scenes) - len(matched),
        "duplicates": sum(c - 1 for c in matched.values()),
        "unmatched": sum(c for p, c in per_prompt.items() if p not in scenes),
    }


def summarize_collapsed(lines: Iterable[str], top: int = 15) -> dict[str, Any]:
    """Top functions of py-spy's raw (collapsed) output: `frame;frame;... count` lines,
    each frame `function (file:line)`. Self = leaf frame; inclusive = anywhere in the
    stack (counted once per stack). Line numbers are dropped so a function is one row."""
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame_name(f) for f in stack.split(";")]
        frames = [f for f in frames if f and not f.lower().startswith(("process ", "thread "))]
        if not frames:
            continue
        self_t[frames[-1]] += n
        for f in set(frames):
            incl[f] += n

    def pct(c: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100.0 * k / total, 1)) for f, k in c.most_common(top)] if total else []

    return {"samples": total, "self_pct": pct(self_t), "inclusive_pct": pct(incl)}


def _frame_name(frame: str) -> str:
    frame = frame.strip()
    if frame.endswith(")") and " (" in frame:
        func, _, where = frame[:-1].rpartition(" (")
        file = where.rsplit(":", 1)[0]
        for marker in ("site-packages/", "lib/python3"):
            if marker in file:
                file = file.split(marker, 1)[1]
        return f"{func} ({file})"
    return frame


# ======================================================================= /proc readers


def proc_cpu(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return cpu_seconds_from_stat(text, os.sysconf("SC_CLK_TCK"))


def proc_memory(pid: int | None) -> dict[str, int]:
    if not pid:
        return {}
    try:
        return memory_from_status(Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return {}


def machine_busy() -> float | None:
    try:
        text = Path("/proc/stat").read_text()
    except OSError:
        return None
    return busy_seconds_from_proc_stat(text, os.sysconf("SC_CLK_TCK"))[0]


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def machine() -> dict[str, Any]:
    mem = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "mem_total_gb": round(mem / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# ======================================================================= the cluster side


class Api:
    """The harness's own API calls (httpx, one pooled client), counted by verb/resource so
    they can be subtracted from the API server's totals."""

    def __init__(self, server: str, token: str) -> None:
        import httpx

        self.http = httpx.Client(
            base_url=server,
            verify=False,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(60.0),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )
        self.calls: collections.Counter[tuple[str, str]] = collections.Counter()
        self._lock = threading.Lock()

    def _count(self, verb: str, resource: str) -> None:
        with self._lock:
            self.calls[(verb, resource)] += 1

    def create(self, path: str, body: dict[str, Any], resource: str) -> None:
        self._count("POST", resource)
        r = self.http.post(path, json=body)
        if r.status_code >= 300 and r.status_code != 409:
            raise RuntimeError(f"POST {path}: {r.status_code} {r.text[:300]}")

    def list(self, path: str, resource: str, **params: str) -> dict[str, Any]:
        self._count("LIST", resource)
        r = self.http.get(path, params=params)
        r.raise_for_status()
        return r.json()

    def table(self, path: str, resource: str) -> dict[str, Any]:
        """A LIST as a server-side table (printer columns only), from the watch cache."""
        self._count("LIST", resource)
        r = self.http.get(
            path,
            params={"resourceVersion": "0", "includeObject": "None"},
            headers={"Accept": TABLE},
        )
        r.raise_for_status()
        return r.json()

    def metrics(self) -> str:
        r = self.http.get("/metrics")
        r.raise_for_status()
        return r.text

    def close(self) -> None:
        self.http.close()


def project_body(
    namespace: str, name: str, n: int, scenes: int, drift_interval: int
) -> dict[str, Any]:
    return {
        "apiVersion": v.API_VERSION,
        "kind": v.PROJECT_KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "prompt": PROMPT,
            "style": STYLE.format(n=n),
            "scenes": {"count": scenes, "durationSeconds": SCENE_DURATION},
            "planner": {"provider": "local"},
            "video": {"provider": "replicate"},
            "generateVideos": True,
            "repair": {"intervalSeconds": drift_interval},
            "assembly": {"enabled": False},  # measures the clip pipeline, not PyAV
        },
    }


def readiness(table: dict[str, Any]) -> tuple[int, int, int]:
    """(projects, Ready ones, completed scenes) from a server-side table of Projects."""
    cols = [c.get("name", "") for c in table.get("columnDefinitions") or []]
    i_ready = cols.index("Ready") if "Ready" in cols else None
    i_done = cols.index("Completed") if "Completed" in cols else None
    rows = table.get("rows") or []
    ready = done = 0
    for row in rows:
        cells = row.get("cells") or []
        if i_ready is not None and i_ready < len(cells) and cells[i_ready] == "True":
            ready += 1
        if i_done is not None and i_done < len(cells) and isinstance(cells[i_done], int):
            done += cells[i_done]
    return len(rows), ready, done


def tiny_clip() -> bytes:
    """A real (tiny) H.264 MP4 of the scenes' length (the operator checks it), rendered
    once and served for every job."""
    from controller.providers.render import render_clip

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "clip.mp4"
        render_clip(
            path,
            prompt="benchmark",
            sequence=1,
            duration_seconds=SCENE_DURATION,
            aspect_ratio="16:9",
            fps=4,
            height=32,
        )
        return path.read_bytes()


# ======================================================================= one scenario


class Snapshot:
    """Everything counted, at one instant."""

    def __init__(self, bench: Bench) -> None:
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
        self.cpu["harness"] = self_cpu()
        self.machine_busy = machine_busy()
        with bench.replicate.lock:
            self.replicate = dict(bench.replicate.counts)


def _round(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


class Bench:
    def __init__(
        self,
        name: str,
        projects: int,
        scenes: int,
        *,
        latency: float,
        concurrency: int,
        drift_interval: int,
        namespaces: int,
        time_box: float,
        profile: Path | None,
        log_dir: Path,
        profile_mode: str = "gil",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.extra_env = dict(extra_env or {})
        self.name, self.projects, self.scenes_per = name, projects, scenes
        self.scenes = projects * scenes
        self.latency, self.concurrency = latency, concurrency
        self.drift_interval, self.time_box = drift_interval, time_box
        self.namespaces = [f"bench-{i}" for i in range(max(1, min(namespaces, projects)))]
        self.profile, self.log_dir, self.profile_mode = profile, log_dir, profile_mode
        self.cp: Any = None
        self.op: Any = None
        self.api: Any = None
        self.replicate: Any = None
        self.timeline: list[dict[str, Any]] = []

    def pids(self) -> dict[str, int | None]:
        def pid(proc: Any) -> int | None:
            return getattr(getattr(proc, "popen", None), "pid", None)

        return {
            "operator": self.op.proc.pid if self.op and self.op.proc else None,
            "kube-apiserver": pid(getattr(self.cp, "_apiserver", None)),
            "etcd": pid(getattr(self.cp, "_etcd", None)),
            "kube-controller-manager": pid(getattr(self.cp, "_kcm", None)),
        }

    def operator_env(self, s3_env: dict[str, str]) -> dict[str, str]:
        return {
            **s3_env,
            **self.replicate.env(),
            "SCENE_OPERATOR_BUCKET": BUCKET,
            "SCENE_OPERATOR_S3_PREFIX": S3_PREFIX,
            "SCENE_OPERATOR_CONCURRENCY_REPLICATE": str(self.concurrency),
            "SCENE_OPERATOR_PROJECT_CONCURRENCY": str(PROJECT_CONCURRENCY),
            "SCENE_OPERATOR_CREATES_PER_SECOND_REPLICATE": str(PROVIDER_RATE),
            "SCENE_OPERATOR_READS_PER_SECOND_REPLICATE": str(PROVIDER_RATE),
            "SCENE_OPERATOR_POLL_INITIAL_SECONDS": str(self.latency / 2),
            "SCENE_OPERATOR_WORKERS": str(WORKERS),
            "SCENE_OPERATOR_LOG_LEVEL": "WARNING",
            **self.extra_env,
        }

    # ------------------------------------------------------------------ run
    def run(self) -> dict[str, Any]:

        from controller.embedded.cluster import Kubectl, install_crds
        from controller.embedded.controlplane import REPO_ROOT, ControlPlane
        from controller.embedded.s3server import S3Server
        from tests.support.operator_process import OperatorProcess
        from tests.support.replicate_server import ReplicateServer

        result: dict[str, Any] = {
            "scenario": self.name,
            "projects": self.projects,
            "scenes_per_project": self.scenes_per,
            "scenes": self.scenes,
            "namespaces": len(self.namespaces),
            "latency_seconds": self.latency,
            "concurrency": self.concurrency,
            "drift_interval_seconds": self.drift_interval,
            "time_box_seconds": self.time_box,
            "machine": machine(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        log(f"[{self.name}] {self.projects} projects x {self.scenes_per} scenes = {self.scenes}")
        clip = tiny_clip()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
        with contextlib.ExitStack() as stack:
            began = time.monotonic()
            self.cp = stack.enter_context(ControlPlane())
            s3 = stack.enter_context(S3Server())
            s3.client().create_bucket(Bucket=BUCKET)
            self.replicate = stack.enter_context(
                ReplicateServer(latency_seconds=self.latency, video_bytes=clip)
            )
            kubectl = Kubectl(self.cp.kubeconfig, cache_dir=self.log_dir / "kubectl-cache")
            install_crds(
                self.cp.kubeconfig, sorted((REPO_ROOT / "crds").glob("*.yaml")), kubectl=kubectl
            )
            self.api = Api(self.cp.server, self.cp.token)
            stack.callback(self.api.close)
            for ns in self.namespaces:
                self.api.create("/api/v1/namespaces", {"metadata": {"name": ns}}, "namespaces")
            op_env = self.operator_env(s3.env())
            result["operator_env"] = {k: val for k, val in op_env.items() if k not in SECRET_ENV}
            result["provider_limits_note"] = (
                f"creates and reads limited to {PROVIDER_RATE:g}/s for the local server; real "
                "Replicate allows about 600 creates/min (10/s) and 3,000 reads/min (50/s), "
                "which would bound makespan instead (10,000 creates alone take 1,000 s)."
            )
            self.op = OperatorProcess(
                self.cp.kubeconfig,
                env=op_env,
                namespaces=[],
                log_path=self.log_dir / f"operator-{self.name}.log",
            )
            self.op.start()
            stack.callback(self.op.stop)
            self.op.wait_healthy(60)
            time.sleep(3)  # let kopf open its watches
            result["setup_seconds"] = round(time.monotonic() - began, 1)
            result["operator_log"] = str(self.op.log_path)
            self._measure(result)
        return result

    def _measure(self, result: dict[str, Any]) -> None:
        base = Snapshot(self)
        base_mem = proc_memory(self.op.proc.pid)
        result["operator_rss_idle_mb"] = round(base_mem.get("VmRSS", 0) / 2**20, 1)
        profiler = self._start_profiler()

        # -- create every Project as fast as the API server takes them
        t0 = time.monotonic()
        bodies = [
            project_body(
                self.namespaces[i % len(self.namespaces)],
                f"p-{i:05d}",
                i,
                self.scenes_per,
                self.drift_interval,
            )
            for i in range(self.projects)
        ]
        plural = v.PROJECT_PLURAL

        def create(body: dict[str, Any]) -> None:
            ns = body["metadata"]["namespace"]
            self.api.create(f"/apis/{v.GROUP}/{v.VERSION}/namespaces/{ns}/{plural}", body, plural)

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(create, bodies))
        del bodies
        created_at = time.monotonic() - t0
        log(f"[{self.name}] {self.projects} projects created in {created_at:.1f} s")

        # -- wait for all Ready: one LIST of Projects per second
        deadline = t0 + self.time_box
        first_ready = all_started = None
        ready = done = 0
        last_metrics = 0.0
        queue_peak = 0.0
        while True:
            tick = time.monotonic()
            _, ready, done = readiness(
                self.api.table(f"/apis/{v.GROUP}/{v.VERSION}/{plural}", plural)
            )
            now = time.monotonic() - t0
            if ready and first_ready is None:
                first_ready = now
            with self.replicate.lock:
                jobs = len(self.replicate.created)
            if jobs >= self.scenes and all_started is None:
                all_started = now
            sample: dict[str, Any] = {
                "t": round(now, 1),
                "ready": ready,
                "scenes_completed": done,
                "jobs_created": jobs,
            }
            if tick - last_metrics >= 5.0 or ready >= self.projects:
                last_metrics = tick
                with contextlib.suppress(OSError):
                    text = self.op.metrics()
                    q = metric_by(text, "scene_operator_workqueue_depth").get((), 0.0)
                    queue_peak = max(queue_peak, q)
                    sample["queue"] = q
                sample["operator_cpu"] = _round(proc_cpu(self.op.proc.pid), 2)
                log(
                    f"[{self.name}] t={now:6.1f}s ready {ready}/{self.projects} scenes {done}/{self.scenes} jobs {jobs}"
                )
            self.timeline.append(sample)
            if ready >= self.projects or time.monotonic() > deadline or not self.op.alive():
                break
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        makespan = time.monotonic() - t0
        complete = ready >= self.projects
        self._stop_profiler(profiler, result)
        done_snap = Snapshot(self)
        mem = proc_memory(self.op.proc.pid)

        ideal = ideal_makespan(self.scenes, self.concurrency, self.latency)
        result.update(
            {
                "completed": complete,
                "timed_out": not complete and self.op.alive(),
                "operator_alive": self.op.alive(),
                "ready_projects": ready,
                "completed_scenes": done,
                "create_seconds": round(created_at, 2),
                "first_project_ready_seconds": _round(first_ready, 1),
                "all_jobs_created_seconds": _round(all_started, 1),
                "makespan_seconds": round(makespan, 1),
                "ideal_seconds": ideal,
                "ratio": round(makespan / ideal, 2) if ideal else None,
                "queue_depth_peak": queue_peak,
            }
        )
        n = max(done, 1) if not complete else self.scenes
        result["per_scene_basis"] = (
            "all scenes"
            if complete
            else f"the {done} completed scenes (work on the unfinished ones is included, so "
            "per-scene figures of a partial run are upper bounds)"
        )
        result["run"] = self._delta(done_snap, base, n)
        op_cpu = done_snap.cpu["operator"] - base.cpu["operator"]
        result["operator"] = {
            "pid": self.op.proc.pid,
            "cpu_seconds_run": round(op_cpu, 2),
            "cpu_ms_per_scene": round(1000 * op_cpu / n, 2),
            "cpu_utilisation_run": round(op_cpu / makespan, 2),
            "cpu_seconds_total": _round(done_snap.cpu["operator"], 2),
            "peak_rss_mb": round(mem.get("VmHWM", 0) / 2**20, 1),
            "rss_mb_at_ready": round(mem.get("VmRSS", 0) / 2**20, 1),
        }

        # -- one steady-state drift interval on the healthy fleet
        if complete:
            time.sleep(5.0)  # let the last recounts land
            settle = Snapshot(self)
            result["settle_after_ready"] = {
                "seconds": round(settle.t - done_snap.t, 1),
                "api_requests": flat(counter_diff(settle.api, done_snap.api)),
            }
            log(
                f"[{self.name}] all Ready in {makespan:.1f} s; measuring one drift interval ({self.drift_interval} s)"
            )
            time.sleep(self.drift_interval)
            after = Snapshot(self)
            result["drift_window"] = self._drift(after, settle)
        end_mem = proc_memory(self.op.proc.pid)
        result["operator"]["peak_rss_mb"] = round(end_mem.get("VmHWM", 0) / 2**20, 1)
        result["provider"] = self._jobs()
        result["harness_peak_rss_mb"] = round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        )
        result["timeline"] = self.timeline

    def _delta(self, after: Snapshot, before: Snapshot, n: int) -> dict[str, Any]:
        api = flat(counter_diff(after.api, before.api))
        by_verb = _sum_by_first(counter_diff(after.api, before.api))
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
            k: _round((after.cpu.get(k) or 0) - (before.cpu.get(k) or 0), 2)
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
                "busy_seconds": _round(busy, 1),
                "utilisation_of_all_cores": _round(
                    busy / (seconds * (os.cpu_count() or 1)) if busy and seconds else None, 2
                ),
                "this_benchmark_seconds": round(ours, 1),
                # other sessions on a shared machine: this skews every figure
                "other_processes_seconds": _round(busy - ours if busy is not None else None, 1),
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
                _sum_by_first(counter_diff(after.reconciles, before.reconciles)), n
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
            "cpu_seconds": cpu,
            "cpu_ms_per_scene": {k: round(1000 * (val or 0) / n, 2) for k, val in cpu.items()},
        }

    def _drift(self, after: Snapshot, before: Snapshot) -> dict[str, Any]:
        seconds = after.t - before.t
        d = self._delta(after, before, 1)
        s3 = _sum_by_first(counter_diff(after.s3, before.s3))
        lists = s3.get("list", 0.0)
        intervals = seconds / self.drift_interval
        return {
            "seconds": round(seconds, 1),
            "api_writes": writes_of(d["operator_api_requests_by_verb"]),
            "operator_api_requests": d["operator_api_requests"],
            "apiserver_requests_minus_harness": d["apiserver_requests_minus_harness"],
            "s3_operations": d["s3_operations"],
            "s3_lists_per_project_per_interval": round(lists / self.projects / intervals, 3),
            "s3_heads": s3.get("head", 0.0),
            "s3_puts": s3.get("put", 0.0),
            "reconciles": d["reconciles"],
            "decisions": d["decisions"],
            "replicate_server_requests": {
                k: c for k, c in d["replicate_server_requests"].items() if c
            },
            "cpu_seconds": d["cpu_seconds"],
            "operator_cpu_ms_per_project_per_interval": round(
                1000 * (d["cpu_seconds"].get("operator") or 0) / self.projects / intervals, 3
            ),
        }

    def _jobs(self) -> dict[str, Any]:
        """Provider jobs against Scenes: one paginated LIST of Scenes, kept small."""
        scene_prompts: list[str] = []
        started = 0
        clip_jobs: set[str] = set()
        cont = ""
        path = f"/apis/{v.GROUP}/{v.VERSION}/{v.SCENE_PLURAL}"
        while True:
            params = {"limit": "500", **({"continue": cont} if cont else {})}
            page = self.api.list(path, v.SCENE_PLURAL, **params)
            for s in page.get("items") or []:
                scene_prompts.append((s.get("spec") or {}).get("prompt", ""))
                status = s.get("status") or {}
                started += int(status.get("generationsStarted") or 0)
                job = (status.get("clip") or {}).get("jobId")
                if job:
                    clip_jobs.add(job)
            cont = (page.get("metadata") or {}).get("continue") or ""
            if not cont:
                break
        with self.replicate.lock:
            created = [
                (j["id"], str((j.get("input") or {}).get("prompt", "")))
                for j in self.replicate.created
            ]
        out = duplicate_jobs((p for _, p in created), scene_prompts)
        ids = {i for i, _ in created}
        out.update(
            {
                "scene_objects": len(scene_prompts),
                "distinct_scene_prompts": len(set(scene_prompts)),
                "generations_started_sum": started,
                "clips_from_created_jobs": len(clip_jobs & ids),
                "jobs_equal_scenes": len(created) == len(scene_prompts) == self.scenes,
            }
        )
        return out

    # ------------------------------------------------------------------ py-spy
    def _start_profiler(self) -> subprocess.Popen[bytes] | None:
        if self.profile is None:
            return None
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(exe).exists():
            log("py-spy not found: no profile")
            return None
        self.profile.mkdir(parents=True, exist_ok=True)
        out = self.profile / f"{self.name}.collapsed.txt"
        with (self.profile / f"{self.name}.py-spy.log").open("wb") as err:
            return subprocess.Popen(
                [exe, "record", "--pid", str(self.op.proc.pid), "--format", "raw", "--rate", "25",
                 "--nonblocking", f"--{self.profile_mode}", "--output", str(out)],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )  # fmt: skip

    def _stop_profiler(self, proc: subprocess.Popen[bytes] | None, result: dict[str, Any]) -> None:
        if proc is None or self.profile is None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out = self.profile / f"{self.name}.collapsed.txt"
        if out.exists():
            with out.open() as f:
                result["profile"] = {"file": str(out), **summarize_collapsed(f)}


def _sum_by_first(counts: Mapping[tuple[str, ...], float]) -> dict[str, float]:
    out: dict[str, float] = collections.defaultdict(float)
    for k, val in counts.items():
        out[k[0] if k else "total"] += val
    return {k: round(val, 3) for k, val in sorted(out.items())}


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


# ======================================================================= report


def summary(r: dict[str, Any]) -> str:
    run = r.get("run") or {}
    op = r.get("operator") or {}
    drift = r.get("drift_window") or {}
    prov = r.get("provider") or {}
    lines = [
        f"scenario {r['scenario']}: {r['projects']} projects x {r['scenes_per_project']} scenes = "
        f"{r['scenes']} scenes, latency {r['latency_seconds']} s, concurrency {r['concurrency']}",
        f"  completed: {r.get('completed')} ({r.get('ready_projects')} Ready, "
        f"{r.get('completed_scenes')} scenes done)",
        f"  makespan {r.get('makespan_seconds')} s, ideal {r.get('ideal_seconds')} s, "
        f"ratio {r.get('ratio')}",
        f"  operator API requests/scene: {run.get('operator_api_requests_per_scene_by_verb')}"
        f" (writes {run.get('operator_api_writes_per_scene')})",
        f"  API server requests/scene (minus harness): "
        f"{run.get('apiserver_requests_minus_harness_per_scene')}",
        f"  operator CPU {op.get('cpu_seconds_run')} s ({op.get('cpu_ms_per_scene')} ms/scene), "
        f"peak RSS {op.get('peak_rss_mb')} MB",
        f"  CPU s of this benchmark: {run.get('cpu_seconds')}; machine: {run.get('machine_cpu')}",
        f"  jobs: {prov.get('jobs')} for {prov.get('scenes')} scenes, duplicates "
        f"{prov.get('duplicates')}, without job {prov.get('scenes_without_job')}",
    ]
    if drift:
        lines.append(
            f"  drift window {drift['seconds']} s: API writes {drift['api_writes']}, S3 "
            f"{drift['s3_operations']} ({drift['s3_lists_per_project_per_interval']} LIST/project/"
            f"interval, {drift['s3_heads']} HEAD), CPU {drift['cpu_seconds']}"
        )
    return "\n".join(lines)


def markdown_table(results: list[dict[str, Any]]) -> str:
    """The README table: one column per result file, the figures the issue asks for."""

    def fmt(x: Any, unit: str = "") -> str:
        if x is None:
            return "—"
        if isinstance(x, float):
            x = f"{x:,.1f}" if abs(x) >= 10 else f"{x:.2f}"
        elif isinstance(x, int):
            x = f"{x:,}"
        return f"{x}{unit}"

    rows: list[tuple[str, Any]] = [
        ("Projects x Scenes", lambda r: f"{r['projects']:,} x {r['scenes_per_project']}"),
        (
            "completed",
            lambda r: (
                f"{r.get('completed_scenes', 0):,} / {r['scenes']:,} Scenes"
                + ("" if r.get("completed") else " (timed out)")
            ),
        ),
        ("makespan, apply → all Ready", lambda r: fmt(r.get("makespan_seconds"), " s")),
        ("ideal ceil(scenes / concurrency) x latency", lambda r: fmt(r.get("ideal_seconds"), " s")),
        ("ratio measured / ideal", lambda r: fmt(r.get("ratio"))),
        (
            "operator API writes per Scene",
            lambda r: fmt((r.get("run") or {}).get("operator_api_writes_per_scene")),
        ),
        (
            "operator API reads per Scene",
            lambda r: fmt(
                ((r.get("run") or {}).get("operator_api_requests_per_scene_by_verb") or {}).get(
                    "GET", 0.0
                )
            ),
        ),
        (
            "S3 HEAD / PUT per Scene",
            lambda r: "{} / {}".format(
                fmt(((r.get("run") or {}).get("s3_operations_per_scene") or {}).get("head", 0.0)),
                fmt(((r.get("run") or {}).get("s3_operations_per_scene") or {}).get("put", 0.0)),
            ),
        ),
        (
            "drift interval: API writes",
            lambda r: fmt((r.get("drift_window") or {}).get("api_writes")),
        ),
        (
            "drift interval: S3 LIST per Project / HEAD",
            lambda r: "{} / {}".format(
                fmt((r.get("drift_window") or {}).get("s3_lists_per_project_per_interval")),
                fmt((r.get("drift_window") or {}).get("s3_heads")),
            ),
        ),
        (
            "operator CPU per Scene",
            lambda r: fmt((r.get("operator") or {}).get("cpu_ms_per_scene"), " ms"),
        ),
        ("operator peak RSS", lambda r: fmt((r.get("operator") or {}).get("peak_rss_mb"), " MB")),
        (
            "all CPU of the run (2 cores)",
            lambda r: fmt(sum(((r.get("run") or {}).get("cpu_seconds") or {}).values()), " s"),
        ),
        (
            "provider jobs / Scenes / duplicates",
            lambda r: "{} / {} / {}".format(
                fmt((r.get("provider") or {}).get("jobs")),
                fmt((r.get("provider") or {}).get("scenes")),
                fmt((r.get("provider") or {}).get("duplicates")),
            ),
        ),
    ]
    head = "| figure | " + " | ".join(r["scenario"] for r in results) + " |"
    lines = [head, "|---|" + "---|" * len(results)]
    for label, get in rows:
        lines.append(f"| {label} | " + " | ".join(str(get(r)) for r in results) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bench", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="small")
    p.add_argument("--projects", type=int, help="custom size (with --scenes)")
    p.add_argument("--scenes", type=int, default=10, help="scenes per project (custom size)")
    p.add_argument("--latency", type=float, default=2.0, help="provider job latency (s)")
    p.add_argument("--concurrency", type=int, default=200, help="jobs in flight on the provider")
    p.add_argument("--drift-interval", type=int, default=20, help="repair.intervalSeconds")
    p.add_argument("--namespaces", type=int, default=4)
    p.add_argument(
        "--time-box", type=float, help="seconds from first create (default per scenario)"
    )
    p.add_argument("--out", type=Path, help="JSON result (default benchmarks/results/NAME.json)")
    p.add_argument("--profile", type=Path, help="folder for a py-spy profile of the operator")
    p.add_argument(
        "--profile-mode",
        choices=["gil", "idle"],
        default="gil",
        help="gil: samples holding the GIL (where CPU goes); idle: every thread, waiting too",
    )
    p.add_argument("--log-dir", type=Path, help="operator logs (default: a temp folder)")
    p.add_argument(
        "--operator-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra operator setting, e.g. SCENE_OPERATOR_SCENE_EVENTS=warnings (repeatable)",
    )
    p.add_argument("--name", help="scenario name in the result (default: the scenario's own name)")
    p.add_argument(
        "--table", type=Path, nargs="+", help="print the README table of these result files"
    )
    args = p.parse_args(argv)
    if args.table:
        print(markdown_table([json.loads(f.read_text()) for f in args.table]))
        return 0

    from controller.embedded.controlplane import REPO_ROOT

    if args.projects:
        runs = [(f"custom-{args.projects}x{args.scenes}", args.projects, args.scenes)]
    elif args.scenario == "all":
        runs = [(name, *size) for name, size in SCENARIOS.items()]
    else:
        runs = [(args.scenario, *SCENARIOS[args.scenario])]
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="scene-operator-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    failed = False
    for name, projects, scenes in runs:
        time_box = args.time_box or TIME_BOX.get(name) or max(300.0, projects * scenes * 0.2)
        bench = Bench(
            name,
            projects,
            scenes,
            latency=args.latency,
            concurrency=args.concurrency,
            drift_interval=args.drift_interval,
            namespaces=args.namespaces,
            time_box=time_box,
            profile=args.profile,
            log_dir=log_dir,
            profile_mode=args.profile_mode,
            extra_env=dict(kv.split("=", 1) for kv in args.operator_env),
        )
        if args.name:
            bench.name = args.name
        result = bench.run()
        result["command"] = " ".join(
            ["python -m benchmarks.bench", *(argv if argv is not None else sys.argv[1:])]
        )
        out = (
            args.out
            if args.out and len(runs) == 1
            else REPO_ROOT / "benchmarks" / "results" / f"{bench.name}.json"
        )
        if args.out and len(runs) > 1:
            out = args.out.parent / f"{args.out.stem}-{name}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        print(summary(result), flush=True)
        print(f"  -> {out}", flush=True)
        failed = failed or not result.get("completed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
