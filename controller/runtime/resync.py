"""The cache heals: objects deleted while a watch was down leave it.

kopf re-lists after a watch's resourceVersion expired (410 Gone) and delivers what the
LIST holds, but it says nothing of what the LIST lacks: an object deleted in the gap
stayed cached for good, a ghost holding a job slot and making a re-created Project of
the same name look planned. Like client-go's Reflector on a re-list (Replace), each
namespace the cache holds is LISTed every SCENE_OPERATOR_RESYNC_SECONDS, and a cached
object the LIST lacks is dropped as if its DELETED event had come, but only if the
cache saw it at an older resourceVersion than the LIST's: one created or written after
the LIST was served is not a ghost. Newer versions in the LIST are taken as events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping

from controller import vocabulary as v
from controller.runtime.intake import Intake
from controller.runtime.ports import KubeClient
from controller.store import Body, Key, Store, key_of, resource_version

log = logging.getLogger("scene_operator")


def ghosts(cached: Mapping[Key, int], listed: Iterable[Key], list_version: int) -> list[Key]:
    """Cached keys (with the resourceVersion cached) that a LIST served at
    `list_version` shows were deleted. Pure."""
    present = set(listed)
    return sorted(k for k, rv in cached.items() if k not in present and rv < list_version)


class Resync:
    def __init__(self, api: KubeClient, store: Store, intake: Intake) -> None:
        self.api = api
        self.store = store
        self.intake = intake

    async def run(self, interval: float) -> None:
        """Every `interval` seconds, each namespace the cache holds (0: never)."""
        if interval <= 0:
            return
        while True:
            await asyncio.sleep(interval)
            namespaces = {k[0] for k in self.store.projects} | {k[0] for k in self.store.scenes}
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
            items, version = await self.api.list_with_version(plural, namespace)
            for body in items:
                on_event(None, body)  # skipped unless newer than the cache
            cached = {k: resource_version(b) for k, b in cache.items() if k[0] == namespace}
            list_version = resource_version({"metadata": {"resourceVersion": version}})
            for key in ghosts(cached, (key_of(b) for b in items), list_version):
                body = cache.get(key)
                if body is None:
                    continue
                log.info(
                    "deleted while the watch was down: dropped from the cache",
                    extra={"namespace": key[0], "object": key[1], "kind": plural},
                )
                on_event("DELETED", body)
                dropped.append(key)
        return dropped
