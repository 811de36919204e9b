"""The first LIST: workers start only once it has filled the cache.

kopf starts a watch per resource and namespace with a LIST, yields each listed object,
then the bookmark LISTED (kopf._cogs.clients.watching), and hands each object to a
per-object task that calls the handlers (controller/informer/handlers.py) a moment later.
A worker started before that saw a half-filled cache just after a restart: a Scene's
budget_left counted only the Scenes delivered so far. So the work queue's workers wait
(Worker.ready) until, for every Project and Scene watch of the namespaces served, kopf
has yielded LISTED and every object it listed has reached the cache. Later re-lists do
not close the gate again (informer/resync.py heals those).

kopf_patches.install_listing wraps kopf's watch stream to report to this gate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from controller.api import vocabulary as v

log = logging.getLogger("scene_operator")

PLURALS = (v.PROJECT_PLURAL, v.SCENE_PLURAL)
# Opened anyway after this long, with a warning: a stuck gate must not hold every worker.
LISTING_TIMEOUT_SECONDS = 300.0
Stream = tuple[str, str | None]  # (plural, namespace or None cluster-wide)


class InitialListing:
    """Open (`done` set) once every expected watch has listed and delivered its objects."""

    def __init__(self, namespaces: Iterable[str] = (), *, clusterwide: bool = True) -> None:
        # Names known up front; patterns (kopf resolves them later) are not waited for
        # by name, only once their watches start.
        names = [None] if clusterwide else [n for n in namespaces if not _pattern(n)]
        self.expected: set[Stream] = {(p, ns) for p in PLURALS for ns in names}
        self.started: set[Stream] = set()
        self.listed: set[Stream] = set()
        self.pending: set[str] = set()  # uids listed, not yet delivered to the cache
        self.done = asyncio.Event()

    def stream_started(self, stream: Stream) -> None:
        self.started.add(stream)

    def object_listed(self, raw: dict[str, Any]) -> None:
        if not self.done.is_set() and (uid := _uid(raw)):
            self.pending.add(uid)

    def stream_listed(self, stream: Stream) -> None:
        self.listed.add(stream)
        self._check()

    def delivered(self, body: dict[str, Any]) -> None:
        """A watch event reached the cache (any type: a listed object may be delivered
        as its later MODIFIED or DELETED, kopf keeps only an object's latest event)."""
        if not self.done.is_set() and self.pending:
            self.pending.discard(_uid({"object": body}) or "")
            self._check()

    def _check(self) -> None:
        if self.done.is_set() or self.pending:
            return
        if (self.expected | self.started) <= self.listed and self.listed:
            log.info("initial listing done: workers start", extra={"watches": len(self.listed)})
            self.done.set()

    async def opened(self, seconds: float = LISTING_TIMEOUT_SECONDS) -> None:
        """Returns once the gate is open (Worker.ready), or after `seconds` in any case."""
        try:
            await asyncio.wait_for(self.done.wait(), seconds)
        except TimeoutError:
            waiting = sorted(f"{p}@{ns or '*'}" for p, ns in self.expected | self.started)
            log.warning(
                "initial listing not done: workers start anyway",
                extra={
                    "after_seconds": seconds,
                    "watches": waiting,
                    "undelivered": len(self.pending),
                },
            )
            self.done.set()

    def is_open(self) -> bool:
        return self.done.is_set()


def _uid(raw: dict[str, Any]) -> str | None:
    return ((raw.get("object") or {}).get("metadata") or {}).get("uid")


def _pattern(name: str) -> bool:
    return any(c in name for c in "*?[!,")
