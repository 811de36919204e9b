"""What kopf keeps per watched object: nothing beyond the event being handed over."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
from kopf._core.engines import indexing
from kopf._core.reactor import processing

from controller.api import vocabulary as v
from controller.informer import handlers, kopf_patches
from tests.unit.harness import NS, Harness


def scene_event(name: str, uid: str) -> dict[str, Any]:
    body = {
        "apiVersion": v.API_VERSION,
        "kind": v.SCENE_KIND,
        "metadata": {"name": name, "namespace": NS, "uid": uid, "resourceVersion": "7"},
        "spec": {"projectRef": {"name": "p"}, "sequence": 1, "prompt": "x"},
    }
    return {"type": "ADDED", "object": body}


def test_kopf_hands_every_event_over_and_remembers_no_object() -> None:
    """kopf's own per-object memory (a memo, throttler, daemon and index records) serves
    handlers the operator does not have: with NoMemories none is kept, and the event
    handlers still get every event."""
    h = Harness()
    registry = kopf.OperatorRegistry()
    handlers.register(registry, h.runtime)
    settings = kopf.OperatorSettings()
    handlers.configure_kopf(settings)
    memories = kopf_patches.NoMemories()
    resource = kopf.Resource(v.GROUP, v.VERSION, v.SCENE_PLURAL)

    async def go() -> None:
        for i in range(3):
            await processing.process_resource_event(
                lifecycle=kopf.lifecycles.all_at_once,
                indexers=indexing.OperatorIndexers(),
                registry=registry,
                settings=settings,
                memories=memories,
                memobase=kopf.Memo(),
                resource=resource,
                raw_event=scene_event(f"s{i}", f"uid-{i}"),  # type: ignore[arg-type]
                event_queue=asyncio.Queue(),
            )

    asyncio.run(go())
    assert sorted(h.runtime.store.scenes) == [(NS, "s0"), (NS, "s1"), (NS, "s2")]
    assert list(memories.iter_all_memories()) == []


def test_kopf_object_workers_do_not_idle_for_seconds() -> None:
    """kopf keeps an object's worker task (and the last raw body it handled) alive
    for idle_timeout after each event; 5 s by default held most of 10,000 Scenes."""
    settings = kopf.OperatorSettings()
    handlers.configure_kopf(settings)
    assert settings.queueing.idle_timeout == handlers.KOPF_IDLE_SECONDS <= 1.0
