"""The operator's watch events go straight to its intake; kopf's own path still serves
any other resource, and kopf's readiness toggles are released as its path would."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import kopf
from kopf._cogs.aiokits import aiotoggles
from kopf._core.engines import indexing
from kopf._core.reactor import processing

from controller.api import vocabulary as v
from controller.informer import handlers, kopf_patches
from tests.unit.harness import NS, Harness


def event(kind: str, name: str) -> dict[str, Any]:
    body = {
        "apiVersion": v.API_VERSION if kind == v.SCENE_KIND else "v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "resourceVersion": "3"},
        "spec": {"projectRef": {"name": "p"}, "sequence": 1, "prompt": "x"},
    }
    return {"type": "ADDED", "object": body}


def test_own_events_skip_kopfs_handlers_and_other_resources_keep_them(monkeypatch) -> None:
    h = Harness()
    causes: list[str] = []  # kopf's cause detection and handler calls, per resource
    detect = processing.process_resource_causes

    async def counted(**kwargs: Any) -> Any:
        causes.append(kwargs["resource"].plural)
        return await detect(**kwargs)

    monkeypatch.setattr(processing, "process_resource_causes", counted)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, h.runtime)
    through_kopf: list[str] = []

    @kopf.on.event("", "v1", "configmaps", registry=registry)
    async def configmap(event: kopf.RawEvent, **_: Any) -> None:
        through_kopf.append(event["object"]["metadata"]["name"])

    settings = kopf.OperatorSettings()
    handlers.configure_kopf(settings)
    # As kopf's running.py binds it when it spawns the watchers.
    processor = functools.partial(
        processing.process_resource_event,
        lifecycle=kopf.lifecycles.all_at_once,
        registry=registry,
        settings=settings,
        indexers=indexing.OperatorIndexers(),
        memories=kopf_patches.NoMemories(),
        memobase=kopf.Memo(),
        operator_paused=None,
        event_queue=asyncio.Queue(),
    )

    async def go() -> bool:
        operator_indexed = aiotoggles.ToggleSet(all)
        scenes_indexed = await operator_indexed.make_toggle(name="scenes")
        maps_indexed = await operator_indexed.make_toggle(name="configmaps")
        await processor(
            resource=kopf.Resource(v.GROUP, v.VERSION, v.SCENE_PLURAL),
            raw_event=event(v.SCENE_KIND, "s1"),
            operator_indexed=operator_indexed,
            resource_indexed=scenes_indexed,
        )
        await processor(
            resource=kopf.Resource("", "v1", "configmaps"),
            raw_event=event("ConfigMap", "c1"),
            operator_indexed=operator_indexed,
            resource_indexed=maps_indexed,
        )
        return operator_indexed.is_on()

    released = asyncio.run(asyncio.wait_for(go(), 10))
    assert (NS, "s1") in h.runtime.store.scenes  # the intake has it
    assert through_kopf == ["c1"]  # kopf's path, handler and all, for the rest
    assert causes == ["configmaps"]  # the Scene's event never entered it
    assert released  # the operator's resource let kopf's readiness through
