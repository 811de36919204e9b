"""The Event body the operator posts (controller/kube/events.py)."""

import datetime as dt

from controller.kube.events import event_body

SCENE = {
    "apiVersion": "video.scene-operator.io/v1alpha1",
    "kind": "Scene",
    "metadata": {"name": "s-1", "namespace": "team", "uid": "u-1", "resourceVersion": "7"},
}
NOW = dt.datetime(2026, 12, 1, 0, 10, 5, tzinfo=dt.UTC)


def test_an_event_names_its_object_and_cuts_a_long_message():
    body = event_body(SCENE, reason="UploadFailed", message="x" * 5000, type_="Warning", now=NOW)
    assert body["metadata"]["namespace"] == "team"
    assert body["metadata"]["name"].startswith("s-1.")
    assert body["involvedObject"] == {
        "apiVersion": SCENE["apiVersion"],
        "kind": "Scene",
        "name": "s-1",
        "namespace": "team",
        "uid": "u-1",
        "resourceVersion": "7",
    }
    assert len(body["message"]) == 1024
    assert (body["type"], body["reason"], body["count"]) == ("Warning", "UploadFailed", 1)
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2026-12-01T00:10:05Z"


def test_a_batch_carries_its_count_and_first_occurrence():
    first = NOW - dt.timedelta(minutes=3)
    body = event_body(SCENE, reason="ClipUploaded", message="m", count=9, first=first, now=NOW)
    assert body["count"] == 9
    assert body["firstTimestamp"] == "2026-12-01T00:07:05Z"
    assert body["lastTimestamp"] == "2026-12-01T00:10:05Z"


def test_two_events_about_one_object_get_two_names():
    assert (
        event_body(SCENE, reason="R", message="m")["metadata"]["name"]
        != event_body(SCENE, reason="R", message="m")["metadata"]["name"]
    )
