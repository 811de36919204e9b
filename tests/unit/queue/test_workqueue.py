"""The work queue: deduplication, one worker per key, delayed adds, and the urgent lane."""

from __future__ import annotations

import asyncio

from controller.queue.workqueue import WorkQueue


def run(coro):
    return asyncio.run(coro)


def test_urgent_keys_are_served_before_normal_ones_and_keys_are_deduplicated() -> None:
    async def main() -> list:
        q = WorkQueue()
        for k in ("a", "b", "c"):
            q.add(k)
        q.add("b")
        q.add("poll", urgent=True)
        q.add("c", urgent=True)  # promoted to the urgent lane, not duplicated
        assert len(q) == 4 and q.urgent == 2
        out = []
        for _ in range(4):
            k = await q.get()
            out.append(k)
            q.done(k)
        assert len(q) == 0
        return out

    assert run(main()) == ["poll", "c", "a", "b"]


def test_a_key_added_while_processing_runs_again_after_done_not_concurrently() -> None:
    async def main() -> None:
        q = WorkQueue()
        q.add("k")
        k = await q.get()
        q.add("k", urgent=True)
        assert len(q) == 0  # not handed out twice
        q.done(k)
        assert len(q) == 1 and q.urgent == 1
        assert await q.get() == "k"

    run(main())


def test_delayed_adds_keep_the_earliest_and_carry_urgency() -> None:
    async def main() -> None:
        q = WorkQueue()
        timer = asyncio.create_task(q.run_timer())
        q.add_after("slow", 0.05)
        q.add_after("poll", 0.05, urgent=True)
        q.add_after("poll", 10.0)  # a later wake-up does not replace the earlier one
        assert q.delayed == 2
        first = await asyncio.wait_for(q.get(), 2)
        second = await asyncio.wait_for(q.get(), 2)
        assert (first, second) == ("poll", "slow")
        q.shutting_down = True
        timer.cancel()

    run(main())


def test_get_waits_for_work() -> None:
    async def main() -> None:
        q = WorkQueue()
        waiter = asyncio.create_task(q.get())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        q.add("x")
        assert await asyncio.wait_for(waiter, 1) == "x"

    run(main())


def test_the_normal_lane_is_not_starved_by_a_steady_stream_of_urgent_keys() -> None:
    from controller.queue.workqueue import URGENT_BURST

    async def main() -> list:
        q = WorkQueue()
        q.add("new")
        for i in range(URGENT_BURST * 2):
            q.add(f"poll-{i}", urgent=True)
        out = []
        for _ in range(URGENT_BURST + 1):
            k = await q.get()
            out.append(k)
            q.done(k)
        return out

    assert run(main())[-1] == "new"
