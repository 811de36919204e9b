"""A Scene's status write: a merge patch of the difference, with a resourceVersion
precondition unless told otherwise; the object the API answers is cached."""

from __future__ import annotations

from collections.abc import Callable

from controller.api import vocabulary as v
from controller.api.scene import SceneStatus
from controller.controllers.ports import Body, Key, KubeClient, SceneCache
from controller.decide.patching import merge_patch
from controller.informer.cache import key_of
from controller.kube.errors import ApiError


class StatusWriter:
    def __init__(
        self,
        api: KubeClient,
        cache: SceneCache,
        written: Callable[[Key, SceneStatus], None] = lambda key, status: None,
    ) -> None:
        self.api = api
        self.cache = cache
        self.written = written  # after each write that landed (duplicates.py: the marker)

    async def write(self, body: Body, new: SceneStatus, *, precondition: bool = True) -> bool:
        """Merge-patch status; with the precondition, a stale cache fails with a conflict:
        the fresh object is cached and False returned."""
        old = body.get("status") or {}
        patch = merge_patch(old, new.wire())
        if not patch:
            return True
        ns, name = key_of(body)
        rv = body["metadata"].get("resourceVersion") if precondition else None
        try:
            updated = await self.api.patch_status(
                v.SCENE_PLURAL, ns, name, patch, resource_version=rv
            )
        except ApiError as e:
            if e.conflict or e.not_found:
                fresh = await self.api.get(v.SCENE_PLURAL, ns, name)
                if fresh is None:
                    self.cache.drop_scene((ns, name))
                else:
                    self.cache.cache_scene(fresh)
                return False
            raise
        self.cache.cache_scene(updated)
        self.written((ns, name), new)
        return True
