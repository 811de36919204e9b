"""Capacity, the one owner of job slots: running totals follow every change to the
cache, reservations and woken Scenes hold slots, a given-back budget wakes the Scenes it
held back, and one parked Scene is woken per freed slot."""

from __future__ import annotations

from typing import Any

from controller.controllers.capacity import Capacity
from controller.informer.cache import Store
from controller.settings import Settings

P, Q = ("ns", "p"), ("ns", "q")


def scene(name: str, rv: int, provider: str | None = None, **status: Any) -> dict[str, Any]:
    """A cached Scene of Project p; with a provider, one job in flight (one generation)."""
    if provider:
        job = {"generation": {"provider": provider, "jobId": "j"}, "generationsStarted": 1}
        status = job | status
    return {
        "metadata": {"namespace": "ns", "name": name, "resourceVersion": str(rv)},
        "spec": {"projectRef": {"name": "p"}},
        "status": status,
    }


def cached(**settings: Any) -> tuple[Store, Capacity]:
    store = Store()
    return store, Capacity(Settings(**settings), store)


def test_a_job_ending_is_noted_as_a_freed_slot_and_old_events_are_ignored() -> None:
    store, cap = cached()
    store.upsert_scene(scene("s1", 1))
    store.upsert_scene(scene("s1", 2, "replicate"))
    assert cap.inflight_by_provider["replicate"] == 1 and cap.freed == []
    assert not store.upsert_scene(scene("s1", 1))  # a late event cannot undo a newer write
    assert cap.inflight_by_provider["replicate"] == 1
    store.upsert_scene(scene("s1", 3))
    assert cap.inflight_by_provider["replicate"] == 0
    assert cap.freed == [P]
    store.upsert_scene(scene("s1", 4, "replicate"))
    store.delete_scene(("ns", "s1"))
    assert cap.freed == [P, P]
    assert cap.inflight_by_project[P] == 0


def test_a_generation_given_back_is_noted_and_a_finished_one_is_not() -> None:
    store, cap = cached()
    store.upsert_scene(scene("s1", 1, "replicate"))
    assert cap.started_by_project[P] == 1
    store.upsert_scene(scene("s1", 2, phase="Completed", generationsStarted=1))
    assert cap.budget_freed == []  # a finished job still counts against the budget
    store.upsert_scene(scene("s1", 3, "replicate"))
    store.upsert_scene(scene("s1", 4))  # refused by the provider: the attempt is given back
    assert cap.budget_freed == [P]
    assert cap.started_by_project[P] == 0


def test_scenes_cached_before_the_capacity_was_built_are_counted() -> None:
    store = Store()
    store.upsert_scene(scene("s1", 1, "veo"))
    cap = Capacity(Settings(), store)
    assert cap.inflight_by_provider["veo"] == 1 and cap.started_by_project[P] == 1
    store.delete_scene(("ns", "s1"))  # the capacity now hears of every change
    assert cap.inflight_by_provider["veo"] == 0 and cap.freed == [P]


def test_a_reservation_holds_a_slot_until_released_and_the_limit_names_itself() -> None:
    store, cap = cached(concurrency_replicate=1, project_concurrency=5)
    assert cap.limit_reached("replicate", P) is None
    assert cap.reserve(("ns", "s1"), "replicate", P)
    assert not cap.reserve(("ns", "s1"), "replicate", P)  # one slot per Scene
    assert "SCENE_OPERATOR_CONCURRENCY_REPLICATE" in (cap.limit_reached("replicate", Q) or "")
    # The marker was written: the job now counts through the totals, not the reservation.
    store.upsert_scene(scene("s1", 1, "replicate"))
    cap.release(("ns", "s1"), started=True)
    assert cap.budget_freed == [] and not cap.reserved
    assert cap.limit_reached("replicate", P) is not None


