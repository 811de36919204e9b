"""Parked Scenes are woken one per free slot, oldest first, without starving a Project."""

from __future__ import annotations

import collections

from controller.queue.waiting import Waiters

P1, P2 = ("ns", "p1"), ("ns", "p2")


def scene(n: int) -> tuple[str, str]:
    return ("ns", f"s{n}")


class Slots:
    """Job slots as the runtime counts them: jobs in flight plus Scenes woken for a slot."""

    def __init__(self, w: Waiters, provider: int, project: int) -> None:
        self.w, self.provider, self.project = w, provider, project
        self.inflight_p: collections.Counter[str] = collections.Counter()
        self.inflight_q: collections.Counter[tuple[str, str]] = collections.Counter()

    def provider_free(self, p: str) -> int:
        return self.provider - self.inflight_p[p] - self.w.woken_by_provider[p]

    def project_free(self, q: tuple[str, str]) -> int:
        return self.project - self.inflight_q[q] - self.w.woken_by_project[q]

    def pick(self, freed=()) -> list[tuple[str, str]]:
        return self.w.pick(self.provider_free, self.project_free, freed)


def test_no_free_slot_wakes_nobody_and_each_slot_wakes_one_scene_oldest_first() -> None:
    w = Waiters()
    slots = Slots(w, provider=2, project=10)
    slots.inflight_p["replicate"] = 2
    for n in range(5):
        w.wait(scene(n), "replicate", P1)
    assert slots.pick() == []
    slots.inflight_p["replicate"] = 1  # one job ended
    assert slots.pick() == [scene(0)]
    assert slots.pick() == []  # the woken scene holds the slot until it is reconciled
    w.reconciled(scene(0))
    w.discard(scene(0))  # it started: now it is in flight
    slots.inflight_p["replicate"] = 2
    assert slots.pick() == [] and len(w) == 4


def test_a_scene_that_waits_again_keeps_its_place() -> None:
    w = Waiters()
    slots = Slots(w, provider=1, project=10)
    for n in range(3):
        w.wait(scene(n), "replicate", P1)
    assert slots.pick() == [scene(0)]
    w.reconciled(scene(0))  # it lost the slot to someone else and parks again
    w.wait(scene(0), "replicate", P1)
    assert slots.pick() == [scene(0)]


def test_a_full_project_does_not_block_the_line_and_gets_its_own_freed_slot() -> None:
    w = Waiters()
    slots = Slots(w, provider=5, project=1)
    slots.inflight_q[P1] = 1  # P1 is at its limit
    for n in range(3):
        w.wait(scene(n), "replicate", P1)
    w.wait(scene(10), "replicate", P2)
    assert slots.pick() == [scene(10)]  # P1's scenes are skipped, P2's is woken
    slots.inflight_q[P1] = 0  # a P1 job ended
    assert slots.pick(freed=[P1]) == [scene(0)]  # P1's oldest, by its own line
    assert slots.pick(freed=[P1]) == []


def test_discard_and_provider_change() -> None:
    w = Waiters()
    slots = Slots(w, provider=1, project=10)
    w.wait(scene(0), "replicate", P1)
    w.wait(scene(0), "veo", P1)  # its spec moved to another provider
    assert scene(0) in w and len(w) == 1
    slots.inflight_p["veo"] = 1
    assert slots.pick() == []
    w.discard(scene(0))
    assert scene(0) not in w and len(w) == 0
    assert not w.woken_by_provider and not w.woken_by_project


def test_thousands_waiting_cost_little_when_nothing_is_free() -> None:
    w = Waiters()
    slots = Slots(w, provider=200, project=10)
    slots.inflight_p["replicate"] = 200
    for n in range(10_000):
        w.wait(scene(n), "replicate", ("ns", f"p{n // 10}"))
    for _ in range(1000):
        assert slots.pick() == []
    slots.inflight_p["replicate"] = 190
    woken = slots.pick()
    assert woken == [scene(n) for n in range(10)]
