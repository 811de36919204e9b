"""Media work in a limited child: memory, wall time and `stop` end it; the operator's
process is untouched and learns why."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from controller.media.engine import AssemblyError
from controller.media.isolate import (
    Limits,
    MediaError,
    MediaLimitExceeded,
    MediaRunner,
    MediaStopped,
)
from controller.media.trim import NothingLeft
from controller.settings import Settings

MiB = 1024 * 1024


def allocate(mib: int) -> int:
    block = bytearray(mib * MiB)  # touched: really resident
    return len(block)


def child_pid() -> int:
    return os.getpid()


def fail(kind: str) -> None:
    if kind == "assembly":
        raise AssemblyError("clip-001.mp4: no video frames")
    raise NothingLeft(4.0, "leaves nothing of the 4.00 s clip")


def runner(memory_mb: int = 256, timeout: float = 60.0) -> MediaRunner:
    return MediaRunner(Limits(memory_mb * MiB, timeout))


def test_the_work_runs_in_another_process_and_returns_its_result() -> None:
    assert runner().run(child_pid) != os.getpid()
    assert runner().run(allocate, 16) == 16 * MiB


def test_memory_over_the_limit_fails_in_the_child_not_the_operator() -> None:
    with pytest.raises(MediaLimitExceeded, match="SCENE_OPERATOR_MEDIA_MEMORY_MB"):
        runner(memory_mb=128).run(allocate, 512)


def test_wall_time_over_the_limit_kills_the_child() -> None:
    started = time.monotonic()
    with pytest.raises(MediaLimitExceeded, match="SCENE_OPERATOR_MEDIA_TIMEOUT_SECONDS"):
        runner(timeout=1.0).run(time.sleep, 60)
    assert time.monotonic() - started < 10


def test_stop_kills_the_child_at_once() -> None:
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    with pytest.raises(MediaStopped):
        runner().run(time.sleep, 60, stop=stop)
    assert time.monotonic() - started < 5


def test_the_works_own_errors_come_back_as_they_were() -> None:
    with pytest.raises(AssemblyError, match="no video frames"):
        runner().run(fail, "assembly")
    with pytest.raises(NothingLeft) as got:
        runner().run(fail, "trim")
    assert got.value.source_seconds == 4.0


def test_one_slot_at_a_time_and_a_stop_while_waiting_for_it() -> None:
    r = runner()
    r.slots.acquire()  # another build holds the only slot
    stop = threading.Event()
    stop.set()
    with pytest.raises(MediaStopped):
        r.run(child_pid, stop=stop)
    r.slots.release()


def test_defaults_fit_the_shipped_pod() -> None:
    s = Settings()
    assert isinstance(MediaRunner.from_settings(s), MediaRunner)
    # the operator (about 250 MiB at its largest) and one child fit a 768 MiB limit
    assert 250 + s.media_memory_mb * s.assembly_concurrency <= 768
    assert s.max_assembly_pixels == 1920 * 1080
    assert issubclass(MediaLimitExceeded, MediaError)


def test_the_child_dies_with_the_operator(tmp_path) -> None:
    """A SIGKILLed operator leaves no media child running on (PR_SET_PDEATHSIG)."""
    import signal
    import subprocess
    import sys

    script = (
        "import time\n"
        "from controller.media.isolate import Limits, MediaRunner\n"
        "MediaRunner(Limits(256 * 1024 * 1024, 600.0)).run(time.sleep, 600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    children: list[str] = []
    while time.monotonic() < deadline and not children:
        out = subprocess.run(["pgrep", "-P", str(parent.pid)], capture_output=True, text=True)
        children = [c for c in out.stdout.split() if c]
        # the resource tracker is a child too; the media child runs spawn_main
        children = [
            c for c in children
            if "pipe_handle" in Path(f"/proc/{c}/cmdline").read_text(errors="replace")
        ]  # fmt: skip
        time.sleep(0.2)
    assert children, "no media child started"
    while time.monotonic() < deadline and "268435456" not in _limits(children[0]):
        time.sleep(0.2)  # until it has set its limits (and its death signal)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    gone_by = time.monotonic() + 10  # the death signal is immediate; this only bounds a slow reap
    while time.monotonic() < gone_by and any(_running(c) for c in children):
        time.sleep(0.05)
    assert not [c for c in children if _running(c)]


def _limits(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/limits").read_text()
    except OSError:
        return ""


def _running(pid: str) -> bool:
    """Alive and not a zombie (a container's init may reap late)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
