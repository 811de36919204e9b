"""The webhook port under abuse: the operator process (leader election on, webhooks on)
against a local control plane, while many connections send request headers and never
finish them.

    .venv/bin/python -m benchmarks.webhook_abuse [--connections 200] [--headers 120]
        [--header-bytes 8000] [--kubeconfig PATH] [--pythonpath DIR]

Attacks (each on a fresh operator): `oversized`, the issue's 120 headers of 8 kB each,
unfinished; `within-limits`, headers under every size and count limit (31 of 4,000
bytes), unfinished, so only the header deadline, the keep-alive and the connection cap
stop them; every connection the server closes is opened again at once, for 30 s
(`--once`: one wave of `--connections`, watched for 30 s all the same).
Measured during each: the operator's RSS (VmRSS, sampled every 0.1 s), when
the server closed each connection, `/healthz` polled every 0.25 s, and the Lease's
renewTime read every 0.25 s (a renewal is late when two renewals are more than twice the
retry period apart). `--pythonpath DIR` runs the operator from another checkout (e.g.
the code before the limits) for a before/after.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from controller.demo.cluster import Kubectl, install_crds
from controller.demo.controlplane import REPO_ROOT, ControlPlane
from controller.demo.free_ports import free_port
from tests.support.operator_process import OperatorProcess
from tests.support.replicate_server import ReplicateServer

RETRY_PERIOD = 2.0  # the default SCENE_OPERATOR_LEADER_ELECT_RETRY_PERIOD_SECONDS
WINDOW = 30.0  # seconds the attack is watched


@dataclass
class Result:
    attack: str
    connections: int
    headers: int
    header_bytes: int
    rss_before_mb: float = 0.0
    rss_peak_mb: float = 0.0
    closed_within_30s: int = 0
    closed_at_p50_s: float | None = None
    closed_at_max_s: float | None = None
    refused_503: int = 0
    answered_400: int = 0
    healthz_checks: int = 0
    healthz_failures: int = 0
    healthz_max_ms: float = 0.0
    renewals: int = 0
    renewal_max_gap_s: float = 0.0
    late_renewals: int = 0
    still_leader: bool = False
    opened: int = 0  # connections opened during the window (closed ones are reopened)
    server_counts: dict[str, float] = field(default_factory=dict)  # webhooks_total outcomes
    notes: list[str] = field(default_factory=list)

    @property
    def rss_growth_mb(self) -> float:
        return round(self.rss_peak_mb - self.rss_before_mb, 1)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Watch(threading.Thread):
    """RSS, /healthz and Lease renewals, sampled while the attack runs."""

    def __init__(self, op: OperatorProcess, kubectl: Kubectl, namespace: str) -> None:
        super().__init__(daemon=True)
        self.op, self.kubectl, self.namespace = op, kubectl, namespace
        self.stop = threading.Event()
        self.rss: list[float] = []
        self.health: list[tuple[bool, float]] = []
        self.renewals: list[datetime] = []
        self.began = time.monotonic()

    def run(self) -> None:
        next_health = next_lease = 0.0
        while not self.stop.is_set():
            now = time.monotonic()
            assert self.op.proc is not None
            self.rss.append(rss_mb(self.op.proc.pid))
            if now >= next_health:
                self.health.append(self._healthz())
                next_health = now + 0.25
            if now >= next_lease:
                self._lease()
                next_lease = now + 0.25
            time.sleep(0.1)

    def _healthz(self) -> tuple[bool, float]:
        began = time.monotonic()
        url = f"http://127.0.0.1:{self.op.liveness_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                ok = r.status == 200
        except OSError:
            ok = False
        return ok, (time.monotonic() - began) * 1000

    def _lease(self) -> None:
        lease = self.kubectl.json("get", "lease", "-n", self.namespace, "scene-operator")
        stamp = datetime.fromisoformat(lease["spec"]["renewTime"].replace("Z", "+00:00"))
        if not self.renewals or stamp != self.renewals[-1]:
            self.renewals.append(stamp)


async def attacker(
    port: int, headers: int, size: int, closed: list[float | None], i: int, began: float
) -> str:
    """One connection: a request line and `headers` headers of `size` bytes, never the
    blank line that ends them; then wait until the server closes it."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        closed[i] = time.monotonic() - began
        return "refused"
    answer = b""
    try:
        writer.write(b"POST /webhooks/replicate HTTP/1.1\r\nHost: x\r\n")
        for n in range(headers):
            writer.write(f"X-Pad-{n}: ".encode() + b"a" * size + b"\r\n")
            await writer.drain()
        answer = await reader.read()  # b"" or an answer: the server closed it
        closed[i] = time.monotonic() - began
    except OSError:  # reset or broken pipe: the server closed it while we wrote
        closed[i] = time.monotonic() - began
    finally:
        writer.close()
    if answer.startswith(b"HTTP/1.1 503"):
        return "503"
    if b" 400 " in answer.split(b"\r\n", 1)[0]:
        return "400"
    return "closed" if closed[i] is not None else "open"  # (a reset: see the metrics)


