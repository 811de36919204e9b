"""A plan larger than the free job slots does not fill the work queue: each planned
Scene has its first pass only when a slot is free for it (held for it until then), and
the others wait in the slot line from the start, in plan order, without a pass that
would only look at S3 and park them. The waiting is still said, on time."""

from __future__ import annotations

from collections.abc import Callable

from controller.decide.scene import WAITING_NOTICE_SECONDS
from controller.queue.state import Kind
from tests.unit.harness import Harness, metric

SCENES = 12


def scene_keys_queued(h: Harness) -> int:
    return sum(1 for k in h.runtime.queue._dirty if k[0] == Kind.SCENE)  # type: ignore[index]


async def drive(h: Harness, each: Callable[[], None], until: float) -> None:
    """One pass at a time, calling `each` before every step, letting fake time pass up
    to `until` while nothing is ready."""
    for _ in range(2000):
        h.deliver()
        each()
        if not await h.step():
            due = h.runtime.queue.next_due()
            if due is None or due > until:
                return
            h.clock.t = due


def test_a_plan_queues_one_first_pass_per_free_slot_and_parks_the_rest() -> None:
    h = Harness(concurrency_replicate=3, project_concurrency=10)
    h.replicate.polls = 3
    parked_before = metric("scene_operator_decisions_total", rule="waiting-capacity")
    peak = 0

    def note() -> None:
        nonlocal peak
        peak = max(peak, scene_keys_queued(h))

    h.project(scenes={"count": SCENES, "durationSeconds": 4})
    h.run(drive(h, note, until=250))
    assert set(h.phases().values()) == {"Completed"}
    assert h.replicate.starts == SCENES
    assert peak <= 3  # one first pass per free slot, not one per planned Scene
    # No Scene was decided only to be parked: the line was formed at planning.
    parked = metric("scene_operator_decisions_total", rule="waiting-capacity") - parked_before
    assert parked == 0
    heads = [c for c in h.clips.calls if c[0] == "head"]
    assert len(heads) == SCENES  # each Scene looks at S3 once, when its turn comes
    assert not h.runtime.capacity.waiters and not h.runtime.capacity.reserved


def test_scenes_parked_at_planning_start_in_plan_order() -> None:
    h = Harness(concurrency_replicate=1, project_concurrency=10)
    h.replicate.polls = 1
    started: list[str] = []

    def note() -> None:
        for name in h.scene_names():
            if h.status(name).get("generation") and name not in started:
                started.append(name)

    h.project(scenes={"count": 4, "durationSeconds": 4})
    h.run(drive(h, note, until=200))
    assert started == [f"p-scene-00{i}" for i in range(1, 5)]


def test_a_scene_parked_at_planning_still_says_it_waits_after_the_notice_time() -> None:
    """The one slot is held by a job that runs for a long time: the Scenes parked at
    planning write their Waiting condition once WAITING_NOTICE_SECONDS have passed, as
    a Scene parked by its own pass does."""
    h = Harness(concurrency_replicate=1, project_concurrency=10)
    h.replicate.polls = 10_000  # the first job never ends here

    async def go() -> None:
        h.project(scenes={"count": 3, "durationSeconds": 4})
        await h.settle(seconds=WAITING_NOTICE_SECONDS - 10)
        waiting = [n for n in h.scene_names() if not h.status(n).get("generation")]
        assert len(waiting) == 2
        assert all(not h.status(n).get("conditions") for n in waiting)  # quiet so far
        ready = next(c for c in h.project_status()["conditions"] if c["type"] == "Ready")
        assert "2 scenes waiting for a free job slot" in ready["message"]  # its Project says
        await h.settle(seconds=20)
        for n in waiting:
            reasons = {c.get("reason") for c in h.status(n).get("conditions") or []}
            assert "WaitingForCapacity" in reasons, (n, h.status(n))

    h.run(go())
