"""What the benchmark counts, read from text: /proc files, Prometheus expositions, and
jobs against Scenes. Pure functions, plus thin readers of this machine's /proc."""

from __future__ import annotations

import collections
import contextlib
import os
import platform
import resource
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE")


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


def sum_by_first(counts: Mapping[tuple[str, ...], float]) -> dict[str, float]:
    out: dict[str, float] = collections.defaultdict(float)
    for k, val in counts.items():
        out[k[0] if k else "total"] += val
    return {k: round(val, 3) for k, val in sorted(out.items())}


def rounded(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)
