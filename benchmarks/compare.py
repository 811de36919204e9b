"""A/B: one scenario run alternately on a git ref and on the working tree, medians side by side.

    .venv/bin/python -m benchmarks.compare REF [--scenario medium] [--runs 3] [-- BENCH FLAGS]
    .venv/bin/python -m benchmarks.compare . --a-flags "--operator-env X=1" --label NAME ...

The machine's speed drifts by ~20 % from day to day, so a figure only counts beside its
baseline measured in the same session: the two sides alternate (A B A B ...), each run
writes its own result file under benchmarks/results/ab/<scenario>/, and the summary
prints the median and the spread (max - min, relative to the median) of each figure.
REF is checked out once into a git worktree (removed afterwards) and run with this venv;
REF `.` runs the working tree on both sides, told apart by `--a-flags` / `--b-flags`
(bench flags of one side only, e.g. a setting switched off), with results under
results/ab/<label>/. `--from-results DIR` prints the table again from a folder's files.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.table import all_cpu, dig, per_scene_ms

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "ab"

Figure = tuple[str, Callable[[dict[str, Any]], float | None]]
FIGURES: list[Figure] = [
    ("makespan (s)", lambda r: r.get("makespan_seconds")),
    ("makespan / ideal", lambda r: r.get("ratio")),
    ("operator CPU per Scene (ms)", lambda r: dig(r, "operator", "cpu_ms_per_scene")),
    ("all CPU per Scene (ms)", lambda r: per_scene_ms(r, all_cpu(r))),
    ("operator peak RSS (MB)", lambda r: dig(r, "operator", "peak_rss_mb")),
    ("work-queue depth, peak", lambda r: r.get("queue_depth_peak")),
    ("API writes per Scene", lambda r: dig(r, "run", "operator_api_writes_per_scene")),
    ("duplicates", lambda r: dig(r, "provider", "duplicates")),
    ("completion → Completed p95 (s)", lambda r: _p95(r)),
    ("completion → Completed p95 after the first wave (s)", lambda r: _p95(r, "after")),
    ("provider reads per job", lambda r: dig(r, "completions", "gets_per_job", "mean")),
]


def _p95(r: dict[str, Any], part: str = "") -> float | None:
    if part:
        return dig(r, "completions", "after_first_wave", "completion_to_completed_seconds", "p95")
    return dig(r, "completions", "completion_to_completed_seconds", "p95")


def run_one(tree: Path, scenario: str, out: Path, extra: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "benchmarks.bench", "--scenario", scenario, "--out", str(out)]
    subprocess.run([*cmd, *extra], cwd=tree, env=env, check=True)
    return json.loads(out.read_text())


def summary(values: list[float]) -> str:
    if not values:
        return "—"
    med = statistics.median(values)
    spread = (max(values) - min(values)) / med * 100 if med else 0.0
    return f"{med:,.2f} (±{spread:.0f} %, n={len(values)})"


def table(sides: dict[str, list[dict[str, Any]]]) -> str:
    names = list(sides)
    lines = ["| figure | " + " | ".join(names) + " | B / A |", "|---|---|---|---|"]
    for label, get in FIGURES:
        if not any(get(r) is not None for runs in sides.values() for r in runs):
            continue  # a figure this scenario does not measure
        cols, meds = [], []
        for name in names:
            vals = [float(v) for r in sides[name] if (v := get(r)) is not None]
            cols.append(summary(vals))
            meds.append(statistics.median(vals) if vals else None)
        a, b = meds
        ratio = f"{b / a:.2f}" if a and b is not None else "—"
        lines.append(f"| {label} | " + " | ".join(cols) + f" | {ratio} |")
    return "\n".join(lines)


def _commit(ref: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short=12", ref],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def from_results(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """The sides of a finished comparison, read back from its files (a-<commit>-N, b-N)."""

    def in_run_order(pattern: str) -> list[Path]:
        return sorted(folder.glob(pattern), key=lambda f: int(f.stem.rsplit("-", 1)[1]))

    a_files, b_files = in_run_order("a-*.json"), in_run_order("b-*.json")
    if not a_files:
        raise SystemExit(f"{folder}: no a-*.json result files")
    commit = a_files[0].stem.rsplit("-", 1)[0].removeprefix("a-")
    a_name = "A working tree" if commit == "wt" else f"A {commit}"
    return {
        a_name: [json.loads(f.read_text()) for f in a_files],
        "B working tree": [json.loads(f.read_text()) for f in b_files],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("ref", nargs="?", help="git ref of the baseline (A); B is the working tree")
    p.add_argument("--from-results", type=Path, help="print the table of this results folder")
    p.add_argument("--scenario", default="medium")
    p.add_argument("--runs", type=int, default=3, help="runs per side (alternating)")
    p.add_argument("--a-flags", default="", help="bench flags for side A only (one string)")
    p.add_argument("--b-flags", default="", help="bench flags for side B only (one string)")
    p.add_argument("--label", help="results folder under results/ab/ (default: the scenario)")
    # anything else (after `--`) goes to benchmarks.bench
    args, rest = p.parse_known_args(argv)
    if args.from_results:
        print(table(from_results(args.from_results)))
        return 0
    if args.ref is None:
        p.error("give REF (or --from-results DIR)")
    extra = [a for a in rest if a != "--"]
    same = args.ref == "."
    if same and args.a_flags == args.b_flags:
        p.error("REF . compares the working tree with itself: give --a-flags or --b-flags")
    commit = "wt" if same else _commit(args.ref)
    out = OUT / (args.label or args.scenario)
    out.mkdir(parents=True, exist_ok=True)
    a_name = f"A working tree {args.a_flags}".strip() if same else f"A {commit}"
    sides: dict[str, list[dict[str, Any]]] = {
        a_name: [],
        f"B working tree {args.b_flags}".strip(): [],
    }
    flags = (shlex.split(args.a_flags), shlex.split(args.b_flags))
    with tempfile.TemporaryDirectory(prefix="ab-") as tmp:
        base = ROOT if same else Path(tmp) / "a"
        if not same:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), commit],
                check=True,
            )
        try:
            for i in range(args.runs):
                for side, (results, tree) in enumerate(
                    zip(sides.values(), (base, ROOT), strict=True)
                ):
                    tag = "a-" + commit if side == 0 else "b"
                    path = out / f"{tag}-{i + 1}.json"
                    results.append(run_one(tree, args.scenario, path, [*extra, *flags[side]]))
        finally:
            if not same:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                    check=False,
                )
    print(f"\n{args.scenario}: A = {a_name}, B = the working tree; median (spread, runs)\n")
    print(table(sides))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
