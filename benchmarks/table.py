"""Reports of result files: the one-run summary, the per-file table, and the README's
before/after tables of issue 14 (main scenarios, and the realistic one with and without
webhooks)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Result = dict[str, Any]
Row = tuple[str, Callable[[Result], Any]]

RESULTS = Path(__file__).resolve().parent / "results"
# The README's default columns: (label, file). "before" is round 1, measured at
# provider concurrency 200 before issue 14; "after" are runs at concurrency 100.
BEFORE_AFTER = [
    (f"{name} {tag}", RESULTS / sub / f"{name}.json")
    for name in ("small", "medium", "large")
    for tag, sub in (("before", "round1"), ("after", "."))
]
REALISTIC = [
    ("polling", RESULTS / "realistic.json"),
    ("webhooks", RESULTS / "realistic-webhooks.json"),
]


def fmt(x: Any, unit: str = "") -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        x = f"{x:,.1f}" if abs(x) >= 10 else f"{x:.2f}"
    elif isinstance(x, int):
        x = f"{x:,}"
    return f"{x}{unit}"


def dig(r: Result, *path: str) -> Any:
    """r[a][b]... or None where any step is missing."""
    for key in path:
        if not isinstance(r, dict):
            return None
        r = r.get(key)  # type: ignore[assignment]
    return r


def all_cpu(r: Result) -> float:
    return float(sum((dig(r, "run", "cpu_seconds") or {}).values()))


def per_scene_ms(r: Result, seconds: float | None) -> float | None:
    n = r.get("scenes") if r.get("completed") else r.get("completed_scenes")
    return None if seconds is None or not n else 1000 * seconds / n


def render(rows: Sequence[Row], results: Sequence[Result], headers: Sequence[str]) -> str:
    lines = ["| figure | " + " | ".join(headers) + " |", "|---|" + "---|" * len(results)]
    for label, get in rows:
        lines.append(f"| {label} | " + " | ".join(str(get(r)) for r in results) + " |")
    return "\n".join(lines)


def _completed(r: Result) -> str:
    done = f"{r.get('completed_scenes', 0):,} / {r['scenes']:,} Scenes"
    return done + ("" if r.get("completed") else " (timed out)")


def _slash(*values: Any) -> str:
    return " / ".join(fmt(x) for x in values)


PER_FILE: list[Row] = [
    ("Projects x Scenes", lambda r: f"{r['projects']:,} x {r['scenes_per_project']}"),
    ("provider concurrency / job latency", lambda r: _slash(r.get("concurrency"), r.get("latency_seconds")) + " s"),
    ("completed", _completed),
    ("makespan, apply → all Ready", lambda r: fmt(r.get("makespan_seconds"), " s")),
    ("ideal", lambda r: fmt(r.get("ideal_seconds"), " s")),
    ("ratio measured / ideal", lambda r: fmt(r.get("ratio"))),
    ("operator API writes per Scene", lambda r: fmt(dig(r, "run", "operator_api_writes_per_scene"))),
    (
        "operator API reads per Scene",
        lambda r: fmt((dig(r, "run", "operator_api_requests_per_scene_by_verb") or {}).get("GET", 0.0)),
    ),
    (
        "S3 HEAD / PUT per Scene",
        lambda r: _slash(
            (dig(r, "run", "s3_operations_per_scene") or {}).get("head", 0.0),
            (dig(r, "run", "s3_operations_per_scene") or {}).get("put", 0.0),
        ),
    ),
    ("drift interval: API writes", lambda r: fmt(dig(r, "drift_window", "api_writes"))),
    (
        "drift interval: S3 LIST per Project / HEAD",
        lambda r: _slash(
            dig(r, "drift_window", "s3_lists_per_project_per_interval"),
            dig(r, "drift_window", "s3_heads"),
        ),
    ),
    ("operator CPU per Scene", lambda r: fmt(dig(r, "operator", "cpu_ms_per_scene"), " ms")),
    ("operator peak RSS", lambda r: fmt(dig(r, "operator", "peak_rss_mb"), " MB")),
    ("all CPU of the run (2 cores)", lambda r: fmt(all_cpu(r), " s")),
    ("all CPU per Scene", lambda r: fmt(per_scene_ms(r, all_cpu(r)), " ms")),
    (
        "of which the fakes and harness",
        lambda r: fmt(
            per_scene_ms(
                r,
                sum(
                    (dig(r, "run", "cpu_seconds") or {}).get(k) or 0.0
                    for k in ("harness", "replicate-fake", "s3-fake")
                ),
            ),
            " ms",
        ),
    ),
    (
        "provider jobs / Scenes / duplicates",
        lambda r: _slash(
            dig(r, "provider", "jobs"), dig(r, "provider", "scenes"), dig(r, "provider", "duplicates")
        ),
    ),
]  # fmt: skip


def markdown_table(results: list[Result]) -> str:
    """One column per result file, every figure."""
    return render(PER_FILE, results, [r["scenario"] for r in results])


ISSUE_ROWS: list[Row] = [
    ("provider concurrency", lambda r: fmt(r.get("concurrency"))),
    ("completed", _completed),
    ("API writes per Scene", lambda r: fmt(dig(r, "run", "operator_api_writes_per_scene"))),
    ("operator CPU per Scene", lambda r: fmt(dig(r, "operator", "cpu_ms_per_scene"), " ms")),
    ("makespan / ideal", lambda r: f"{fmt(r.get('makespan_seconds'), ' s')} / {fmt(r.get('ideal_seconds'), ' s')} = {fmt(r.get('ratio'))}"),
    ("all CPU of the run per Scene (all processes)", lambda r: fmt(per_scene_ms(r, all_cpu(r)), " ms")),
    ("operator peak RSS", lambda r: fmt(dig(r, "operator", "peak_rss_mb"), " MB")),
    (
        "duplicates / healthy-interval writes / S3 LIST per Project per interval",
        lambda r: _slash(
            dig(r, "provider", "duplicates"),
            dig(r, "drift_window", "api_writes"),
            dig(r, "drift_window", "s3_lists_per_project_per_interval"),
        ),
    ),
]  # fmt: skip


def _throttled(r: Result) -> tuple[int, int]:
    """(429s on creates, 429s on reads) the fake provider answered."""
    by_route = {k: n for k, n in (dig(r, "completions", "http_429s") or {}).items() if k != "total"}
    creates = sum(n for k, n in by_route.items() if k.startswith("create"))
    return creates, sum(by_route.values()) - creates


def _delay(r: Result, stat: str) -> Any:
    return dig(r, "completions", "completion_to_completed_seconds", stat)


def _later(r: Result) -> str:
    """The jobs after the first wave: polled with the durations of those before known."""
    later = dig(r, "completions", "after_first_wave") or {}
    delay = later.get("completion_to_completed_seconds") or {}
    gets = (later.get("gets_per_job") or {}).get("mean")
    return f"{_slash(delay.get('p50'), delay.get('p95'))} s, {fmt(gets)}"


REALISTIC_ROWS: list[Row] = [
    ("Scenes / concurrency / job latency", lambda r: f"{r['scenes']:,} / {r['concurrency']} / {r['latency_seconds']:g} s" + (f" (log-sd {r['latency_sigma']:g})" if r.get("latency_sigma") else "")),
    ("completed", _completed),
    ("makespan", lambda r: fmt(r.get("makespan_seconds"), " s")),
    ("ideal (issue 14's formula)", lambda r: fmt(r.get("ideal_seconds"), " s")),
    ("of which polling delay", lambda r: fmt(dig(r, "ideal", "poll_delay"), " s")),
    ("makespan / ideal", lambda r: fmt(r.get("ratio"))),
    ("bound with the create spacing carried over", lambda r: fmt(dig(r, "ideal", "pipeline_bound"), " s")),
    ("makespan / that bound", lambda r: fmt(r.get("ratio_to_pipeline_bound"))),
    ("429s received (creates / reads)", lambda r: _slash(*_throttled(r))),
    ("completion → Completed, mean / p50 / p95", lambda r: _slash(_delay(r, "mean"), _delay(r, "p50"), _delay(r, "p95")) + " s"),
    ("GETs per job, mean / max", lambda r: _slash(dig(r, "completions", "gets_per_job", "mean"), dig(r, "completions", "gets_per_job", "max"))),
    ("after the first wave: completion → Completed p50 / p95, GETs per job", _later),
    ("API writes per Scene", lambda r: fmt(dig(r, "run", "operator_api_writes_per_scene"))),
    ("operator CPU per Scene", lambda r: fmt(dig(r, "operator", "cpu_ms_per_scene"), " ms")),
    ("duplicates", lambda r: fmt(dig(r, "provider", "duplicates"))),
]  # fmt: skip


def readme_tables(
    before_after: Sequence[tuple[str, Result]], realistic: Sequence[tuple[str, Result]]
) -> str:
    """Issue 14's two tables, from (column label, result) pairs (missing files left out)."""
    out = []
    if before_after:
        heads = [label for label, _ in before_after]
        out.append(render(ISSUE_ROWS, [r for _, r in before_after], heads))
    if realistic:
        heads = [label for label, _ in realistic]
        out.append(render(REALISTIC_ROWS, [r for _, r in realistic], heads))
    return "\n\n".join(out)


