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
    """Lock `folder` as live for as long as the returned file stays open.

    The file is locked under a name `sweep` ignores and renamed into place, so the lock
    file is never seen unheld while its process lives: a sweep that slipped between a
    plain open and flock would take the lock, drop it and remove a live directory."""
    staging = Path(folder) / f"{LOCK}.{os.getpid()}"
    handle = open(staging, "wb")  # noqa: SIM115 - held for the process's life
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.rename(staging, Path(folder) / LOCK)  # the open file and its lock follow the inode
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
            os.close(fd)
            continue  # held: its process is alive
        try:
            shutil.rmtree(other, ignore_errors=True)  # under the lock, released after
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
        removed.append(other.name)
    return removed
