"""The generated CRDs against a real (1.20) API server: accepted, served, defaulted, validated.

Uses the session control plane (tests/conftest.py). Every test gets a fresh namespace.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from controller.api import vocabulary as v
from controller.api.common import Condition
from controller.api.crd import project_crd, scene_crd
from controller.api.project import ProjectSpec, ProjectStatus
from controller.api.scene import SceneSpec, SceneStatus
from controller.demo.cluster import Kubectl

GROUP, VERSION = "video.scene-operator.io", "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PROJECTS, SCENES = "projects", "scenes"
CRD_NAMES = {f"projects.{GROUP}", f"scenes.{GROUP}"}
MERGE = "application/merge-patch+json"

pytestmark = pytest.mark.usefixtures("crds_installed")


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def project(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Project",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"prompt": "a cat surfing at dawn", **spec},
    }


def scene(name: str, namespace: str, project_name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Scene",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"projectRef": {"name": project_name}, "sequence": 1, "prompt": "a wave", **spec},
    }


def is_within(small: Any, big: Any) -> bool:
    """Every field of ``small`` is in ``big`` with an equal value (``big`` may have more)."""
    if isinstance(small, dict):
        return isinstance(big, dict) and all(
            k in big and is_within(val, big[k]) for k, val in small.items()
        )
    if isinstance(small, list):
        return (
            isinstance(big, list)
            and len(small) == len(big)
            and all(is_within(a, b) for a, b in zip(small, big, strict=True))
        )
    if isinstance(small, bool) or isinstance(big, bool):
        return small is big
    return bool(small == big)


@pytest.fixture(scope="module")
def api(kubeconfig: str) -> Iterator[k8s.CustomObjectsApi]:
    api_client = k8s_config.new_client_from_config(config_file=kubeconfig)
    try:
        yield k8s.CustomObjectsApi(api_client)
    finally:
        api_client.close()


def get(api: k8s.CustomObjectsApi, plural: str, namespace: str, name: str) -> dict[str, Any]:
    return api.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)


def create(api: k8s.CustomObjectsApi, plural: str, body: dict[str, Any]) -> dict[str, Any]:
    ns = body["metadata"]["namespace"]
    return api.create_namespaced_custom_object(GROUP, VERSION, ns, plural, body)


# --- the CRDs themselves -----------------------------------------------------------------


def test_crds_are_established_and_stored_unchanged(crds_installed: list[str], kubectl: Kubectl) -> None:  # fmt: skip
    assert set(crds_installed) == CRD_NAMES
    for generated in (project_crd(), scene_crd()):
        name = generated["metadata"]["name"]
        stored = kubectl.json("get", "crd", name)
        conditions = {c["type"]: c for c in stored["status"]["conditions"]}
        assert conditions["Established"]["status"] == "True", conditions
        assert conditions["NamesAccepted"]["status"] == "True", conditions
        # A v1 CRD cannot be non-structural, but a schema problem would show up here.
        assert "NonStructuralSchema" not in conditions, conditions["NonStructuralSchema"]
        assert stored["status"]["acceptedNames"]["shortNames"] == generated["spec"]["names"]["shortNames"]  # fmt: skip
        assert stored["status"]["acceptedNames"]["categories"] == ["video"]
        # The server kept every keyword of the schema: none was unknown to it and dropped.
        (version,) = stored["spec"]["versions"]
        (want,) = generated["spec"]["versions"]
        assert version["schema"] == want["schema"]
        assert version["additionalPrinterColumns"] == want["additionalPrinterColumns"]
        assert version["subresources"] == {"status": {}}


def test_resources_are_listable(kubectl: Kubectl, namespace: str) -> None:
    listed = kubectl("get", "projects,scenes", "-n", namespace)
    assert listed.returncode == 0
    assert "No resources found" in listed.stderr
    for resource in ("projects", "scenes", "vproj", "scn", "video"):
        items = kubectl.json("get", resource, "-n", namespace)
        assert items["items"] == [], resource


def test_api_resources_show_short_names_and_category(kubectl: Kubectl) -> None:
    out = kubectl("api-resources", f"--api-group={GROUP}", "-o", "wide").stdout
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:] if line.strip()}
    assert set(rows) == {"projects", "scenes"}, out
    assert rows["projects"][1] == "vproj"
    assert rows["scenes"][1] == "scn"
    for row in rows.values():
        assert row[2] == API_VERSION
        assert row[3] == "true"  # namespaced
        assert row[-1] == "video"  # categories
    names = kubectl("api-resources", f"--api-group={GROUP}", "-o", "name").stdout.split()
    assert sorted(names) == [f"projects.{GROUP}", f"scenes.{GROUP}"]


def test_category_and_short_names_list_objects(kubectl: Kubectl, namespace: str) -> None:
    p, s = unique("cat"), unique("cat-s")
    kubectl("create", "-f", "-", input=json.dumps(project(p, namespace)))
    kubectl("create", "-f", "-", input=json.dumps(scene(s, namespace, p)))
    everything = kubectl("get", "video", "-n", namespace, "-o", "name").stdout.split()
    assert sorted(everything) == sorted([f"project.{GROUP}/{p}", f"scene.{GROUP}/{s}"])
    assert kubectl("get", "vproj", "-n", namespace, "-o", "name").stdout.split() == [f"project.{GROUP}/{p}"]  # fmt: skip
    assert kubectl("get", "scn", "-n", namespace, "-o", "name").stdout.split() == [f"scene.{GROUP}/{s}"]  # fmt: skip


# --- creating valid objects; server-side defaults -----------------------------------------

PROJECT_DEFAULTS = {
    "mode": "MusicVideo",
    "generateVideos": False,
    "paused": False,
    "deletionPolicy": "Retain",
    "scenes": {"aspectRatio": "16:9"},
    "retry": {"limit": 3, "backoff": {"initialSeconds": 10, "factor": 2, "maxSeconds": 600}},
    "repair": {"missingClip": "Regenerate", "intervalSeconds": 300},
}


def assert_project_defaults(stored: dict[str, Any], sent: dict[str, Any]) -> None:
    spec = stored["spec"]
    assert spec["retry"]["limit"] == 3
    assert spec["scenes"]["aspectRatio"] == "16:9"
    assert spec["generateVideos"] is False
    defaults = {k: val for k, val in PROJECT_DEFAULTS.items() if k not in sent["spec"]}
    assert is_within(defaults, spec), json.dumps(spec, indent=1)
    assert is_within(sent["spec"], spec)
    # The API server's defaults and the model's defaults mean the same thing.
    assert ProjectSpec.model_validate(spec) == ProjectSpec.model_validate(sent["spec"])
    assert is_within(spec, ProjectSpec.model_validate(spec).wire())
    assert stored["metadata"]["generation"] == 1
    assert "status" not in stored


def test_create_with_kubectl_yaml_applies_defaults(kubectl: Kubectl, namespace: str) -> None:
    p, s = unique("kc"), unique("kc-s")
    manifest = project(p, namespace)
    out = kubectl("create", "-f", "-", input=yaml.safe_dump(manifest))
    assert f"project.{GROUP}/{p} created" in out.stdout
    assert_project_defaults(kubectl.json("get", "project", p, "-n", namespace), manifest)

    scene_manifest = scene(s, namespace, p, sequence=2, aspectRatio="9:16", durationSeconds=6)
    kubectl("create", "-f", "-", input=yaml.safe_dump(scene_manifest))
    stored = kubectl.json("get", "scn", s, "-n", namespace)
    assert stored["spec"] == scene_manifest["spec"]  # Scene spec has no server defaults
    assert SceneSpec.model_validate(stored["spec"]).wire() == stored["spec"]


def test_create_with_python_client_applies_defaults(
    api: k8s.CustomObjectsApi, namespace: str
) -> None:
    p, s = unique("py"), unique("py-s")
    manifest = project(p, namespace, mode="AdCreative")
    created = create(api, PROJECTS, manifest)
    assert created["spec"]["mode"] == "AdCreative"
    assert created["spec"]["retry"]["limit"] == 3  # defaults are in the create response already
    stored = get(api, PROJECTS, namespace, p)
    assert_project_defaults(stored, manifest)
    assert ProjectSpec.model_validate(stored["spec"]).scene_count() == 3

    create(api, SCENES, scene(s, namespace, p))
    listed = api.list_namespaced_custom_object(GROUP, VERSION, namespace, SCENES)
    assert [i["metadata"]["name"] for i in listed["items"]] == [s]
    assert listed["items"][0]["spec"]["projectRef"] == {"name": p}


FULL_PROJECT_SPEC = ProjectSpec.model_validate(
    {
        "prompt": "a lighthouse in a storm, " * 10,
        "mode": "AdCreative",
        "characterDescription": "an old keeper",
        "productDescription": "a raincoat",
        "style": "35mm film",
        "scenes": {"count": 50, "durationSeconds": 60, "aspectRatio": "1:1"},
        "planner": {"provider": "gemini", "model": "gemini-2.5-pro"},
        "video": {
            "provider": "replicate",
            "model": "google/veo-3.1",
            "params": {"seed": 7, "resolution": "1080p", "nested": {"a": [1, 2.5, None, True]}},
        },
        "generateVideos": True,
        "retry": {"limit": 20, "backoff": {"initialSeconds": 0, "factor": 1.5, "maxSeconds": 5}},
        "repair": {"missingClip": "Ignore", "intervalSeconds": 10},
        "budget": {"maxGenerations": 0},
        "paused": True,
        "storage": {"bucket": "my-bucket", "prefix": "videos/"},
        "deletionPolicy": "Delete",
    }
).wire()


def test_every_spec_field_survives_the_api_server(
    api: k8s.CustomObjectsApi, namespace: str
) -> None:
    # Nothing the model can express is pruned or altered (a CRD field missing or misspelt
    # would be dropped silently by the server).
    p = unique("full")
    body = project(p, namespace)
    body["spec"] = FULL_PROJECT_SPEC
    stored = create(api, PROJECTS, body)["spec"]
    assert is_within(FULL_PROJECT_SPEC, stored), json.dumps(stored, indent=1)
    assert ProjectSpec.model_validate(stored).wire() == FULL_PROJECT_SPEC

    full_scene = SceneSpec.model_validate(
        {
            "projectRef": {"name": p},
            "sequence": 999,
            "prompt": "x" * 5000,
            "negativePrompt": "no text",
            "durationSeconds": 1,
            "aspectRatio": "9:16",
            "video": {"provider": "veo", "model": "veo-3.1-generate-001", "params": {"k": "v"}},
        }
    ).wire()
    s = unique("full-s")
    body = scene(s, namespace, p)
    body["spec"] = full_scene
    assert create(api, SCENES, body)["spec"] == full_scene


# --- printer columns -----------------------------------------------------------------------


def table(kubectl: Kubectl, *args: str) -> tuple[list[str], dict[str, list[str]]]:
    lines = kubectl("get", *args).stdout.splitlines()
    header = lines[0].split()
    return header, {line.split()[0]: line.split() for line in lines[1:]}


def test_printer_columns(api: k8s.CustomObjectsApi, kubectl: Kubectl, namespace: str) -> None:
    p, s = unique("cols"), unique("cols-s")
    create(api, PROJECTS, project(p, namespace))
    create(api, SCENES, scene(s, namespace, p, sequence=4))
    header, rows = table(kubectl, "projects", "-n", namespace)
    assert header == ["NAME", "PHASE", "SCENES", "COMPLETED", "FAILED", "ASSEMBLED", "READY", "AGE"]
    assert len(rows[p]) == 2  # name and age only: no status yet

    ready = {"type": "Ready", "status": "False", "reason": "InProgress", "message": "1 of 3",
             "lastTransitionTime": "2026-01-01T00:00:00Z"}  # fmt: skip
    assembled = {**ready, "type": "Assembled", "reason": "WaitingForScenes"}
    status = {"phase": "Processing", "sceneCount": 3, "completedScenes": 1, "failedScenes": 0,
              "conditions": [ready, {**assembled, "status": "True"}]}  # fmt: skip
    api.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PROJECTS, p, {"status": status}, _content_type=MERGE
    )
    _, rows = table(kubectl, "vproj", "-n", namespace)
    assert rows[p][:7] == [p, "Processing", "3", "1", "0", "True", "False"]
    # -o wide adds the Ready message (priority 1), as cert-manager's Status column does
    header, rows = table(kubectl, "vproj", "-n", namespace, "-o", "wide")
    assert header == [
        "NAME",
        "PHASE",
        "SCENES",
        "COMPLETED",
        "FAILED",
        "ASSEMBLED",
        "READY",
        "MESSAGE",
        "AGE",
    ]
    assert rows[p][:10] == [p, "Processing", "3", "1", "0", "True", "False", "1", "of", "3"]

    header, rows = table(kubectl, "scn", "-n", namespace)
    assert header == ["NAME", "PROJECT", "SEQ", "PHASE", "ATTEMPTS", "TRIMMED", "READY", "AGE"]
    assert rows[s][:3] == [s, p, "4"]
    api.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, SCENES, s,
        {"status": {"phase": "Completed", "attempts": 2, "conditions": [{**ready, "status": "True"}],
                    "workingClip": {"bucket": "b", "key": "k-w1.mp4", "size": 1, "etag": "e",
                                    "durationSeconds": 3.0, "editHash": "w1", "sourceKey": "k.mp4",
                                    "verifiedAt": "2026-01-01T00:00:00Z"}}},
        _content_type=MERGE,
    )  # fmt: skip
    _, rows = table(kubectl, "scenes", "-n", namespace)
    assert rows[s][:7] == [s, p, "4", "Completed", "2", "3", "True"]


# --- invalid manifests are rejected by the API server --------------------------------------


def _without(doc: dict[str, Any], *path: str) -> dict[str, Any]:
    node = doc
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return doc


INVALID = [
    ("missing-prompt", "Project", lambda d: _without(d, "spec", "prompt"), "spec.prompt", "Required value"),
    ("count-negative", "Project", lambda d: d["spec"].update(scenes={"count": -1}) or d, "spec.scenes.count", "greater than or equal to 1"),
    ("count-zero", "Project", lambda d: d["spec"].update(scenes={"count": 0}) or d, "spec.scenes.count", "greater than or equal to 1"),
    ("count-51", "Project", lambda d: d["spec"].update(scenes={"count": 51}) or d, "spec.scenes.count", "less than or equal to 50"),
    ("aspect-4-3", "Project", lambda d: d["spec"].update(scenes={"aspectRatio": "4:3"}) or d, "spec.scenes.aspectRatio", '"4:3"'),
    ("prompt-5001", "Project", lambda d: d["spec"].update(prompt="p" * 5001) or d, "spec.prompt", "at most 5000"),
    ("bad-mode", "Project", lambda d: d["spec"].update(mode="Documentary") or d, "spec.mode", "Unsupported value"),
    ("bad-provider", "Project", lambda d: d["spec"].update(video={"provider": "sora"}) or d, "spec.video.provider", "Unsupported value"),
    ("retry-zero", "Project", lambda d: d["spec"].update(retry={"limit": 0}) or d, "spec.retry.limit", "greater than or equal to 1"),
    ("no-spec", "Project", lambda d: _without(d, "spec"), "spec", "Required value"),
    ("scene-no-projectref", "Scene", lambda d: _without(d, "spec", "projectRef"), "spec.projectRef", "Required value"),
    ("scene-sequence-0", "Scene", lambda d: d["spec"].update(sequence=0) or d, "spec.sequence", "greater than or equal to 1"),
    ("scene-empty-prompt", "Scene", lambda d: d["spec"].update(prompt="") or d, "spec.prompt", "at least 1"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "mutate", "field", "message"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_invalid_manifest_is_rejected_by_the_server(
    kubectl: Kubectl, namespace: str, kind: str, mutate: Any, field: str, message: str
) -> None:
    name = unique("bad")
    base = project(name, namespace) if kind == "Project" else scene(name, namespace, "p")
    manifest = mutate(base)
    # --validate=false: kubectl's own client-side check must not be what rejects it.
    proc = kubectl("create", "--validate=false", "-f", "-", input=yaml.safe_dump(manifest), check=False)  # fmt: skip
    assert proc.returncode != 0, proc.stdout
    assert f'The {kind} "{name}" is invalid' in proc.stderr, proc.stderr
    assert f"{field}:" in proc.stderr, proc.stderr
    assert message in proc.stderr, proc.stderr[:500]
    plural = "projects" if kind == "Project" else "scenes"
    assert kubectl("get", plural, "-n", namespace, "-o", "name").stdout.strip() == ""


def test_python_client_gets_422_with_the_field(api: k8s.CustomObjectsApi, namespace: str) -> None:
    body = project(unique("bad"), namespace)
    body["spec"]["scenes"] = {"count": -1}
    with pytest.raises(ApiException) as info:
        create(api, PROJECTS, body)
    assert info.value.status == 422
    details = json.loads(info.value.body)
    assert details["reason"] == "Invalid"
    assert [c["field"] for c in details["details"]["causes"]] == ["spec.scenes.count"]


def test_unknown_spec_fields_are_pruned(api: k8s.CustomObjectsApi, namespace: str) -> None:
    # Not rejected (no strict field validation on 1.20) but dropped, except in free-form params.
    p = unique("prune")
    body = project(p, namespace, bogus=1, video={"params": {"anything": {"goes": [1]}}})
    body["spec"]["scenes"] = {"count": 2, "typo": True}
    stored = create(api, PROJECTS, body)["spec"]
    assert "bogus" not in stored
    assert stored["scenes"] == {"count": 2, "aspectRatio": "16:9"}
    assert stored["video"]["params"] == {"anything": {"goes": [1]}}


# --- the status subresource ---------------------------------------------------------------


def test_status_subresource_semantics(api: k8s.CustomObjectsApi, namespace: str) -> None:
    p = unique("st")
    body = project(p, namespace)
    body["status"] = {"phase": "Completed", "sceneCount": 9}
    created = create(api, PROJECTS, body)
    assert "status" not in created, "status must be ignored on create"
    assert created["metadata"]["generation"] == 1

    patched = api.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PROJECTS, p,
        {"status": {"phase": "Processing", "sceneCount": 2}}, _content_type=MERGE,
    )  # fmt: skip
    assert patched["status"] == {"phase": "Processing", "sceneCount": 2}
    assert patched["metadata"]["generation"] == 1, "a status write must not bump generation"

    # Through the main resource, status is ignored (while the rest of the patch applies).
    main = api.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PROJECTS, p,
        {"metadata": {"labels": {"touched": "yes"}}, "status": {"phase": "Failed", "sceneCount": 0}},
        _content_type=MERGE,
    )  # fmt: skip
    assert main["metadata"]["labels"] == {"touched": "yes"}
    assert main["status"] == {"phase": "Processing", "sceneCount": 2}
    assert main["metadata"]["generation"] == 1

    # A spec change bumps generation and leaves status alone.
    spec = api.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PROJECTS, p, {"spec": {"paused": True}}, _content_type=MERGE
    )
    assert spec["metadata"]["generation"] == 2
    assert spec["spec"]["paused"] is True
    assert spec["status"] == {"phase": "Processing", "sceneCount": 2}

    # And through the status subresource, spec is ignored.
    status_with_spec = api.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PROJECTS, p,
        {"spec": {"paused": False}, "status": {"observedGeneration": 2}}, _content_type=MERGE,
    )  # fmt: skip
    assert status_with_spec["spec"]["paused"] is True
    assert status_with_spec["status"]["observedGeneration"] == 2
    assert status_with_spec["metadata"]["generation"] == 2
    final = get(api, PROJECTS, namespace, p)
    assert final["status"] == {"phase": "Processing", "sceneCount": 2, "observedGeneration": 2}


@pytest.mark.parametrize("missing", ["reason", "message", "lastTransitionTime"])
def test_a_condition_must_carry_what_metav1_condition_requires(
    api: k8s.CustomObjectsApi, namespace: str, missing: str
) -> None:
    p = unique("cond")
    create(api, PROJECTS, project(p, namespace))
    condition = {"type": "Ready", "status": "False", "reason": "Waiting", "message": "m",
                 "lastTransitionTime": "2026-01-01T00:00:00Z"}  # fmt: skip
    del condition[missing]
    with pytest.raises(ApiException) as info:
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PROJECTS, p,
            {"status": {"conditions": [condition]}}, _content_type=MERGE,
        )  # fmt: skip
    assert info.value.status == 422
    (cause,) = json.loads(info.value.body)["details"]["causes"]
    assert cause["reason"] == "FieldValueRequired", cause
    # 1.20 names the list field without the index; later servers add [0]
    assert cause["field"] in {f"status.conditions.{missing}", f"status.conditions[0].{missing}"}


def test_invalid_status_is_rejected(api: k8s.CustomObjectsApi, namespace: str) -> None:
    p = unique("bad-st")
    create(api, PROJECTS, project(p, namespace))
    with pytest.raises(ApiException) as info:
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PROJECTS, p,
            {"status": {"phase": "Exploded"}}, _content_type=MERGE,
        )  # fmt: skip
    assert info.value.status == 422
    assert "status.phase" in info.value.body


@pytest.mark.parametrize(
    ("status", "field"),
    [
        ({"conditions": [{"type": "Ready!"}]}, "type"),
        ({"conditions": [{"type": "x" * 317}]}, "type"),
        ({"conditions": [{"reason": "Not CamelCase"}]}, "reason"),
        ({"conditions": [{"reason": "Trailing,"}]}, "reason"),
        ({"conditions": [{"lastTransitionTime": "yesterday"}]}, "lastTransitionTime"),
        ({"plan": {"plannedAt": "soon"}}, "plannedAt"),
        ({"lastError": {"at": "2026-13-45"}}, "at"),
    ],
    ids=["type-pattern", "type-length", "reason-space", "reason-end", "ltt", "plannedAt", "at"],
)
def test_condition_patterns_and_timestamps_are_validated_by_the_server(
    api: k8s.CustomObjectsApi, namespace: str, status: dict[str, Any], field: str
) -> None:
    """metav1.Condition's patterns on type and reason, and `format: date-time` on every
    timestamp (a sample here; tests/unit/test_crds.py checks that every one has it)."""
    p = unique("fmt")
    create(api, PROJECTS, project(p, namespace))
    good = {
        "conditions": [
            {"type": "example.com/Ready", "status": "True", "reason": "Done_1:ok",
             "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ],
        "plan": {"provider": "local", "model": "m", "plannedAt": "2026-01-01T00:00:00Z",
                 "specHash": "h"},
        "lastError": {"reason": "PlanningFailed", "at": "2026-01-01T00:00:00Z"},
    }  # fmt: skip
    api.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PROJECTS, p, {"status": good}, _content_type=MERGE
    )
    ((key, change),) = status.items()
    bad = json.loads(json.dumps(good))
    if isinstance(change, list):
        bad[key][0].update(change[0])
    else:
        bad[key].update(change)
    with pytest.raises(ApiException) as info:
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PROJECTS, p, {"status": bad}, _content_type=MERGE
        )
    assert info.value.status == 422, info.value.body
    assert field in info.value.body


FULL_SCENE_STATUS = SceneStatus.model_validate(
    {
        "phase": "Completed",
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Completed", "message": "done",
             "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "Generating", "status": "False", "reason": "ClipUploaded", "message": "ok",
             "lastTransitionTime": "2026-01-01T00:00:00Z"},
        ],
        "observedGeneration": 1,
        "specHash": "abc",
        "originalVideoClipS3Key": "p/scene-001/take-1.mp4",
        "workingVideoClipS3Key": "p/scene-001/take-1.mp4",
        "clip": {"bucket": "b", "key": "p/scene-001/take-1.mp4", "size": 123, "etag": '"e"',
                 "sha256": "f" * 64, "specHash": "abc", "take": 1, "provider": "local",
                 "jobId": "j1", "verifiedAt": "2026-01-01T00:00:00Z"},
        "generation": {"provider": "local", "model": "m", "jobId": "j1",
                       "startedAt": "2026-01-01T00:00:00Z", "attempt": 1, "specHash": "abc",
                       "take": 1, "polls": 3},
        "take": 1,
        "attempts": 1,
        "generationsStarted": 2,
        "lastError": {"reason": "Timeout", "message": "slow", "retryable": True, "at": "2026-01-01T00:00:00Z"},
        "nextRetryAt": "2026-01-01T00:01:00Z",
        "handledRegenerateToken": "r1",
        "handledRetryToken": "t1",
        "handledProjectRegenerateToken": "pr1",
        "handledProjectRetryToken": "pt1",
    }
).wire()  # fmt: skip

FULL_PROJECT_STATUS = ProjectStatus.model_validate(
    {
        "phase": "Completed",
        "conditions": [{"type": "Ready", "status": "True", "reason": "Completed",
                        "message": "3 of 3", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        "observedGeneration": 1,
        "sceneCount": 3, "pendingScenes": 0, "processingScenes": 0, "completedScenes": 3,
        "failedScenes": 0,
        "usage": {"generationsStarted": 4, "secondsOfVideo": 24, "estimatedCostUsd": 1.25},
        "plan": {"provider": "local", "model": "m", "plannedAt": "2026-01-01T00:00:00Z",
                 "specHash": "h", "scenes": [{"prompt": "a", "negativePrompt": "b"}, {"prompt": "c"}]},
        "lastError": {"reason": "PlanningFailed", "message": "quota", "retryable": False},
    }
).wire()  # fmt: skip


def test_every_status_field_survives_the_api_server(
    api: k8s.CustomObjectsApi, namespace: str
) -> None:
    # What the operator writes to status comes back unchanged (nothing pruned or coerced).
    p, s = unique("fs"), unique("fs-s")
    create(api, PROJECTS, project(p, namespace))
    create(api, SCENES, scene(s, namespace, p))
    for plural, name, status, model in (
        (PROJECTS, p, FULL_PROJECT_STATUS, ProjectStatus),
        (SCENES, s, FULL_SCENE_STATUS, SceneStatus),
    ):
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, plural, name, {"status": status}, _content_type=MERGE
        )
        stored = get(api, plural, namespace, name)["status"]
        assert is_within(status, stored), f"{plural}: sent\n{status}\nstored\n{stored}"
        assert model.model_validate(stored).wire() == status


def test_empty_strings_are_valid_string_values(api: k8s.CustomObjectsApi, namespace: str) -> None:
    # Kubernetes accepts "" for `type: string` (a Condition with an empty message, a user's
    # style: ""). An API server built with Go >= 1.16 from 1.20 sources without
    # kube-openapi#230 reports "" as "null" and answers 422 (kubernetes/kubernetes#99804);
    # clients then have to avoid "" where a real cluster would take it.
    p = unique("empty")
    condition = {"type": "Ready", "status": "False", "reason": "Waiting", "message": "",
                 "lastTransitionTime": "2026-01-01T00:00:00Z"}  # fmt: skip
    assert Condition.model_validate(condition).status == "False"
    rejected = []
    try:
        stored = create(api, PROJECTS, project(p, namespace, style=""))
        assert stored["spec"]["style"] == ""
    except ApiException as exc:
        rejected.append(f'spec.style: "": {exc.body}')
        create(api, PROJECTS, project(p, namespace))
    try:
        patched = api.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PROJECTS, p,
            {"status": {"conditions": [condition]}}, _content_type=MERGE,
        )  # fmt: skip
        assert patched["status"]["conditions"] == [condition]
    except ApiException as exc:
        rejected.append(f"status.conditions with an empty message: {exc.body}")
    assert not rejected, "the API server rejects empty strings (kubernetes#99804?):\n" + "\n".join(rejected)  # fmt: skip


# --- garbage collection -------------------------------------------------------------------


@pytest.mark.usefixtures("garbage_collection")
def test_deleting_a_project_garbage_collects_its_scenes(
    api: k8s.CustomObjectsApi, kubectl: Kubectl, namespace: str
) -> None:
    p = unique("gc")
    owner = create(api, PROJECTS, project(p, namespace))
    owner_ref = {
        "apiVersion": API_VERSION,
        "kind": v.PROJECT_KIND,
        "name": p,
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    owned = []
    for seq in (1, 2):
        body = scene(unique(f"gc-{seq}"), namespace, p, sequence=seq)
        body["metadata"]["ownerReferences"] = [owner_ref]
        created = create(api, SCENES, body)
        assert created["metadata"]["ownerReferences"] == [owner_ref]
        owned.append(created["metadata"]["name"])
    bystander = unique("gc-free")
    create(api, SCENES, scene(bystander, namespace, p))  # same projectRef, no ownerReference

    began = time.monotonic()
    kubectl("delete", "project", p, "-n", namespace, "--wait=false")
    remaining = owned
    while remaining:
        names = kubectl("get", "scenes", "-n", namespace, "-o", "name").stdout.split()
        remaining = [n for n in owned if f"scene.{GROUP}/{n}" in names]
        if not remaining:
            break
        elapsed = time.monotonic() - began
        assert elapsed < 90, f"scenes {remaining} still exist {elapsed:.0f}s after the project"
        time.sleep(1)
    took = time.monotonic() - began
    print(f"\ngarbage collector removed {len(owned)} owned scenes {took:.1f}s after the delete")
    assert kubectl("get", "project", p, "-n", namespace, "--ignore-not-found", "-o", "name").stdout == ""  # fmt: skip
    # Only owned scenes go: the projectRef alone does not make a Scene a dependent.
    assert get(api, SCENES, namespace, bystander)["metadata"]["name"] == bystander
