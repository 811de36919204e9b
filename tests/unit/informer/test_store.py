"""The cache: bodies are stored slim, Scenes are indexed per Project, and every change is\ntold to the listener (the capacity's running totals: tests/unit/test_capacity.py)."""

from __future__ import annotations

import pytest

from controller.informer.cache import Store, slim


def scene(rv: int, provider: str | None = None, **meta: object) -> dict:
    status = {"generation": {"provider": provider}, "generationsStarted": 1} if provider else {}
    return {
        "metadata": {"namespace": "ns", "name": "s1", "resourceVersion": str(rv), **meta},
        "spec": {"projectRef": {"name": "p"}},
        "status": status,
    }


def test_what_the_operator_never_reads_is_not_cached_and_the_input_is_not_mutated() -> None:
    body = scene(
        1,
        managedFields=[{"manager": "kubectl"}],
        labels={"app.kubernetes.io/managed-by": "scene-operator"},
        creationTimestamp="2026-11-30T12:00:00Z",
        annotations={
            "kubectl.kubernetes.io/last-applied-configuration": "{...}",
            "video.scene-operator.io/regenerate": "t1",
        },
    )
    store = Store()
    store.upsert_scene(body)
    cached = store.scenes[("ns", "s1")]
    assert "managedFields" not in cached["metadata"]
    assert "labels" not in cached["metadata"] and "creationTimestamp" not in cached["metadata"]
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


def test_a_long_string_repeated_in_a_body_is_cached_once_and_owner_uids_are_shared() -> None:
    """A Completed Scene names its clip's S3 key three times: JSON decoding gives three
    strings, the cache keeps one. The owner's uid is the same object in all its Scenes."""
    import json

    key = "videos/ns/0b0c5d55-3f0e-4f7e-9d7e-5a3c3b3a2e11/scenes/001/fe8ecfc0856e-t0.mp4"
    owner = "0b0c5d55-3f0e-4f7e-9d7e-5a3c3b3a2e11"

    def completed(name: str) -> dict:
        body = scene(1)
        body["metadata"]["name"] = name
        body["metadata"]["ownerReferences"] = [{"kind": "Project", "name": "p", "uid": owner}]
        body["status"] = {
            "originalVideoClipS3Key": key,
            "workingVideoClipS3Key": key,
            "clip": {"key": key, "sha256": "9c22" * 16},
        }
        return json.loads(json.dumps(body))  # separate strings, as the watch stream's

    one, two = completed("s1"), completed("s2")
    assert one["status"]["originalVideoClipS3Key"] is not one["status"]["clip"]["key"]
    a, b = slim(one), slim(two)
    assert a == one and b == two
    status = a["status"]
    assert status["originalVideoClipS3Key"] is status["workingVideoClipS3Key"]
    assert status["workingVideoClipS3Key"] is status["clip"]["key"]
    uid_a = a["metadata"]["ownerReferences"][0]["uid"]
    assert uid_a is b["metadata"]["ownerReferences"][0]["uid"]
    assert one["metadata"]["ownerReferences"][0]["uid"] == owner  # input untouched


def test_short_values_are_shared_through_a_bounded_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Repeated short values (a phase) are one object across cached bodies; unique ones
    (resourceVersions) never grow the table past its bound."""
    import json

    from controller.informer import cache as store

    monkeypatch.setattr(store, "SHARED_VALUES_MAX", 50)
    monkeypatch.setattr(store, "_shared", {})
    cached = []
    for rv in range(1, 200):
        body = json.loads(json.dumps({**scene(rv), "status": {"phase": "Completed"}}))
        cached.append(slim(body))
        assert len(store._shared) <= 50
    assert cached[-1]["status"]["phase"] is cached[-2]["status"]["phase"]
    assert [c["metadata"]["resourceVersion"] for c in cached] == [str(r) for r in range(1, 200)]


def test_the_scenes_of_a_project_share_one_owner_reference_and_project_ref() -> None:
    def owned(name: str, controller: object) -> dict:
        body = scene(1)
        body["metadata"]["name"] = name
        body["metadata"]["ownerReferences"] = [
            {"kind": "Project", "name": "p", "uid": "u1", "controller": controller}
        ]
        return body

    a, b = slim(owned("s1", True)), slim(owned("s2", True))
    assert a["metadata"]["ownerReferences"][0] is b["metadata"]["ownerReferences"][0]
    assert a["spec"]["projectRef"] is b["spec"]["projectRef"]
    c = slim(owned("s3", 1))  # equal in Python, not in JSON: not shared
    assert c["metadata"]["ownerReferences"][0]["controller"] == 1
    assert c["metadata"]["ownerReferences"][0]["controller"] is not True
    assert a == owned("s1", True) and c == owned("s3", 1)
