"""One scenario through the real operator process: set up, create the Projects, wait for
all Ready, measure one healthy drift interval, and gather the figures."""

from __future__ import annotations

import concurrent.futures
import contextlib
import re
import resource
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import profile
from benchmarks.kubeside import Api, CompletedWatch, project_body, readiness, tiny_clip
from benchmarks.limits import ideal_makespan, limited_ideal, pipeline_bound
from benchmarks.measure import (
    counter_diff,
    flat,
    machine,
    metric_by,
    proc_cpu,
    proc_memory,
    rounded,
)
from benchmarks.provider import completion_figures, jobs_against_scenes
from benchmarks.s3fake import S3Process
from benchmarks.scenarios import SECRET_ENV, SPREAD_SEED, Scenario, bucket_of, operator_env
from benchmarks.snapshot import Snapshot, delta, drift
from controller.api import vocabulary as v


def image_env(dockerfile: Path) -> dict[str, str]:
    """The allocator settings the image runs the operator with (`ENV MALLOC_...=...`
    lines of the Dockerfile), so the benchmark's operator process matches the deployment."""
    env = {}
    for line in dockerfile.read_text().splitlines():
        m = re.match(r"ENV\s+(MALLOC_\w+)=(\S+)\s*$", line.strip())
        if m:
            env[m.group(1)] = m.group(2)
    return env


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def ideal_of(s: Scenario, durations: list[float] | None = None) -> dict[str, Any]:
    """The ideal makespan a scenario is measured against, and how it is made up.
    `durations`: the jobs' own lengths in creation order (spread jobs): the waves are
    then the first free slot taking the next job, not whole waves of the median."""
    waves = "ceil(scenes / concurrency) x latency"
    if durations is not None:
        waves = "the jobs' own lengths, each in the first slot to free"
    if not s.limited:
        return {
            "ideal": ideal_makespan(s.total, s.concurrency, s.latency, durations),
            "formula": waves,
        }
    creates, reads = s.operator_rates()
    out: dict[str, Any] = limited_ideal(
        s.total, s.concurrency, s.latency, creates, None if s.webhooks else reads, durations
    )
    out["formula"] = f"max(scenes / create rate, {waves}) + polling delay"
    detect = out["poll_delay"] / max(1, -(-s.total // s.concurrency))
    out["pipeline_bound"] = pipeline_bound(
        s.total, s.concurrency, s.latency, creates, detect, durations
    )
    return out


class Bench:
    def __init__(
        self,
        scenario: Scenario,
        *,
        drift_interval: int,
        namespaces: int,
        profile_dir: Path | None,
        log_dir: Path,
        profile_mode: str = "gil",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.s = scenario
        self.name = scenario.name
        self.extra_env = dict(extra_env or {})
        self.drift_interval = drift_interval
        count = max(1, min(namespaces, scenario.projects))
        self.namespaces = [f"bench-{i}" for i in range(count)]
        self.profile_dir, self.log_dir, self.profile_mode = profile_dir, log_dir, profile_mode
        self.cp: Any = None
        self.op: Any = None
        self.api: Any = None
        self.replicate: Any = None
        self.s3: S3Process | None = None
        self.watch: CompletedWatch | None = None
        self.timeline: list[dict[str, Any]] = []

    def pids(self) -> dict[str, int | None]:
        def pid(proc: Any) -> int | None:
            return getattr(getattr(proc, "popen", None), "pid", None)

        return {
            "operator": self.op.proc.pid if self.op and self.op.proc else None,
            "kube-apiserver": pid(getattr(self.cp, "_apiserver", None)),
            "etcd": pid(getattr(self.cp, "_etcd", None)),
            "kube-controller-manager": pid(getattr(self.cp, "_kcm", None)),
            "s3-fake": self.s3.pid if self.s3 else None,
        }

    def header(self) -> dict[str, Any]:
        s = self.s
        return {
            "scenario": self.name,
            "projects": s.projects,
            "scenes_per_project": s.scenes,
            "scenes": s.total,
            "namespaces": len(self.namespaces),
            "latency_seconds": s.latency,
            "latency_sigma": s.latency_sigma,
            "concurrency": s.concurrency,
            "provider_limits_per_minute": (
                {"creates": s.creates_per_minute, "reads": s.reads_per_minute}
                if s.limited
                else None
            ),
            "webhooks": s.webhooks,
            "buckets": {"mode": s.buckets, "count": len({b for _, _, b in self._projects()})},
            "drift_interval_seconds": self.drift_interval,
            "time_box_seconds": s.time_box,
            "machine": machine(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def run(self) -> dict[str, Any]:
        from controller.demo.cluster import Kubectl, install_crds
        from controller.demo.controlplane import ControlPlane
        from controller.demo.free_ports import free_port
        from tests.support.operator_process import OperatorProcess
        from tests.support.replicate_server import ReplicateServer
        from tests.support.repo import REPO_ROOT, control_plane_binaries

        s = self.s
        result = self.header()
        log(f"[{self.name}] {s.projects} projects x {s.scenes} scenes = {s.total}")
        clip = tiny_clip()
        with contextlib.ExitStack() as stack:
            began = time.monotonic()
            self.cp = stack.enter_context(ControlPlane(control_plane_binaries()))
            self.s3 = s3 = stack.enter_context(S3Process())
            client = s3.client()
            for bucket in sorted({b for _, _, b in self._projects()}):
                client.create_bucket(Bucket=bucket)
            self.replicate = ReplicateServer(
                latency_seconds=s.latency,
                latency_sigma=s.latency_sigma,
                seed=SPREAD_SEED,
                video_bytes=clip,
            )
            self.replicate.quiet_errors = True  # a client that gave up is not news
            stack.enter_context(self.replicate)
            if s.limited:
                self.replicate.limit(
                    s.creates_per_minute or 0.0, s.reads_per_minute or 0.0, s.burst_seconds
                )
            kubectl = Kubectl(self.cp.kubeconfig, cache_dir=self.log_dir / "kubectl-cache")
            install_crds(
                self.cp.kubeconfig, sorted((REPO_ROOT / "crds").glob("*.yaml")), kubectl=kubectl
            )
            self.api = Api(self.cp.server, self.cp.token)
            stack.callback(self.api.close)
            for ns in self.namespaces:
                self.api.create("/api/v1/namespaces", {"metadata": {"name": ns}}, "namespaces")
            hook_port = free_port() if s.webhooks else None
            op_env = {
                **operator_env(s, s3.env(), self.replicate.env(), hook_port),
                **image_env(REPO_ROOT / "Dockerfile"),
                **self.extra_env,
            }
            result["operator_env"] = {k: val for k, val in op_env.items() if k not in SECRET_ENV}
            self.op = OperatorProcess(
                self.cp.kubeconfig,
                env=op_env,
                namespaces=[],
                log_path=self.log_dir / f"operator-{self.name}.log",
            )
            self.op.start()
            stack.callback(self.op.stop)
            self.op.wait_healthy(60)
            if s.limited or s.webhooks:  # completion -> Completed needs sub-second times
                self.watch = CompletedWatch(self.cp.server, self.cp.token).start()
                stack.callback(self.watch.stop)
            time.sleep(3)  # let kopf open its watches
            result["setup_seconds"] = round(time.monotonic() - began, 1)
            result["operator_log"] = str(self.op.log_path)
            self._measure(result)
        return result

    def _projects(self) -> list[tuple[str, str, str]]:
        """(namespace, name, bucket) of each Project the run creates."""
        out = []
        for i in range(self.s.projects):
            ns, name = self.namespaces[i % len(self.namespaces)], f"p-{i:05d}"
            out.append((ns, name, bucket_of(self.s.buckets, name, ns)))
        return out

    def _create_projects(self) -> None:
        plural = v.PROJECT_PLURAL
        bodies = [
            project_body(ns, name, i, self.s.scenes, self.drift_interval, bucket)
            for i, (ns, name, bucket) in enumerate(self._projects())
        ]

        def create(body: dict[str, Any]) -> None:
            ns = body["metadata"]["namespace"]
            self.api.create(f"/apis/{v.GROUP}/{v.VERSION}/namespaces/{ns}/{plural}", body, plural)

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(create, bodies))

    def _wait_ready(self, t0: float) -> dict[str, Any]:
        """One LIST of Projects per second until all are Ready or the time box ends."""
        s, plural = self.s, v.PROJECT_PLURAL
        deadline = t0 + s.time_box
        first_ready = all_started = None
        ready = done = 0
        last_metrics = queue_peak = 0.0
        while True:
            tick = time.monotonic()
            _, ready, done = readiness(
                self.api.table(f"/apis/{v.GROUP}/{v.VERSION}/{plural}", plural)
            )
            now = tick - t0
            if ready and first_ready is None:
                first_ready = now
            with self.replicate.lock:
                jobs = len(self.replicate.created)
            if jobs >= s.total and all_started is None:
                all_started = now
            sample: dict[str, Any] = {
                "t": round(now, 1),
                "ready": ready,
                "scenes_completed": done,
                "jobs_created": jobs,
            }
            if tick - last_metrics >= 5.0 or ready >= s.projects:
                last_metrics = tick
                with contextlib.suppress(OSError):
                    q = metric_by(self.op.metrics(), "scene_operator_workqueue_depth").get((), 0.0)
                    queue_peak = max(queue_peak, q)
                    sample["queue"] = q
                sample["operator_cpu"] = rounded(proc_cpu(self.op.proc.pid), 2)
                log(
                    f"[{self.name}] t={now:6.1f}s ready {ready}/{s.projects} "
                    f"scenes {done}/{s.total} jobs {jobs}"
                )
            self.timeline.append(sample)
            if ready >= s.projects or time.monotonic() > deadline or not self.op.alive():
                break
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        return {
            "ready_projects": ready,
            "completed_scenes": done,
            "first_project_ready_seconds": rounded(first_ready, 1),
            "all_jobs_created_seconds": rounded(all_started, 1),
            "queue_depth_peak": queue_peak,
        }

    def _measure(self, result: dict[str, Any]) -> None:
        s = self.s
        base = Snapshot(self)
        result["operator_rss_idle_mb"] = round(
            proc_memory(self.op.proc.pid).get("VmRSS", 0) / 2**20, 1
        )
        profiler = profile.start(self.op.proc.pid, self.profile_dir, self.name, self.profile_mode)
        t0 = time.monotonic()
        self._create_projects()
        created_at = time.monotonic() - t0
        log(f"[{self.name}] {s.projects} projects created in {created_at:.1f} s")
        waited = self._wait_ready(t0)
        makespan = time.monotonic() - t0
        complete = waited["ready_projects"] >= s.projects
        if (summary := profile.stop(profiler, self.profile_dir, self.name)) is not None:
            result["profile"] = summary
        done_snap = Snapshot(self)
        mem = proc_memory(self.op.proc.pid)
        ideal = ideal_of(s, self._durations())
        result.update(
            {
                "completed": complete,
                "timed_out": not complete and self.op.alive(),
                "operator_alive": self.op.alive(),
                **waited,
                "create_seconds": round(created_at, 2),
                "makespan_seconds": round(makespan, 1),
                "ideal_seconds": ideal["ideal"],
                "ideal": ideal,
                "ratio": round(makespan / ideal["ideal"], 2) if ideal["ideal"] else None,
                "ratio_to_pipeline_bound": (
                    round(makespan / ideal["pipeline_bound"], 2)
                    if ideal.get("pipeline_bound")
                    else None
                ),
            }
        )
        done = waited["completed_scenes"]
        n = s.total if complete else max(done, 1)
        result["per_scene_basis"] = (
            "all scenes"
            if complete
            else f"the {done} completed scenes (work on the unfinished ones is included, so "
            "per-scene figures of a partial run are upper bounds)"
        )
        result["run"] = delta(done_snap, base, n)
        op_cpu = done_snap.cpu["operator"] - base.cpu["operator"]
        result["operator"] = {
            "pid": self.op.proc.pid,
            "cpu_seconds_run": round(op_cpu, 2),
            "cpu_ms_per_scene": round(1000 * op_cpu / n, 2),
            "cpu_utilisation_run": round(op_cpu / makespan, 2),
            "cpu_seconds_total": rounded(done_snap.cpu["operator"], 2),
            "peak_rss_mb": round(mem.get("VmHWM", 0) / 2**20, 1),
            "rss_mb_at_ready": round(mem.get("VmRSS", 0) / 2**20, 1),
        }
        if self.watch is not None:
            result["completions"] = completion_figures(
                self.replicate, self.watch.seen(), first_wave=s.concurrency
            )
            result["completions"]["watch_events"] = self.watch.events
        if complete:
            self._drift_window(result, done_snap, makespan)
        end_mem = proc_memory(self.op.proc.pid)
        result["operator"]["peak_rss_mb"] = round(end_mem.get("VmHWM", 0) / 2**20, 1)
        result["provider"] = jobs_against_scenes(self.api, self.replicate, s.total)
        result["harness_peak_rss_mb"] = round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        )
        result["timeline"] = self.timeline

    def _durations(self) -> list[float] | None:
        """The jobs' own lengths in creation order, when they are spread; the jobs a run
        created beyond one per Scene (retries, duplicates) are left out."""
        if not self.s.latency_sigma:
            return None
        with self.replicate.lock:
            seconds = [float(j["seconds"]) for j in self.replicate.created]
        return seconds[: self.s.total] if len(seconds) >= self.s.total else None

    def _drift_window(self, result: dict[str, Any], done_snap: Snapshot, makespan: float) -> None:
        """One steady-state drift interval on the healthy fleet."""
        time.sleep(5.0)  # let the last recounts land
        settle = Snapshot(self)
        result["settle_after_ready"] = {
            "seconds": round(settle.t - done_snap.t, 1),
            "api_requests": flat(counter_diff(settle.api, done_snap.api)),
        }
        log(
            f"[{self.name}] all Ready in {makespan:.1f} s; "
            f"measuring one drift interval ({self.drift_interval} s)"
        )
        time.sleep(self.drift_interval)
        after = Snapshot(self)
        result["drift_window"] = drift(after, settle, self.s.projects, self.drift_interval)
