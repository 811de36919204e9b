"""Throughput benchmark: N Projects x M Scenes through the real operator process.

Everything runs on this machine: a local control plane (etcd + kube-apiserver +
kube-controller-manager), a moto S3 server, a local Replicate-protocol server whose jobs
take ``--latency`` seconds (optionally rate limited like Replicate, and calling back with
signed webhooks), and the operator as a separate process (``python -m controller run``,
all namespaces), exactly as a user runs it. See benchmarks/README.md.

``python -m benchmarks.bench --scenario small|medium|large|realistic|all [--webhooks]
[--projects N --scenes M] [--latency S [--latency-sigma L]] [--concurrency C] [--out FILE]``;
``python -m benchmarks.bench --table [FILES]`` prints the README's tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.scenarios import BUCKET_MODES, MAIN, SCENARIOS, Scenario, customised
from benchmarks.table import BEFORE_AFTER, REALISTIC, markdown_table, readme_tables, summary


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bench", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="small")
    p.add_argument("--projects", type=int, help="custom size (with --scenes)")
    p.add_argument("--scenes", type=int, help="scenes per project (custom size)")
    p.add_argument("--latency", type=float, help="provider job seconds (scenario's own: 2, 60)")
    p.add_argument(
        "--latency-sigma",
        type=float,
        help="spread of the jobs' lengths: log-sd around --latency (scenario's own: 0, 0.1)",
    )
    p.add_argument(
        "--concurrency", type=int, help="jobs in flight on the provider (scenario's: 100, 500)"
    )
    p.add_argument(
        "--webhooks",
        action="store_true",
        help="operator's webhook receiver on; the fake provider calls back signed on completion",
    )
    p.add_argument("--creates-per-minute", type=float, help="provider create limit (429 beyond)")
    p.add_argument("--reads-per-minute", type=float, help="provider read limit (429 beyond)")
    p.add_argument(
        "--buckets",
        choices=BUCKET_MODES,
        help="a bucket per Project (default: the fake's LIST then costs what S3's does), "
        "per namespace, or one shared (round 2's)",
    )
    p.add_argument("--drift-interval", type=int, default=20, help="repair.intervalSeconds")
    p.add_argument("--namespaces", type=int, default=4)
    p.add_argument("--time-box", type=float, help="seconds from first create (per scenario)")
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
        "--table",
        type=Path,
        nargs="*",
        help="print a table of these result files; none: the README's tables from "
        "benchmarks/results/ (round1/ is before, the top level after)",
    )
    return p


def scenarios_of(args: argparse.Namespace) -> list[Scenario]:
    names = MAIN if args.scenario == "all" else (args.scenario,)
    out = []
    for name in names:
        s = customised(
            SCENARIOS[name],
            projects=args.projects,
            scenes=args.scenes,
            latency=args.latency,
            latency_sigma=args.latency_sigma,
            concurrency=args.concurrency,
            time_box=args.time_box,
            creates_per_minute=args.creates_per_minute,
            reads_per_minute=args.reads_per_minute,
            webhooks=args.webhooks or None,
            buckets=args.buckets,
        )
        out.append(dataclasses.replace(s, name=args.name) if args.name else s)
    return out


def table(files: list[Path]) -> str:
    if files:
        return markdown_table([json.loads(f.read_text()) for f in files])

    def load(pairs: list[tuple[str, Path]]) -> list[tuple[str, dict[str, Any]]]:
        return [(label, json.loads(f.read_text())) for label, f in pairs if f.exists()]

    return readme_tables(load(BEFORE_AFTER), load(REALISTIC))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.table is not None:
        print(table(args.table))
        return 0

    from benchmarks.runner import Bench

    runs = scenarios_of(args)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="scene-operator-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    failed = False
    for s in runs:
        bench = Bench(
            s,
            drift_interval=args.drift_interval,
            namespaces=args.namespaces,
            profile_dir=args.profile,
            log_dir=log_dir,
            profile_mode=args.profile_mode,
            extra_env=dict(kv.split("=", 1) for kv in args.operator_env),
        )
        result = bench.run()
        result["command"] = " ".join(
            ["python -m benchmarks.bench", *(argv if argv is not None else sys.argv[1:])]
        )
        out = out_path(args.out, s.name, len(runs))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        print(summary(result), flush=True)
        print(f"  -> {out}", flush=True)
        failed = failed or not result.get("completed")
    return 1 if failed else 0


def out_path(out: Path | None, name: str, runs: int) -> Path:
    if out is None:
        return Path(__file__).resolve().parent / "results" / f"{name}.json"
    return out if runs == 1 else out.parent / f"{out.stem}-{name}.json"


if __name__ == "__main__":
    sys.exit(main())
