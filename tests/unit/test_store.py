"""The cache: bodies are stored slim, Scenes are indexed per Project, and every change is\ntold to the listener (the capacity's running totals: tests/unit/test_capacity.py)."""

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


def test_the_index_of_scenes_per_project_follows_upserts_and_deletes() -> None:
    store, seen = Store(), []
    store.on_scene_change = lambda old, new: seen.append((old is not None, new is not None))
    store.upsert_scene(scene(1))
    assert store.scene_names_of(("ns", "p")) == ["s1"]
    assert not store.upsert_scene(scene(0))  # a late event cannot undo a newer write
    moved = scene(2)
    moved["spec"] = {"projectRef": {"name": "q"}}
    store.upsert_scene(moved)
    assert store.scene_names_of(("ns", "p")) == [] and store.scene_names_of(("ns", "q")) == ["s1"]
    assert [b["metadata"]["name"] for b in store.scenes_of(("ns", "q"))] == ["s1"]
    store.delete_scene(("ns", "s1"))
    store.delete_scene(("ns", "s1"))  # already gone: nobody is told twice
    assert store.scene_names_of(("ns", "q")) == []
    assert seen == [(False, True), (True, True), (True, False)]
