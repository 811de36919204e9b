"""The cache heals: objects deleted while the watch was down (their DELETED events lost)
leave the cache at the next resync, release their job slots, and a re-created Project
of the same name is planned again."""

from __future__ import annotations

import asyncio

import pytest

from controller.api import vocabulary as v
from controller.informer import resync
from controller.informer.resync import ghosts
from tests.unit.harness import NS, Harness

A, B, C = (NS, "a"), (NS, "b"), (NS, "c")


@pytest.mark.parametrize(
    ("cached", "listed", "version", "expected"),
    [
        pytest.param({A: 5, B: 6}, [A], 10, [B], id="absent-and-older-is-a-ghost"),
        pytest.param({A: 5, C: 11}, [A], 10, [], id="written-after-the-list-is-kept"),
        pytest.param({A: 5, B: 10}, [A], 10, [], id="at-the-list-version-is-kept"),
        pytest.param({A: 5}, [A, B], 10, [], id="listed-is-kept"),
        pytest.param({}, [A], 10, [], id="nothing-cached"),
    ],
)
def test_ghosts(cached, listed, version, expected) -> None:
    assert ghosts(cached, listed, version) == expected


def test_objects_deleted_while_the_watch_was_down_leave_the_cache() -> None:
    h = Harness()
    h.replicate.polls = 1000  # the jobs stay in flight: each Scene holds a slot

    async def go() -> None:
        h.project()
        await h.settle(seconds=1)
        assert h.runtime.capacity.inflight_by_provider["replicate"] == 2
        old_uid = h.kube.obj(v.PROJECT_PLURAL, NS, "p")["metadata"]["uid"]
        # The watch is down: the deletions happen, their events never arrive.
        for name in h.scene_names():
            h.kube.delete(v.SCENE_PLURAL, NS, name)
        h.kube.delete(v.PROJECT_PLURAL, NS, "p")
        h.pending.clear()
        # Back up: the same name again, a new Project (its ADDED event arrives).
        h.project()
        await h.settle(seconds=5)
        assert h.scene_names() == []  # the ghosts make it look planned: nothing happens
        assert h.runtime.capacity.inflight_by_provider["replicate"] == 2  # slots held

        dropped = await h.runtime.resync.namespace(NS)
        assert sorted(dropped) == [(NS, "p-scene-001"), (NS, "p-scene-002")]
        assert h.runtime.capacity.inflight_by_provider["replicate"] == 0  # slots released
        h.replicate.polls = 0
        await h.settle(seconds=120)
        new_uid = h.kube.obj(v.PROJECT_PLURAL, NS, "p")["metadata"]["uid"]
        assert new_uid != old_uid
        assert h.scene_names() == ["p-scene-001", "p-scene-002"]
        owners = {h.scene(n)["metadata"]["ownerReferences"][0]["uid"] for n in h.scene_names()}
        assert owners == {new_uid}
        assert h.phases() == {"p-scene-001": "Completed", "p-scene-002": "Completed"}

    asyncio.run(go())


def test_a_project_created_after_the_list_is_not_dropped() -> None:
    """A create racing the resync: cached (from its watch event) at a newer
    resourceVersion than the LIST the resync got, so it stays."""
    h = Harness()

    async def go() -> None:
        listed = await h.kube.list_with_version(v.PROJECT_PLURAL, NS)
        h.project(generateVideos=False)
        h.deliver()
        real = h.kube.list_with_version

        async def stale(plural: str, namespace: str):  # the LIST served before the create
            return listed if plural == v.PROJECT_PLURAL else await real(plural, namespace)

        h.kube.list_with_version = stale  # type: ignore[method-assign]
        assert await h.runtime.resync.namespace(NS) == []
        assert (NS, "p") in h.runtime.store.projects

    asyncio.run(go())


@pytest.mark.parametrize("by", ["relist", "round"])
def test_the_resync_loop_drops_ghosts(by: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`relist`: kopf delivers a cached object again as listed (type None): it re-listed
    after a 410, so its namespace is resynced now, not at the next round an hour later.
    `round`: the periodic LIST alone (an emptied namespace gives kopf nothing to say)."""
    monkeypatch.setattr(resync, "RELIST_SETTLE_SECONDS", 0.0)
    h = Harness()
    interval = 3600 if by == "relist" else 0.05

    async def go() -> None:
        h.project(generateVideos=False)
        await h.settle(seconds=5)
        h.kube.delete(v.SCENE_PLURAL, NS, "p-scene-001")
        h.pending.clear()  # the watch was down
        rounds = asyncio.create_task(h.runtime.resync.run(interval=interval))
        assert (NS, "p-scene-001") in h.runtime.store.scenes
        if by == "relist":
            h.runtime.on_scene_event(None, h.scene("p-scene-002"))  # kopf's re-list
            assert h.runtime.resync.due == {NS}
        for _ in range(200):
            if (NS, "p-scene-001") not in h.runtime.store.scenes:
                break
            await asyncio.sleep(0.01)
        rounds.cancel()
        assert (NS, "p-scene-001") not in h.runtime.store.scenes
        assert h.runtime.resync.due == set()

    asyncio.run(go())
