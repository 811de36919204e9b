"""Child processes of the embedded control plane: own process group, log file, death signal."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1
try:
    _libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # not Linux/glibc: rely on atexit and explicit stop() only
    _libc = None


def _preexec(parent_pid: int) -> None:
    # Runs in the child between fork and exec: if the test process dies without running
    # atexit (SIGKILL, SIGTERM), the kernel kills the child too. The death signal fires
    # when the *forking thread* exits, so this is only used when forking from the main thread.
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # parent already gone before prctl took effect
        os._exit(1)


class Process:
    """One child in its own process group, logging to a file."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        main = threading.current_thread() is threading.main_thread()
        parent = os.getpid()
        self.popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Own session: a terminal Ctrl-C does not hit the children before our orderly stop,
            # and killpg() also reaches anything they fork.
            start_new_session=True,
            preexec_fn=(lambda: _preexec(parent)) if main else None,
        )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds (at once if grace is 0)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
            try:
                self.popen.wait(grace if grace > 0 else None)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._log.close()

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return f"--- {self.name} ({self.log_path}) ---\n{tail_text(text, lines)}"


def tail_text(text: str, lines: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