async def attack(
    port: int, connections: int, headers: int, size: int, once: bool = False
) -> tuple[list, list, int]:
    """The first wave's close times and kinds; then every closed connection is opened
    again at once, so `connections` stay under attack for the whole window. Returns also
    how many connections were opened in all."""
    closed: list[float | None] = [None] * connections
    began = time.monotonic()
    opened = 0

    async def keep_attacking(i: int) -> str:
        nonlocal opened
        opened += 1
        kind = await attacker(port, headers, size, closed, i, began)
        while not once and time.monotonic() - began < WINDOW:
            opened += 1
            await attacker(port, headers, size, [None], 0, began)
            await asyncio.sleep(0.05)
        return kind

    tasks = [asyncio.create_task(keep_attacking(i)) for i in range(connections)]
    done, pending = await asyncio.wait(tasks, timeout=WINDOW + 15)
    for task in pending:
        task.cancel()
    kinds = [t.result() if t in done and not t.cancelled() else "open" for t in tasks]
    return closed, kinds, opened


def run_one(
    name: str, args: argparse.Namespace, kubeconfig: str, headers: int, size: int
) -> Result:
    kubectl = Kubectl(kubeconfig)
    namespace = f"abuse-{name}-{os.getpid()}"
    kubectl("create", "namespace", namespace)
    result = Result(name, args.connections, headers, size)
    with ReplicateServer() as replicate:
        port = free_port()
        env = {
            **replicate.env(),
            "SCENE_OPERATOR_LEADER_ELECT": "true",
            "SCENE_OPERATOR_LEADER_ELECT_NAMESPACE": namespace,
            "SCENE_OPERATOR_WEBHOOK_URL": f"http://127.0.0.1:{port}",
            "SCENE_OPERATOR_WEBHOOK_PORT": str(port),
            "SCENE_OPERATOR_LOG_LEVEL": "WARNING",
        }
        if args.pythonpath:
            env["PYTHONPATH"] = args.pythonpath
        log = Path(tempfile.gettempdir()) / f"webhook-abuse-{name}-{os.getpid()}.log"
        op = OperatorProcess(kubeconfig, env=env, namespaces=[namespace], log_path=log)
        op.start()
        try:
            op.wait_healthy(timeout=60)
            deadline = time.monotonic() + 60
            while "scene_operator_leader 1.0" not in op.metrics():
                if time.monotonic() > deadline:
                    raise RuntimeError("the operator did not become leader")
                time.sleep(0.2)
            time.sleep(3.0)  # settled
            assert op.proc is not None
            result.rss_before_mb = round(rss_mb(op.proc.pid), 1)
            watch = Watch(op, kubectl, namespace)
            watch.start()
            closed, kinds, result.opened = asyncio.run(
                attack(port, args.connections, headers, size, args.once)
            )
            while time.monotonic() - watch.began < WINDOW:  # watched for the whole window
                time.sleep(0.2)
            time.sleep(1.0)
            watch.stop.set()
            watch.join()
            summarise(result, watch, closed, kinds)
            text = op.metrics()
            result.still_leader = op.alive() and "scene_operator_leader 1.0" in text
            result.server_counts = outcomes(text)
        finally:
            op.stop()
            kubectl("delete", "namespace", namespace, "--wait=false")
    return result


def outcomes(text: str) -> dict[str, float]:
    """scene_operator_webhooks_total by outcome, from the exposition text."""
    counts = {}
    for line in text.splitlines():
        if line.startswith('scene_operator_webhooks_total{outcome="'):
            label, value = line.split('"')[1], line.rsplit(" ", 1)[1]
            counts[label] = float(value)
    return counts


def summarise(result: Result, watch: Watch, closed: list, kinds: list[str]) -> None:
    times = sorted(t for t in closed if t is not None and t <= WINDOW)
    result.rss_peak_mb = round(max(watch.rss), 1)
    result.closed_within_30s = len(times)
    result.closed_at_p50_s = round(statistics.median(times), 2) if times else None
    result.closed_at_max_s = round(times[-1], 2) if times else None
    result.refused_503 = kinds.count("503")
    result.answered_400 = kinds.count("400")
    result.healthz_checks = len(watch.health)
    result.healthz_failures = sum(1 for ok, _ in watch.health if not ok)
    result.healthz_max_ms = round(max(ms for _, ms in watch.health), 1)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(watch.renewals)]
    result.renewals = len(watch.renewals)
    result.renewal_max_gap_s = round(max(gaps), 2) if gaps else 0.0
    result.late_renewals = sum(1 for g in gaps if g > 2 * RETRY_PERIOD)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--headers", type=int, default=120)
    parser.add_argument("--header-bytes", type=int, default=8000)
    parser.add_argument("--kubeconfig", help="an existing cluster (default: a local one)")
    parser.add_argument("--pythonpath", help="run the operator from this checkout")
    parser.add_argument("--only", choices=["oversized", "within-limits"])
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument(
        "--once", action="store_true", help="one wave: a closed connection is not reopened"
    )
    args = parser.parse_args(argv)
    attacks = {
        "oversized": (args.headers, args.header_bytes),
        "within-limits": (31, 4000),
    }
    if args.only:
        attacks = {args.only: attacks[args.only]}
    results = []
    plane = None if args.kubeconfig else ControlPlane().start()
    try:
        kubeconfig = args.kubeconfig or plane.kubeconfig  # type: ignore[union-attr]
        install_crds(kubeconfig, sorted((REPO_ROOT / "crds").glob("*.yaml")))
        for name, (headers, size) in attacks.items():
            result = run_one(name, args, kubeconfig, headers, size)
            results.append(result)
            print(json.dumps({**asdict(result), "rss_growth_mb": result.rss_growth_mb}))
    finally:
        if plane is not None:
            plane.stop()
    if args.json:
        Path(args.json).write_text(
            json.dumps([{**asdict(r), "rss_growth_mb": r.rss_growth_mb} for r in results], indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