def test_the_project_limit_counts_jobs_in_flight_and_reservations() -> None:
    store, cap = cached(project_concurrency=2)
    store.upsert_scene(scene("s1", 1, "veo"))
    cap.reserve(("ns", "s2"), "replicate", P)
    assert "SCENE_OPERATOR_PROJECT_CONCURRENCY" in (cap.limit_reached("replicate", P) or "")
    assert cap.limit_reached("replicate", Q) is None
    cap.release(("ns", "s2"), started=False)
    assert cap.limit_reached("replicate", P) is None


def test_budget_left_counts_pending_reservations_and_a_refused_start_wakes_held_scenes() -> None:
    store, cap = cached()
    assert cap.budget_left(P, None) is None
    store.upsert_scene(scene("s1", 1, "veo"))
    store.upsert_scene(scene("s2", 1))  # held back by the budget: no job
    store.upsert_scene(scene("s3", 1, phase="Completed", generationsStarted=1))
    assert cap.budget_left(P, 3) == 1
    cap.reserve(("ns", "s2"), "veo", P)
    assert cap.budget_left(P, 3) == 0  # two Scenes cannot both spend the last generation
    cap.release(("ns", "s2"), started=False)
    assert cap.budget_left(P, 3) == 1
    # Only the Scene neither done nor in flight is woken, once.
    assert cap.wake() == [("ns", "s2")]
    assert cap.wake() == []


def test_one_parked_scene_is_woken_per_freed_slot_oldest_first() -> None:
    store, cap = cached(concurrency_veo=1)
    store.upsert_scene(scene("s1", 1, "veo"))
    cap.park(("ns", "s2"), "veo", P)
    cap.park(("ns", "s3"), "veo", P)
    cap.park(("ns", "s4"), "veo", Q)
    cap.unpark(("ns", "s4"))  # deleted while parked: never woken
    assert cap.wake() == []  # the one slot is taken
    store.upsert_scene(scene("s1", 2, phase="Completed", generationsStarted=1))  # job ended
    assert cap.wake() == [("ns", "s2")]
    assert cap.wake() == []  # the woken Scene holds the slot until it is reconciled
    cap.reconciled(("ns", "s2"))  # it started its job and left the line
    cap.unpark(("ns", "s2"))
    store.upsert_scene(scene("s2", 1, "veo"))
    assert cap.wake() == []
    store.upsert_scene(scene("s2", 2, phase="Completed", generationsStarted=1))
    assert cap.wake() == [("ns", "s3")]


def test_a_woken_scenes_slot_is_free_to_it_alone_until_its_start_reserves_it() -> None:
    """One freed slot, one woken Scene: through its whole pass (HEAD, bucket check) the
    slot stays held, so other Scenes that look meanwhile see the limit and park instead
    of also looking at S3 and losing the race (the herd the large benchmark showed)."""
    store, cap = cached(concurrency_replicate=1, project_concurrency=5)
    store.upsert_scene(scene("s0", 1, "replicate"))
    for name in ("s1", "s2"):
        cap.park(("ns", name), "replicate", P)
    store.upsert_scene(scene("s0", 2, generationsStarted=1))  # its job ended: a slot frees
    assert cap.wake() == [("ns", "s1")]
    assert cap.limit_reached("replicate", P, ("ns", "s1")) is None  # held for s1
    assert cap.limit_reached("replicate", P, ("ns", "s3")) is not None  # not for others
    assert cap.limit_reached("replicate", P) is not None
    assert cap.reserve(("ns", "s1"), "replicate", P)  # the hold becomes the reservation
    assert cap.wake() == []  # not counted twice: nothing else wakes
    store.upsert_scene(scene("s1", 1, "replicate"))  # the marker written: its job counts
    cap.release(("ns", "s1"), started=True)
    cap.reconciled(("ns", "s1"))  # the pass ends
    cap.unpark(("ns", "s1"))
    assert cap.wake() == []  # s2 keeps waiting: the one slot is s1's job now
    assert cap.limit_reached("replicate", P, ("ns", "s2")) is not None
