"""The cache heals: objects deleted while a watch was down leave it.

kopf re-lists after a watch's resourceVersion expired (410 Gone) and delivers what the
LIST holds, but it says nothing of what the LIST lacks: an object deleted in the gap
stayed cached for good, a ghost holding a job slot and making a re-created Project of
the same name look planned. Like client-go's Reflector on a re-list (Replace), each
namespace the cache holds is LISTed every SCENE_OPERATOR_RESYNC_SECONDS, and a cached
object the LIST lacks is dropped as if its DELETED event had come, but only if the
cache saw it at an older resourceVersion than the LIST's: one created or written after
the LIST was served is not a ghost. Newer versions in the LIST are taken as events.
A re-list by kopf (an object already cached delivered again as listed) makes its
namespace due at once, RELIST_SETTLE_SECONDS later, rather than at the next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Protocol

from controller.api import vocabulary as v
from controller.informer.cache import Body, Key, Store, key_of, resource_version
from controller.informer.intake import Intake

log = logging.getLogger("scene_operator")


def ghosts(cached: Mapping[Key, int], listed: Iterable[Key], list_version: int) -> list[Key]:
    """Cached keys (with the resourceVersion cached) that a LIST served at
    `list_version` shows were deleted. Pure."""
    present = set(listed)
    return sorted(k for k, rv in cached.items() if k not in present and rv < list_version)


RELIST_SETTLE_SECONDS = 2.0  # a re-list's events arrive over a moment: LIST after them


class Lister(Protocol):
    """What a resync reads: a namespace's objects, page by page (kube/client.py)."""

    def list_pages(self, plural: str, namespace: str) -> AsyncIterator[tuple[list[Body], str]]: ...


class Resync:
    def __init__(self, api: Lister, store: Store, intake: Intake) -> None:
        self.api = api
        self.store = store
        self.intake = intake
        self.due: set[str] = set()  # namespaces kopf re-listed
        self._wake = asyncio.Event()

    def relisted(self, namespace: str) -> None:
        """kopf LISTed again (after 410 Gone): what it did not deliver may be ghosts."""
        self.due.add(namespace)
        self._wake.set()

    async def run(self, interval: float) -> None:
        """Every `interval` seconds each namespace the cache holds, and a namespace kopf
        re-listed soon after (0: never). One loop, no task per namespace."""
        if interval <= 0:
            return
        loop = asyncio.get_running_loop()
        next_round = loop.time() + interval
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(next_round - loop.time(), 0.0)):
                    await self._wake.wait()
            if self._wake.is_set():
                self._wake.clear()
                await asyncio.sleep(RELIST_SETTLE_SECONDS)
                namespaces, self.due = self.due, set()
            else:
                namespaces = {k[0] for k in self.store.projects} | {k[0] for k in self.store.scenes}
                next_round = loop.time() + interval
            for namespace in sorted(namespaces):
                try:
                    await self.namespace(namespace)
                except Exception as e:  # an outage: the next round tries again
                    log.warning(
                        "cache resync failed", extra={"namespace": namespace, "error": str(e)}
                    )

    async def namespace(self, namespace: str) -> list[Key]:
        """LIST a namespace's Scenes and Projects; drop the ghosts; returns them."""
        dropped = []
        kinds: tuple[tuple[str, dict[Key, Body], Callable[[str | None, Body], None]], ...] = (
            (v.SCENE_PLURAL, self.store.scenes, self.intake.on_scene_event),
            (v.PROJECT_PLURAL, self.store.projects, self.intake.on_project_event),
        )
        for plural, cache, on_event in kinds:
            # Page by page: only the keys of what was listed are kept, not the bodies.
            listed: set[Key] = set()
            version = ""
            async for items, page_version in self.api.list_pages(plural, namespace):
                for body in items:
                    on_event(None, body)  # skipped unless newer than the cache
                    listed.add(key_of(body))
                version = page_version  # the snapshot's (a LIST started over: the new one's)
                del items
            cached = {k: resource_version(b) for k, b in cache.items() if k[0] == namespace}
            list_version = resource_version({"metadata": {"resourceVersion": version}})
            for key in ghosts(cached, listed, list_version):
                gone = cache.get(key)
                if gone is None:
                    continue
                log.info(
                    "deleted while the watch was down: dropped from the cache",
                    extra={"namespace": key[0], "object": key[1], "kind": plural},
                )
                on_event("DELETED", gone)
                dropped.append(key)
        return dropped
