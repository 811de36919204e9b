"""The gate between uploads and a Project's deletion (deletionPolicy Delete).

The finalizer closes the Project's prefix, waits for the uploads already under way
there, and only then deletes it: an upload that starts after the close is refused, so
none lands after the delete (a Scene pass that was downloading when the Project was
deleted would otherwise upload into a prefix that was just emptied, and the object
would outlive its Project). Closed prefixes stay closed: a prefix holds the Project's
uid, and is never used again.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from controller.storage.clips import ObjectFact, StorageError

PROJECT_DELETING = "ProjectDeleting"


class UploadGate:
    """Thread-safe: uploads run in I/O threads."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._closed: set[tuple[str, str]] = set()
        self._busy: Counter[tuple[str, str]] = Counter()  # uploads under way, by key

    def enter(self, bucket: str, key: str) -> None:
        with self._cond:
            if any(b == bucket and key.startswith(p) for b, p in self._closed):
                raise StorageError(
                    False,
                    f"upload to s3://{bucket}/{key} refused: its Project is being deleted",
                    code=PROJECT_DELETING,
                )
            self._busy[(bucket, key)] += 1

    def leave(self, bucket: str, key: str) -> None:
        with self._cond:
            self._busy[(bucket, key)] -= 1
            if self._busy[(bucket, key)] <= 0:
                del self._busy[(bucket, key)]
            self._cond.notify_all()

    def close(self, bucket: str, prefix: str, timeout: float) -> bool:
        """Refuse new uploads under `prefix`; wait up to `timeout` seconds for those under
        way. True when none is left."""
        with self._cond:
            self._closed.add((bucket, prefix))
            return self._cond.wait_for(
                lambda: not any(b == bucket and k.startswith(prefix) for b, k in self._busy),
                timeout,
            )


class GatedClips:
    """The clip store with every upload passing the gate; everything else as is."""

    def __init__(self, inner: Any, gate: UploadGate) -> None:
        self._inner = inner
        self.gate = gate

    def put_clip(self, bucket: str, key: str, path: Any, *, metadata: dict[str, str]) -> ObjectFact:
        self.gate.enter(bucket, key)
        try:
            return self._inner.put_clip(bucket, key, path, metadata=metadata)
        finally:
            self.gate.leave(bucket, key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
