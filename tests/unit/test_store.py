"""The cache: bodies are stored slim, counters follow jobs in flight, and freed slots are noted."""

from __future__ import annotations

from controller.store import Store, slim


def scene(rv: int, provider: str | None = None, **meta: object) -> dict:
    status = {"generation": {"provider": provider}, "generationsStarted": 1} if provider else {}
    return {
        "metadata": {"namespace": "ns", "name": "s1", "resourceVersion": str(rv), **meta},
        "spec": {"projectRef": {"name": "p"}},
        "status": status,
    }


def test_managed_fields_and_last_applied_are_not_cached_and_the_input_is_not_mutated() -> None:
    body = scene(
        1,
        managedFields=[{"manager": "kubectl"}],
        annotations={
            "kubectl.kubernetes.io/last-applied-configuration": "{...}",
            "video.scene-operator.io/regenerate": "t1",
        },
    )
    store = Store()
    store.upsert_scene(body)
    cached = store.scenes[("ns", "s1")]
    assert "managedFields" not in cached["metadata"]
    assert cached["metadata"]["annotations"] == {"video.scene-operator.io/regenerate": "t1"}
    assert "managedFields" in body["metadata"]  # kopf's dict is untouched
    assert slim(scene(2)) == scene(2)


def test_a_job_ending_is_noted_as_a_freed_slot_and_old_events_are_ignored() -> None:
    store = Store()
    store.upsert_scene(scene(1))
    store.upsert_scene(scene(2, "replicate"))
    assert store.inflight_by_provider["replicate"] == 1 and store.freed == []
    assert not store.upsert_scene(scene(1))  # a late event cannot undo a newer write
    store.upsert_scene(scene(3))
    assert store.inflight_by_provider["replicate"] == 0
    assert store.freed == [("ns", "p")]
    store.upsert_scene(scene(4, "replicate"))
    store.delete_scene(("ns", "s1"))
    assert store.freed == [("ns", "p"), ("ns", "p")]
    assert store.inflight_by_project[("ns", "p")] == 0


def test_a_generation_given_back_is_noted_and_a_finished_one_is_not() -> None:
    store = Store()
    store.upsert_scene(scene(1, "replicate"))  # the pending marker: one generation started
    assert store.started_by_project[("ns", "p")] == 1
    finished = scene(2)
    finished["status"] = {"phase": "Completed", "generationsStarted": 1}
    store.upsert_scene(finished)
    assert store.budget_freed == []  # a finished job still counts against the budget
    store.upsert_scene(scene(3, "replicate"))
    store.upsert_scene(scene(4))  # refused by the provider: the attempt is given back
    assert store.budget_freed == [("ns", "p")]
    assert store.started_by_project[("ns", "p")] == 0
