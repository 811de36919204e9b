"""Workers start only after the first LIST of every watched namespace has filled the
cache (controller/informer/listing.py): a worker that ran on a half-filled cache just
after a restart counted a Project's budget from the Scenes delivered so far."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import kopf
from kopf._cogs.clients import watching
from kopf._core.reactor import queueing

from controller.api import vocabulary as v
from controller.informer import handlers, kopf_patches
from controller.informer.listing import PLURALS, InitialListing
from tests.unit.harness import NS, Harness

PROJECTS = kopf.Resource(v.GROUP, v.VERSION, v.PROJECT_PLURAL)
SCENES = kopf.Resource(v.GROUP, v.VERSION, v.SCENE_PLURAL)


def obj(uid: str) -> dict[str, Any]:
    return {"metadata": {"name": uid, "namespace": NS, "uid": uid, "resourceVersion": "1"}}


def fake_watch(listed: dict[str, list[str]], hold: asyncio.Event):
    """kopf's infinite_watch for a server whose LIST of each plural holds `listed`:
    the objects as type None, the bookmark LISTED, then a watch that stays quiet."""

    async def infinite_watch(**kwargs: Any) -> AsyncIterator[Any]:
        for uid in listed.get(kwargs["resource"].plural, []):
            yield {"type": None, "object": obj(uid)}
        yield watching.Bookmark.LISTED
        await hold.wait()

    return infinite_watch


def test_the_gate_opens_once_every_watch_listed_and_every_object_reached_the_cache() -> None:
    async def go() -> None:
        gate = InitialListing([NS], clusterwide=False)
        hold = asyncio.Event()
        wrapped = kopf_patches.watch_reporting_to(
            gate, fake_watch({"scenes": ["s1", "s2"], "projects": ["p1"]}, hold), PLURALS
        )
        scenes = wrapped(resource=SCENES, namespace=NS)
        assert await anext(scenes) == {"type": None, "object": obj("s1")}
        await anext(scenes), await anext(scenes)  # s2, LISTED
        assert gate.listed == {("scenes", NS)} and not gate.done.is_set()
        projects = wrapped(resource=PROJECTS, namespace=NS)
        await anext(projects), await anext(projects)  # p1, LISTED
        assert not gate.done.is_set()  # listed, but not delivered to the cache yet
        for uid in ("s1", "p1"):
            gate.delivered(obj(uid))
        assert not gate.done.is_set()
        gate.delivered(obj("s2"))
        assert gate.done.is_set()
        hold.set()

    asyncio.run(go())


def test_a_namespace_not_listed_yet_keeps_it_closed_and_other_kinds_do_not_count() -> None:
    gate = InitialListing(["a", "b"], clusterwide=False)
    for stream in [("projects", "a"), ("scenes", "a"), ("projects", "b")]:
        gate.stream_listed(stream)
    assert not gate.done.is_set()
    gate.stream_listed(("scenes", "b"))
    assert gate.done.is_set()
    # Cluster-wide: one watch per plural; patterns wait for the watches kopf starts.
    wide = InitialListing(clusterwide=True)
    assert wide.expected == {("projects", None), ("scenes", None)}
    assert InitialListing(["team-*"], clusterwide=False).expected == set()


def test_kopfs_own_watcher_goes_through_the_gate(monkeypatch: Any) -> None:
    """The hook is where kopf's watcher really looks: queueing.watcher, fed by a fake
    server, delivers through the operator's processor and opens the gate."""

    async def go() -> None:
        hold = asyncio.Event()
        monkeypatch.setattr(watching, "infinite_watch", fake_watch({"scenes": ["s1", "s2"]}, hold))
        gate = InitialListing(clusterwide=True)
        gate.expected = {("scenes", None)}
        kopf_patches.install_listing(gate, PLURALS)
        delivered: list[str] = []

        async def processor(*, raw_event: dict[str, Any], **_: Any) -> None:
            await asyncio.sleep(0.05)  # kopf's per-object task runs the handlers later
            delivered.append(raw_event["object"]["metadata"]["uid"])
            gate.delivered(raw_event["object"])

        settings = kopf.OperatorSettings()
        handlers.configure_kopf(settings)
        task = asyncio.create_task(
            queueing.watcher(
                namespace=None, settings=settings, resource=SCENES, processor=processor
            )
        )
        await asyncio.wait_for(gate.done.wait(), 5)
        assert sorted(delivered) == ["s1", "s2"]  # open only after both reached the cache
        task.cancel()
        hold.set()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(go())


def test_workers_take_no_key_before_the_gate_opens() -> None:
    h = Harness()

    async def go() -> None:
        gate = InitialListing([NS], clusterwide=False)
        h.runtime.worker.ready = gate.opened
        workers = asyncio.create_task(h.runtime.worker.run(2))
        h.project(scenes={"count": 1, "durationSeconds": 4})
        h.deliver()  # the Project's event reached the cache: a key is queued
        await asyncio.sleep(0.2)
        assert len(h.runtime.queue) == 1 and h.scene_names() == []  # nothing ran
        for stream in gate.expected:
            gate.stream_listed(stream)
        await asyncio.sleep(0.2)
        assert h.scene_names() == ["p-scene-001"]  # planned once the gate opened
        workers.cancel()
        await asyncio.gather(workers, return_exceptions=True)

    asyncio.run(go())


def test_a_gate_that_never_opens_lets_the_workers_start_after_its_timeout() -> None:
    async def go() -> None:
        gate = InitialListing([NS], clusterwide=False)
        await asyncio.wait_for(gate.opened(seconds=0.05), 1)
        assert gate.done.is_set()

    asyncio.run(go())
