"""Scratch space left by a killed operator: found by a lock only a live process holds.

Assemblies stream through a temporary directory that can reach
SCENE_OPERATOR_ASSEMBLY_MAX_BYTES. A process killed mid-assembly (SIGKILL, OOM) leaves
it behind, and a pod's emptyDir outlives its container restarts, so each process locks a
file in its own directory for its lifetime (flock: released by the kernel when the
process dies, however it dies) and, at start, removes sibling directories whose lock is
free. Directories without a lock file are never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path
from typing import IO

LOCK = ".alive.lock"
PATTERN = "scene-operator-*"  # the runtime's temporary directories (runtime/scenes.py)


def claim(folder: str) -> IO[bytes]:
    """Lock `folder` as live for as long as the returned file stays open."""
    handle = open(Path(folder) / LOCK, "wb")  # noqa: SIM115 - held for the process's life
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return handle


def sweep(folder: str) -> list[str]:
    """Remove the siblings of `folder` left by dead processes; returns their names."""
    removed = []
    own = Path(folder).resolve()
    for other in Path(folder).resolve().parent.glob(PATTERN):
        lock = other / LOCK
        if other == own or not lock.is_file():
            continue
        try:
            fd = os.open(lock, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # held: its process is alive
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(other, ignore_errors=True)
        removed.append(other.name)
    return removed
