"""Scene planning: the real google-genai SDK against a local Gemini protocol server, the
operator as a separate process, a real API server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import yaml

from tests.integration.helpers import Cluster, condition, is_true, wait_project, wait_until
from tests.support.gemini_server import GeminiServer


@pytest.fixture
def gemini() -> Iterator[GeminiServer]:
    with GeminiServer(scene_count=4) as server:
        yield server


def manifest(name: str, count: int = 4, **extra: object) -> str:
    spec: dict[str, object] = {
        "prompt": "A street dancer performs in the rain at night",
        "mode": "MusicVideo",
        "style": "neon noir",
        "scenes": {"count": count, "durationSeconds": 4},
        "planner": {"provider": "gemini"},
    }
    spec.update(extra)
    doc = {
        "apiVersion": "video.scene-operator.io/v1alpha1",
        "kind": "Project",
        "metadata": {"name": name},
        "spec": spec,
    }
    return yaml.safe_dump(doc)


def planning_failed(cluster: Cluster, ns: str, name: str) -> dict:
    def check() -> dict | None:
        p = cluster.project(ns, name)
        c = condition(p, "ScenesPlanned")
        return p if c and c["status"] == "False" and c["reason"] == "PlanningFailed" else None

    return wait_until(check, timeout=60, what="ScenesPlanned=False PlanningFailed")


def test_gemini_plan_creates_owned_scenes(
    cluster, namespace, run_operator, kubectl, gemini
) -> None:
    run_operator(namespace, env=gemini.env())
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest("dance"))
    waited = kubectl(
        "wait",
        "-n",
        namespace,
        "--for=condition=ScenesPlanned",
        "project/dance",
        "--timeout=60s",
        timeout=90,
    )
    assert "condition met" in waited.stdout
    project = wait_project(cluster, namespace, "dance")
    st = project["status"]
    assert (st["sceneCount"], st["pendingScenes"], st["completedScenes"]) == (4, 4, 0)
    assert st["phase"] == "ScenesReady"
    assert st["plan"]["provider"] == "gemini" and st["plan"]["model"] == "gemini-2.5-pro"
    assert len(st["plan"]["scenes"]) == 4
    scenes = cluster.scenes(namespace, "dance")
    assert [s["metadata"]["name"] for s in scenes] == [f"dance-scene-00{i}" for i in range(1, 5)]
    for s in scenes:
        assert s["metadata"]["ownerReferences"][0]["uid"] == project["metadata"]["uid"]
        assert s["metadata"]["labels"]["video.scene-operator.io/project"] == "dance"
        assert s["spec"]["durationSeconds"] == 4 and s["spec"]["prompt"]
    assert len(gemini.requests) == 1
    body = gemini.requests[0]["body"]
    assert (
        "responseSchema" in body["generationConfig"]
        or "responseJsonSchema" in body["generationConfig"]
    )
    assert "ScenesPlanned" in cluster.event_reasons(namespace, "dance")


def test_declared_scenes_skip_the_planner(
    cluster, namespace, run_operator, kubectl, gemini
) -> None:
    run_operator(namespace, env=gemini.env())
    scenes = [
        {
            "apiVersion": "video.scene-operator.io/v1alpha1",
            "kind": "Scene",
            "metadata": {"name": f"mine-{i}"},
            "spec": {
                "projectRef": {"name": "gitops"},
                "sequence": i,
                "prompt": f"shot {i} from Git",
            },
        }
        for i in (1, 2)
    ]
    docs = "---\n".join([yaml.safe_dump(s) for s in scenes] + [manifest("gitops")])
    kubectl("apply", "-n", namespace, "-f", "-", input=docs)
    wait_project(cluster, namespace, "gitops")
    # The Scenes and the Project come on two watches: the Project may be recounted once
    # before the second Scene is cached (the counters are paced, the conditions are not).
    project = wait_until(
        lambda: (
            (p := cluster.project(namespace, "gitops"))["status"].get("sceneCount") == 2
            and is_true(p, "Ready")
            and p
        ),
        timeout=60,
        what="both declared Scenes counted",
    )
    assert condition(project, "ScenesPlanned")["reason"] == "ScenesDeclared"
    time.sleep(1)
    assert gemini.requests == []
    assert len(cluster.scenes(namespace, "gitops")) == 2


def test_rate_limit_then_success_is_planned(
    cluster, namespace, run_operator, kubectl, gemini
) -> None:
    gemini.script = [429]
    run_operator(namespace, env=gemini.env())
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest("busy", count=2))
    wait_project(cluster, namespace, "busy")
    assert len(cluster.scenes(namespace, "busy")) == 2
    assert len(gemini.requests) == 2


def test_persistent_500_reports_and_backs_off_without_crashing(
    cluster, namespace, run_operator, kubectl, gemini
) -> None:
    gemini.default_behaviour = 500
    op = run_operator(namespace, env=gemini.env())
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest("down", count=2))
    p = planning_failed(cluster, namespace, "down")
    assert p["status"]["phase"] == "GeneratingScenes"
    assert p["status"]["lastError"]["retryable"] is True
    assert condition(p, "Ready")["status"] == "False"
    assert "PlanningFailed" in cluster.event_reasons(namespace, "down")
    first = len(gemini.requests)
    time.sleep(6)
    assert op.alive()
    later = len(gemini.requests)
    assert later > first  # retried ...
    assert later <= first + 12  # ... with backoff, not in a hot loop
    assert cluster.scenes(namespace, "down") == []
    gemini.default_behaviour = "ok"
    wait_project(cluster, namespace, "down", cond="ScenesPlanned", timeout=60)
    assert len(cluster.scenes(namespace, "down")) == 2


@pytest.mark.parametrize(
    ("behaviour", "reason"), [("invalid_json", "InvalidPlan"), ("blocked", "PromptBlocked")]
)
def test_unusable_plans_fail_permanently_and_create_nothing(
    behaviour, reason, cluster, namespace, run_operator, kubectl, gemini
) -> None:
    gemini.default_behaviour = behaviour
    run_operator(namespace, env=gemini.env())
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest("nope"))
    p = planning_failed(cluster, namespace, "nope")
    assert p["status"]["lastError"]["reason"] == reason
    assert p["status"]["phase"] == "Failed"
    assert reason in condition(p, "ScenesPlanned")["message"]
    time.sleep(3)
    assert len(gemini.requests) == 1  # permanent: not retried until the spec changes
    assert cluster.scenes(namespace, "nope") == []
    gemini.default_behaviour = "ok"
    cluster.patch_project(
        namespace, "nope", {"spec": {"prompt": "A street dancer performs at dawn"}}
    )
    wait_project(cluster, namespace, "nope", cond="ScenesPlanned", timeout=60)
    assert len(gemini.requests) == 2


def test_restart_between_scene_creates_finishes_the_plan_exactly(
    cluster, namespace, run_operator, kubectl, gemini
) -> None:
    """The state an operator killed between creating Scene 2 and Scene 3 leaves behind:
    the plan recorded in status and two of its four Scenes. (Random SIGKILLs during whole
    runs are in the resilience suite.)"""
    op = run_operator(namespace, env=gemini.env())
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest("half"))
    wait_project(cluster, namespace, "half", cond="ScenesPlanned")
    op.stop()
    for name in ("half-scene-003", "half-scene-004"):
        kubectl("delete", "-n", namespace, "scene", name)
    assert len(cluster.scenes(namespace, "half")) == 2
    op.start()
    op.wait_healthy()
    wait_until(lambda: len(cluster.scenes(namespace, "half")) == 4, timeout=30, what="4 scenes")
    time.sleep(1)
    names = [s["metadata"]["name"] for s in cluster.scenes(namespace, "half")]
    assert names == [f"half-scene-00{i}" for i in range(1, 5)]
    assert len(gemini.requests) == 1  # finished from status.plan, no second planner call
    p = wait_project(cluster, namespace, "half")
    assert p["status"]["sceneCount"] == 4


def test_reapplying_the_manifest_changes_nothing_and_spec_is_never_written(
    cluster, namespace, run_operator, kubectl, gemini
) -> None:
    run_operator(namespace, env=gemini.env())
    text = manifest("gitops-owned", count=2)
    kubectl("apply", "-n", namespace, "-f", "-", input=text)
    wait_project(cluster, namespace, "gitops-owned")
    again = kubectl("apply", "-n", namespace, "-f", "-", input=text)
    assert "unchanged" in again.stdout
    p = cluster.project(namespace, "gitops-owned")
    assert p["metadata"]["generation"] == 1
    assert p["status"]["observedGeneration"] == 1
    ours = [
        m
        for m in p["metadata"].get("managedFields", [])
        if m["manager"].startswith("scene-operator")
    ]
    assert ours, p["metadata"].get("managedFields")
    for entry in ours:
        assert "f:spec" not in entry.get("fieldsV1", {}), entry
    annotations = p["metadata"].get("annotations") or {}
    assert not [a for a in annotations if "kopf" in a or a.startswith("video.scene-operator.io/")]
    assert is_true(p, "Ready")
