"""Media work (assembly, trims) in a child process with limits: memory, CPU time, wall time.

PyAV and numpy allocate per frame (a 3840x2160 frame letterboxed in numpy is tens of MiB),
and a container that outgrows its memory limit is OOM-killed whole: the operator with it.
So the work runs in a child started with the `spawn` context (the operator has threads:
a fork could inherit a lock held by one of them), which sets, before it does anything:

- RLIMIT_DATA (heap and private mappings) to SCENE_OPERATOR_MEDIA_MEMORY_MB: an allocation
  past it fails in the child (MemoryError, or an FFmpeg ENOMEM), the operator is untouched;
- RLIMIT_CPU to the wall-clock timeout (the kernel sends SIGXCPU, then SIGKILL);

and the parent kills it at SCENE_OPERATOR_MEDIA_TIMEOUT_SECONDS of wall time, or as soon
as `stop` is set (its Project deleted, the build abandoned), checking every 0.2 s.
At most `concurrency` children run at once (one slot each), so their limits add up to a
known total under the pod's memory limit.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import resource
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MiB = 1024 * 1024
POLL_SECONDS = 0.2
M_ARENA_MAX = -8  # mallopt's parameter number (glibc malloc.h)
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)
KILL_GRACE_SECONDS = 5.0  # between RLIMIT_CPU's soft (SIGXCPU) and hard (SIGKILL) limits


class MediaError(Exception):
    """The media work did not finish: a limit was reached, it was stopped or it crashed."""


class MediaLimitExceeded(MediaError):
    """Out of memory, CPU time or wall time (SCENE_OPERATOR_MEDIA_*)."""


class MediaStopped(MediaError):
    """Killed because its work was abandoned (`stop` was set)."""


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    timeout_seconds: float


@dataclass
class MediaRunner:
    """Runs media functions in limited children, `concurrency` at once."""

    limits: Limits
    concurrency: int = 1
    slots: threading.BoundedSemaphore = field(init=False)

    def __post_init__(self) -> None:
        self.slots = threading.BoundedSemaphore(self.concurrency)

    @classmethod
    def from_settings(cls, settings: Any) -> MediaRunner:
        limits = Limits(
            memory_bytes=settings.media_memory_mb * MiB,
            timeout_seconds=settings.media_timeout_seconds,
        )
        return cls(limits, settings.assembly_concurrency)

    def run(
        self, fn: Callable[..., Any], *args: Any, stop: threading.Event | None = None, **kw: Any
    ) -> Any:
        """Blocking: `fn(*args, **kw)` in a child (fn and its arguments must pickle: a
        module-level function). Its exceptions are raised here; MediaError otherwise."""
        while not self.slots.acquire(timeout=POLL_SECONDS):
            if stop is not None and stop.is_set():
                raise MediaStopped("stopped before it started")
        try:
            return run_limited(fn, args, kw, self.limits, stop)
        finally:
            self.slots.release()


def run_limited(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kw: dict[str, Any],
    limits: Limits,
    stop: threading.Event | None,
) -> Any:
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(
        target=_child,
        args=(send, fn, args, kw, limits, os.getpid()),
        name="scene-operator-media",
        daemon=True,
    )
    child.start()
    send.close()  # the child holds the only write end: EOF when it dies
    deadline = time.monotonic() + limits.timeout_seconds
    try:
        while True:
            ready = multiprocessing.connection.wait([receive, child.sentinel], POLL_SECONDS)
            if receive in ready:
                try:
                    outcome = receive.recv()
                except EOFError:
                    outcome = None
                break
            if child.sentinel in ready:
                outcome = None
                break
            if stop is not None and stop.is_set():
                raise MediaStopped("stopped: its work was abandoned")
            if time.monotonic() > deadline:
                raise MediaLimitExceeded(
                    f"media work ran past {limits.timeout_seconds:g} s "
                    "(SCENE_OPERATOR_MEDIA_TIMEOUT_SECONDS)"
                )
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receive.close()
    if outcome is None:
        raise _died(child.exitcode, limits)
    kind, value = outcome
    if kind == "ok":
        return value
    raise value


def _died(code: int | None, limits: Limits) -> MediaError:
    if code == -signal.SIGXCPU or code == -signal.SIGKILL:
        return MediaLimitExceeded(
            f"media work used its CPU time ({limits.timeout_seconds:g} s, "
            "SCENE_OPERATOR_MEDIA_TIMEOUT_SECONDS) and was killed"
        )
    if code is not None and -code in (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS):
        # FFmpeg and x264 do not all survive a failed allocation: a crash under the
        # limit is its most likely cause
        return MediaLimitExceeded(
            f"media work crashed ({signal.Signals(-code).name}), most likely out of memory: "
            f"over {limits.memory_bytes // MiB} MiB (SCENE_OPERATOR_MEDIA_MEMORY_MB)"
        )
    if code is not None and code < 0:
        return MediaError(f"media work died of signal {signal.Signals(-code).name}")
    return MediaError(f"media work exited with code {code} without a result")


def _child(
    send: Any,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kw: dict[str, Any],
    limits: Limits,
    parent: int,
) -> None:
    set_limits(limits)
    if os.getppid() != parent:  # the operator died before the death signal was set
        os._exit(1)
    try:
        outcome: tuple[str, Any] = ("ok", fn(*args, **kw))
    except MemoryError:
        outcome = ("error", _memory(limits))
    except Exception as e:
        outcome = ("error", _memory(limits)) if _is_enomem(e) else ("error", _portable(e))
    send.send(outcome)
    send.close()


def set_limits(limits: Limits) -> None:
    """In the child, before the work: memory and CPU time. One malloc arena: glibc
    reserves 64 MiB of address space per thread's arena, which RLIMIT_DATA counts."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_ARENA_MAX, 1)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # never outlive a killed operator
    mem = max(limits.memory_bytes, 64 * MiB)
    resource.setrlimit(resource.RLIMIT_DATA, (mem, mem))
    cpu = max(1, int(limits.timeout_seconds + 0.999))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + int(KILL_GRACE_SECONDS)))


def _memory(limits: Limits) -> MediaLimitExceeded:
    return MediaLimitExceeded(
        f"media work needed more than {limits.memory_bytes // MiB} MiB "
        "(SCENE_OPERATOR_MEDIA_MEMORY_MB)"
    )


def _is_enomem(e: BaseException) -> bool:
    import errno

    # A shared library the work imports late (PyAV's) that cannot be mapped under the
    # limit fails as an ImportError, not a MemoryError: the same cause.
    text = str(e)
    return (
        getattr(e, "errno", None) == errno.ENOMEM
        or "Cannot allocate memory" in text
        or "failed to map segment from shared object" in text
    )


def _portable(e: Exception) -> Exception:
    """The exception itself when it survives pickling, else a MediaError with its text."""
    import pickle

    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        text = "".join(traceback.format_exception_only(type(e), e)).strip()
        return MediaError(text[:2000])
