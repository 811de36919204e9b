"""py-spy profiles of the operator: start and stop the sampler, and summarise its
collapsed output by function."""

from __future__ import annotations

import collections
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any


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


def start(pid: int, folder: Path | None, name: str, mode: str) -> subprocess.Popen[bytes] | None:
    """py-spy sampling `pid` at 25 Hz into FOLDER/NAME.collapsed.txt (None: no profile)."""
    if folder is None:
        return None
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        print("py-spy not found: no profile", file=sys.stderr)
        return None
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{name}.collapsed.txt"
    with (folder / f"{name}.py-spy.log").open("wb") as err:
        return subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--format", "raw", "--rate", "25",
             "--nonblocking", f"--{mode}", "--output", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )  # fmt: skip


def stop(
    proc: subprocess.Popen[bytes] | None, folder: Path | None, name: str
) -> dict[str, Any] | None:
    """Stop the sampler; the summary of its profile, if it wrote one."""
    if proc is None or folder is None:
        return None
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    out = folder / f"{name}.collapsed.txt"
    if not out.exists():
        return None
    with out.open() as f:
        return {"file": str(out), **summarize_collapsed(f)}
