"""Paid outputs kept on local disk while their upload is retried.

A succeeded job's output is paid for; when its upload (or the S3 verify) fails, the
checked file stays here and the next try uploads it again without downloading it (no
new job, no second download). The space is bounded (SCENE_OPERATOR_KEPT_OUTPUTS_MAX_BYTES):
a file that does not fit is deleted and the next try downloads it again from the
provider while its output URL is valid. The files live in the runtime's temporary
directory, which a later process removes if this one is killed (assembly/scratch.py);
after a restart the output is downloaded again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from controller.informer.cache import Key


@dataclass
class Kept:
    job_id: str
    path: Path
    size: int = 0  # 0: no file kept (it did not fit, or the download has not happened)
    failures: int = 0  # uploads of this job's output that failed in a row


class KeptOutputs:
    def __init__(self, folder: str | Path, max_bytes: int) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.entries: dict[Key, Kept] = {}

    @property
    def used(self) -> int:
        return sum(k.size for k in self.entries.values())

    def entry(self, scene: Key, job_id: str, path: Path) -> Kept:
        """The record of this Scene's job; one of an earlier job is dropped (its file too)."""
        kept = self.entries.get(scene)
        if kept is not None and kept.job_id == job_id:
            if kept.size and not kept.path.is_file():
                kept.size = 0  # removed behind our back: download again
            return kept
        self.drop(scene)
        kept = self.entries[scene] = Kept(job_id, path)
        return kept

    def keep(self, scene: Key) -> bool:
        """Keep the downloaded file of `scene` for the next upload try, if it fits."""
        kept = self.entries.get(scene)
        if kept is None:
            return False
        if kept.size:
            return True
        try:
            size = kept.path.stat().st_size
        except FileNotFoundError:
            return False
        if self.used + size > self.max_bytes:
            _unlink(kept.path)
            return False
        kept.size = size
        return True

    def discard_file(self, scene: Key) -> None:
        """Delete the file but keep counting failures (a download that failed or did not fit)."""
        kept = self.entries.get(scene)
        if kept is not None:
            _unlink(kept.path)
            kept.size = 0

    def drop(self, scene: Key) -> None:
        """The output is stored, abandoned or its Scene gone: forget it and free its space."""
        kept = self.entries.pop(scene, None)
        if kept is not None:
            _unlink(kept.path)

    def prune(self, live: Callable[[Key, str], bool]) -> None:
        """Drop every entry whose Scene no longer records that job in flight."""
        for scene, kept in list(self.entries.items()):
            if not live(scene, kept.job_id):
                self.drop(scene)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
