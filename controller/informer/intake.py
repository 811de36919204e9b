"""Intake: watch events into the cache, and the keys they make due.

Echoes of the operator's own writes (cached from the write's response) and re-lists are
skipped by resourceVersion; a Project change reaches its Scenes only when something
they read changed; Scenes are LISTed once per namespace, before its first planning.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from controller.api import vocabulary as v
from controller.decide.scene import WAITING_NOTICE_SECONDS
from controller.decide.timeutil import utcnow
from controller.informer.cache import Body, Key, Store, key_of, project_of_scene, resource_version
from controller.queue.state import Kind
from controller.queue.workqueue import WorkQueue

PROJECT_RECOUNT_DELAY = 0.5  # coalesce bursts of scene events into one project recount


class ObjectMemory(Protocol):
    """Per-object memory, forgotten when its object is deleted (controllers/memory.py)."""

    scenes: dict[Key, Any]
    projects: dict[Key, Any]
    waiting_since: dict[Key, dt.datetime]


class Lister(Protocol):
    """The API's paged LIST (controller/kube/client.py: KubeApi.list_pages)."""

    def list_pages(self, plural: str, namespace: str) -> AsyncIterator[tuple[list[Body], str]]: ...


class Slots(Protocol):
    """Parked Scenes (controllers/capacity.py: Capacity): a deleted one leaves its place,
    and `wake` names those a freed slot or budget lets go."""

    def unpark(self, scene: Key) -> None: ...

    def wake(self) -> list[Key]: ...

    def admit(self, scene: Key, provider: str, project: Key) -> bool: ...


class Intake:
    """The event side: it caches and queues, and never acts. What a deleted Scene leaves
    to be done (its job canceled) is handed to `on_scene_deleted`, given by the
    composition root (controller/app.py), and done by the worker when its key runs."""

    def __init__(
        self,
        store: Store,
        queue: WorkQueue,
        slots: Slots,
        memory: ObjectMemory,
        api: Lister,
        *,
        on_scene_deleted: Callable[[Key, Body], None] = lambda key, body: None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.store = store
        self.queue = queue
        self.slots = slots
        self.memory = memory
        self.api = api
        self.on_scene_deleted = on_scene_deleted
        self.now = clock  # the decisions' clock: when a planned Scene started to wait
        # One LIST of Scenes per namespace before its first planning.
        self.namespace_lists: dict[str, asyncio.Future[None]] = {}

    # ------------------------------------------------------------------ watch events
    def on_scene_event(self, kind: str | None, body: Body) -> None:
        key = key_of(body)
        if kind == "DELETED":
            self.on_scene_deleted(key, body)  # e.g. its job, canceled when the key runs
            self.store.delete_scene(key)
            self.memory.scenes.pop(key, None)
            self.slots.unpark(key)
        else:
            if _same_version(self.store.scenes.get(key), body):
                return  # the echo of our own write (cached from its response) or a re-list
            if not self.store.upsert_scene(body):
                return
        self.enqueue_scene(key)
        self.recount(project_of_scene(body))
        self.wake()

    def scene_planned(self, body: Body, provider: str) -> None:
        """A Scene this operator created for a plan (or found created by an earlier
        process). One never decided has its first pass only if a job slot of `provider`
        is free for it (held for it until then); otherwise it waits in the slot line from
        the start, and comes back for the Waiting notice if the wait is long."""
        key = key_of(body)
        if body.get("status") or key in self.store.scenes:
            self.on_scene_event(None, body)
            return
        if not self.store.upsert_scene(body):
            return
        project = project_of_scene(body)
        if self.slots.admit(key, provider, project):
            self.enqueue_scene(key)
        else:
            self.memory.waiting_since.setdefault(key, self.now())
            self.queue.add_after((Kind.SCENE, *key), WAITING_NOTICE_SECONDS)
        self.recount(project)
        self.wake()

    def on_project_event(self, kind: str | None, body: Body) -> None:
        key = key_of(body)
        old = self.store.projects.get(key)
        if kind == "DELETED":
            self.store.delete_project(key)
            self.memory.projects.pop(key, None)
        else:
            if _same_version(old, body):
                return  # the echo of our own write, or a re-list
            if not self.store.upsert_project(body):
                return
        self.queue.add((Kind.PROJECT, *key))
        # Scenes read only these from their Project; its status writes concern no Scene.
        if kind == "DELETED" or old is None or _what_scenes_read(old) != _what_scenes_read(body):
            for name in self.store.scene_names_of(key):
                self.enqueue_scene((key[0], name))

    # ------------------------------------------------------------------ keys made due
    def enqueue_scene(self, key: Key, delay: float = 0.0) -> None:
        """Scenes with a paid job in flight go in the urgent lane: finishing work that is
        paid for never waits behind new or idle Scenes."""
        self.queue.add_after((Kind.SCENE, *key), delay, urgent=self.scene_is_urgent(key))

    def scene_is_urgent(self, key: Key) -> bool:
        body = self.store.scenes.get(key)
        return bool(body and (body.get("status") or {}).get("generation"))

    def cache_scene(self, body: Body) -> None:
        """Cache a Scene we wrote or read; its watch echo will be skipped, so schedule the
        Project recount here."""
        if self.store.upsert_scene(body):
            self.recount(project_of_scene(body))

    def drop_scene(self, key: Key) -> None:
        """A Scene the API no longer has (read back after a failed write)."""
        self.store.delete_scene(key)

    def recount(self, project: Key) -> None:
        """A Project recount after its Scenes changed: coalesced, and urgent, since it is
        what turns finished work into a Ready Project."""
        self.queue.add_after((Kind.PROJECT, *project), PROJECT_RECOUNT_DELAY, urgent=True)

    def schedule(self, kind: Kind, key: Key, delay: float) -> None:
        """Make another object's key due later (a Project's drift check, a Project whose
        Scene Events are due, a Project whose final video was built). Never the key a
        pass runs: that one is requeued by the worker, from the pass's Result."""
        self.queue.add_after((kind, *key), delay)

    def wake(self) -> None:
        for key in self.slots.wake():
            self.queue.add((Kind.SCENE, *key))

    # ------------------------------------------------------------------ listing
    async def list_namespace_once(self, namespace: str) -> None:
        """One LIST of a namespace's Scenes into the cache, shared by concurrent callers."""
        listing = self.namespace_lists.get(namespace)
        if listing is None:
            listing = asyncio.ensure_future(self._list_namespace(namespace))
            self.namespace_lists[namespace] = listing
        await asyncio.shield(listing)

    async def _list_namespace(self, namespace: str) -> None:
        try:  # page by page: one page of bodies held at a time, not the namespace's
            async for scenes, _ in self.api.list_pages(v.SCENE_PLURAL, namespace):
                for scene in scenes:
                    self.on_scene_event(None, scene)
        except BaseException:
            self.namespace_lists.pop(namespace, None)  # the next planning lists again
            raise


def _same_version(cached: Body | None, body: Body) -> bool:
    rv = resource_version(body)
    return cached is not None and rv != 0 and rv == resource_version(cached)


def _what_scenes_read(project: Body) -> tuple[Any, ...]:
    """What a Scene's decision reads from its Project: identity, spec (its generation
    moves with every spec change), deletion, the tokens and the pause annotation."""
    meta = project.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return (
        meta.get("uid"),
        meta.get("generation"),
        meta.get("deletionTimestamp"),
        annotations.get(v.ANNOTATION_REGENERATE),
        annotations.get(v.ANNOTATION_RETRY),
        annotations.get(v.ANNOTATION_PAUSED),
    )
