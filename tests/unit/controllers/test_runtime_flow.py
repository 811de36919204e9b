"""The runtime end to end against fakes: plan, create Scenes, start, poll, upload."""

from __future__ import annotations

import asyncio

from tests.unit.harness import Harness


def test_a_project_is_planned_generated_and_ready() -> None:
    h = Harness()
    h.replicate.polls = 1

    async def go() -> None:
        h.project()
        await h.settle(seconds=120)

    asyncio.run(go())
    assert h.scene_names() == ["p-scene-001", "p-scene-002"]
    assert h.phases() == {"p-scene-001": "Completed", "p-scene-002": "Completed"}
    assert h.replicate.starts == 2
    assert len(h.clips.keys()) == 2
    ready = [c for c in h.project_status()["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True"
