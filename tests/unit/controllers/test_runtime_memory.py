"""What the runtime keeps per Scene between passes: nothing once it is idle."""

from __future__ import annotations

import asyncio

from tests.unit.harness import NS, Harness


def test_a_completed_scene_keeps_no_memory_and_one_in_flight_keeps_its_polls() -> None:
    h = Harness()
    h.replicate.polls = 3  # each job answers Running three times

    async def go() -> None:
        h.project()
        # Until the first poll: both jobs started and polled once, not finished.
        await h.settle(seconds=6)
        assert set(h.phases().values()) == {"Processing"}
        polls = {k: m.polls for k, m in h.runtime.memory.scenes.items()}
        assert polls == {(NS, "p-scene-001"): 1, (NS, "p-scene-002"): 1}
        await h.settle(seconds=300)

    asyncio.run(go())
    assert h.phases() == {"p-scene-001": "Completed", "p-scene-002": "Completed"}
    assert h.runtime.memory.scenes == {}
