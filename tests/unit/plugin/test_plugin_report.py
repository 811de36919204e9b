"""What `kubectl video status` builds from API objects: which Scenes and Events belong to
a Project, what each row says, and the JSON/YAML shape (pure functions, no cluster)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import yaml

from controller.plugin import report
from controller.plugin.client import PluginError, parse_ref

NOW = dt.datetime(2026, 11, 30, 12, 0, 0, tzinfo=dt.UTC)


def scene(name: str, project: str, seq: int, ns: str = "ns", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"projectRef": {"name": project}, "sequence": seq, "prompt": "p"},
        "status": status,
    }


def event(kind: str, name: str, reason: str, when: str, ns: str = "ns", **extra: Any) -> dict:
    return {
        "metadata": {"name": f"{name}.{reason}", "namespace": ns},
        "involvedObject": {"kind": kind, "name": name, "namespace": ns},
        "reason": reason,
        "message": f"{reason} of {name}",
        "type": extra.pop("type", "Normal"),
        "lastTimestamp": when,
        **extra,
    }


READY_FALSE = {
    "type": "Ready",
    "status": "False",
    "reason": "RetryScheduled",
    "message": "provider answered 503; retry 2 of 3 at 12:01",
}
PROJECT = {
    "metadata": {"name": "lh", "namespace": "ns"},
    "spec": {"prompt": "x"},
    "status": {
        "phase": "Generating",
        "sceneCount": 2,
        "completedScenes": 1,
        "failedScenes": 0,
        "usage": {"generationsStarted": 3, "estimatedCostUsd": 1.5},
        "conditions": [{**READY_FALSE, "reason": "InProgress", "message": "1 of 2 scenes"}],
    },
}
SCENES = [
    scene(
        "lh-scene-002", "lh", 2, phase="Processing", attempts=2, take=0,
        conditions=[READY_FALSE], generation={"jobId": "job-7"},
        lastError={"reason": "ProviderUnavailable", "message": "503"},
    ),
    scene(
        "lh-scene-001", "lh", 1, phase="Completed", attempts=1,
        conditions=[{"type": "Ready", "status": "True", "reason": "Completed", "message": ""}],
        clip={"key": "p/ns/uid/scenes/001/abc-t0.mp4"},
    ),
    scene("mine", "lh", 3),  # declared by the user: projectRef only, no ownerReference
    scene("other-scene-001", "other", 1, phase="Completed"),
    scene("lh-scene-001", "lh", 1, ns="elsewhere", phase="Failed"),
]  # fmt: skip
EVENTS = [
    event("Scene", "lh-scene-001", "ClipUploaded", "2026-11-30T11:58:00Z"),
    event("Project", "lh", "ScenesPlanned", "2026-11-30T11:50:00Z"),
    event("Scene", "lh-scene-002", "RetryScheduled", "2026-11-30T11:59:30Z", type="Warning"),
    event("Scene", "other-scene-001", "ClipUploaded", "2026-11-30T11:59:00Z"),
    event("Scene", "lh-scene-001", "RetriesExhausted", "2026-11-30T11:59:50Z", ns="elsewhere"),
    event("Project", "lh", "GenerationStarted", "", eventTime="2026-11-30T11:55:00.000000Z"),
]


def test_a_project_view_has_its_own_scenes_by_sequence_and_their_events() -> None:
    view = report.project_view(PROJECT, SCENES, EVENTS)
    assert [s.name for s in view.scenes] == ["lh-scene-001", "lh-scene-002", "mine"]
    assert [(e.object, e.reason) for e in view.events] == [
        ("project/lh", "ScenesPlanned"),
        ("project/lh", "GenerationStarted"),  # eventTime when lastTimestamp is empty
        ("scene/lh-scene-001", "ClipUploaded"),
        ("scene/lh-scene-002", "RetryScheduled"),
    ]  # not the other Project's, not the same name in another namespace
    assert (view.phase, view.ready.reason, view.ready.message) == (
        "Generating",
        "InProgress",
        "1 of 2 scenes",
    )
    assert (view.generations_started, view.estimated_cost_usd) == (3, 1.5)


def test_events_are_ordered_by_time_whatever_their_precision() -> None:
    events = [
        event("Project", "lh", "Later", "", eventTime="2026-11-30T11:00:00.500000Z"),
        event("Project", "lh", "Sooner", "2026-11-30T11:00:00Z"),  # as text it sorts last
        event("Project", "lh", "Undated", ""),
    ]
    view = report.project_view(PROJECT, SCENES, events)
    assert [e.reason for e in view.events] == ["Undated", "Sooner", "Later"]


def test_a_stalled_project_or_scene_says_why() -> None:
    stalled = {
        "type": "Stalled",
        "status": "True",
        "reason": "BudgetExhausted",
        "message": "budget.maxGenerations 3 used up; 1 scene left",
    }
    project = {**PROJECT, "status": {**PROJECT["status"], "conditions": [stalled]}}
    text = report.render_project(report.project_view(project, SCENES, EVENTS), NOW)
    assert "Stalled:      BudgetExhausted: budget.maxGenerations 3 used up; 1 scene left" in text
    one = scene("s", "lh", 1, conditions=[{**stalled, "reason": "RetriesExhausted"}])
    assert "Stalled:      RetriesExhausted" in report.render_scene(report.scene_view(one), NOW)
    healthy = report.render_project(report.project_view(PROJECT, SCENES, EVENTS), NOW)
    assert "Stalled" not in healthy


def test_only_the_latest_events_are_kept() -> None:
    view = report.project_view(PROJECT, SCENES, EVENTS, event_limit=2)
    assert [e.reason for e in view.events] == ["ClipUploaded", "RetryScheduled"]


def test_a_scene_row_says_phase_attempts_why_and_where_the_clip_is() -> None:
    done, retrying, declared = report.project_view(PROJECT, SCENES, EVENTS).scenes
    assert (done.phase, done.attempts, done.clip_key) == (
        "Completed", 1, "p/ns/uid/scenes/001/abc-t0.mp4",
    )  # fmt: skip
    assert (retrying.phase, retrying.attempts, retrying.job_id) == ("Processing", 2, "job-7")
    assert retrying.ready.message == READY_FALSE["message"]
    assert retrying.last_error == "ProviderUnavailable: 503"
    assert (declared.phase, declared.attempts, declared.ready.status) == ("Pending", 0, "")


def test_the_table_shows_the_scenes_and_the_events() -> None:
    text = report.render_project(report.project_view(PROJECT, SCENES, EVENTS), NOW)
    assert text.startswith("Project ns/lh\n")
    assert "Ready:        False (InProgress)" in text and "Message:      1 of 2 scenes" in text
    rows = {line.split()[1]: line for line in text.splitlines() if line.startswith("  ") and line.split()[1].startswith("lh-scene")}  # fmt: skip
    assert "Completed" in rows["lh-scene-001"] and "p/ns/uid/scenes/001/abc-t0.mp4" in rows["lh-scene-001"]  # fmt: skip
    assert "provider answered 503" in rows["lh-scene-002"] and "job job-7" in rows["lh-scene-002"]
    assert "30s" in text and "RetryScheduled" in text and "scene/lh-scene-002" in text


def test_json_and_yaml_carry_the_same_data() -> None:
    views = [report.project_view(PROJECT, SCENES, EVENTS)]
    data = report.as_data(views)
    assert (
        json.loads(report.dump(data, "json")) == data == yaml.safe_load(report.dump(data, "yaml"))
    )
    item = data["items"][0]
    assert item["scenes"][1]["ready"]["message"] == READY_FALSE["message"]
    assert item["events"][-1]["reason"] == "RetryScheduled"


@pytest.mark.parametrize(
    ("stamp", "shown"),
    [
        ("2026-11-30T11:59:18Z", "42s"),
        ("2026-11-30T11:55:00Z", "5m"),
        ("2026-11-30T09:00:00Z", "3h"),
        ("2026-11-28T12:00:00Z", "2d"),
        ("2026-11-30T12:00:05Z", "0s"),  # clock skew: never negative
        ("", "-"),
    ],
)
def test_age_is_kubectls_short_form(stamp: str, shown: str) -> None:
    assert report.age(stamp, NOW) == shown


@pytest.mark.parametrize(
    ("ref", "parsed"),
    [
        ("lighthouse", ("projects", "lighthouse")),
        ("project/lighthouse", ("projects", "lighthouse")),
        ("vproj/lighthouse", ("projects", "lighthouse")),
        ("scene/lh-scene-001", ("scenes", "lh-scene-001")),
        ("scn/lh-scene-001", ("scenes", "lh-scene-001")),
    ],
)
def test_refs(ref: str, parsed: tuple[str, str]) -> None:
    assert parse_ref(ref) == parsed


@pytest.mark.parametrize("ref", ["pod/x", "scene/", "/x"])
def test_bad_refs_are_a_clear_error(ref: str) -> None:
    with pytest.raises(PluginError, match="expected project/NAME"):
        parse_ref(ref)