def summary(r: Result) -> str:
    """A few lines on one run, printed after it."""
    run, op = r.get("run") or {}, r.get("operator") or {}
    drift, prov = r.get("drift_window") or {}, r.get("provider") or {}
    lines = [
        f"scenario {r['scenario']}: {r['projects']} projects x {r['scenes_per_project']} scenes = "
        f"{r['scenes']} scenes, latency {r['latency_seconds']} s, concurrency {r['concurrency']}",
        f"  completed: {r.get('completed')} ({r.get('ready_projects')} Ready, "
        f"{r.get('completed_scenes')} scenes done)",
        f"  makespan {r.get('makespan_seconds')} s, ideal {r.get('ideal_seconds')} s, "
        f"ratio {r.get('ratio')}",
        f"  operator API requests/scene: {run.get('operator_api_requests_per_scene_by_verb')}"
        f" (writes {run.get('operator_api_writes_per_scene')})",
        f"  operator CPU {op.get('cpu_seconds_run')} s ({op.get('cpu_ms_per_scene')} ms/scene), "
        f"peak RSS {op.get('peak_rss_mb')} MB",
        f"  CPU s of this benchmark: {run.get('cpu_seconds')}; machine: {run.get('machine_cpu')}",
        f"  jobs: {prov.get('jobs')} for {prov.get('scenes')} scenes, duplicates "
        f"{prov.get('duplicates')}, without job {prov.get('scenes_without_job')}",
    ]
    if drift:
        lines.append(
            f"  drift window {drift['seconds']} s: API writes {drift['api_writes']}, "
            f"{drift['s3_lists_per_project_per_interval']} LIST/project/interval, "
            f"{drift['s3_heads']} HEAD"
        )
    if comp := r.get("completions"):
        lines.append(
            f"  completion -> Completed: {comp['completion_to_completed_seconds']}; "
            f"GETs/job {comp['gets_per_job']}; 429s {comp['http_429s']}"
        )
    return "\n".join(lines)
