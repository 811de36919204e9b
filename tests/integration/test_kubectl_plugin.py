"""`kubectl video` as users run it: the real kubectl finds the installed `kubectl-video` on
PATH and the plugin talks to the real API server with the kubeconfig's context."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller import __version__
from controller.api import vocabulary as v
from controller.demo.cluster import kubectl_path
from tests.integration.helpers import Cluster, is_true, wait_project, wait_until
from tests.integration.helpers import condition as condition_of

PLUGIN = Path(sys.executable).parent / "kubectl-video"
MESSAGE = "replicate answered 503 (service unavailable); retry 2 of 3 in 20s"
CLIP_KEY = "scene-operator/ns/uid/scenes/001/0123abcd-t0.mp4"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH on which kubectl finds the installed plugin (and nothing else of this venv)."""
    if not PLUGIN.exists():
        pytest.fail(f"{PLUGIN} is not installed: pip install -e . installs the entry points")
    folder = tmp_path_factory.mktemp("plugin-path")
    (folder / "kubectl-video").symlink_to(PLUGIN)
    return f"{folder}{os.pathsep}{Path(kubectl_path()).parent}{os.pathsep}/usr/bin:/bin"


def kubeconfig_with(source: str, path: Path, contexts: dict[str, str], current: str) -> str:
    """A copy of `source` with one context per (name, namespace), all on its cluster/user."""
    config = yaml.safe_load(Path(source).read_text())
    base = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    config["contexts"] = [
        {"name": name, "context": {**base["context"], "namespace": ns}}
        for name, ns in contexts.items()
    ]
    config["current-context"] = current
    path.write_text(yaml.safe_dump(config))
    return str(path)


def video(
    plugin_path: str,
    kubeconfig: str,
    *args: str,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> str:
    env = {
        "PATH": plugin_path,
        "KUBECONFIG": kubeconfig,
        "HOME": os.environ.get("HOME", "/tmp"),
        **(env or {}),
    }
    proc = subprocess.run(
        [kubectl_path(), "video", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check:
        assert proc.returncode == 0, f"kubectl video {' '.join(args)}: {proc.stderr}"
        return proc.stdout
    return proc.stdout + proc.stderr


def condition(type_: str, status: str, reason: str, message: str) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
    }


def post_event(
    cluster: Cluster,
    ns: str,
    kind: str,
    name: str,
    reason: str,
    message: str,
    component: str = v.MANAGER,
) -> None:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    cluster.core.create_namespaced_event(
        ns,
        {
            "metadata": {"generateName": f"{name}.", "namespace": ns},
            "involvedObject": {
                "apiVersion": v.API_VERSION,
                "kind": kind,
                "name": name,
                "namespace": ns,
            },
            "reason": reason,
            "message": message,
            "type": "Warning" if reason == "RetryScheduled" else "Normal",
            "source": {"component": component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        },
    )


def make_scene(cluster: Cluster, ns: str, name: str, project: str, seq: int) -> None:
    body = {
        "apiVersion": v.API_VERSION,
        "kind": v.SCENE_KIND,
        "metadata": {"name": name},
        "spec": {"projectRef": {"name": project}, "sequence": seq, "prompt": f"shot {seq}"},
    }
    cluster.custom.create_namespaced_custom_object(v.GROUP, v.VERSION, ns, v.SCENE_PLURAL, body)


@pytest.fixture
def fleet(cluster: Cluster, namespace: str) -> str:
    """Project `lh` with a completed and a retrying Scene, a Scene of another Project, and
    Events, written as the operator would (no operator runs: the plugin only reads)."""
    spec = {"prompt": "A lighthouse", "planner": {"provider": "local"}}
    for name in ("lh", "other"):
        cluster.create_project(namespace, name, spec)
    make_scene(cluster, namespace, "lh-scene-001", "lh", 1)
    make_scene(cluster, namespace, "lh-scene-002", "lh", 2)
    make_scene(cluster, namespace, "other-scene-001", "other", 1)
    cluster.custom.patch_namespaced_custom_object_status(
        v.GROUP, v.VERSION, namespace, v.PROJECT_PLURAL, "lh",
        {"status": {
            "phase": "Processing", "sceneCount": 2, "completedScenes": 1,
            "usage": {"generationsStarted": 3},
            "conditions": [condition("Ready", "False", "InProgress", "1 of 2 scenes ready")],
        }},
    )  # fmt: skip
    cluster.patch_scene_status(
        namespace, "lh-scene-001",
        {
            "phase": "Completed", "attempts": 1,
            "conditions": [condition("Ready", "True", "Completed", "clip verified in S3")],
            "clip": {
                "bucket": "b", "key": CLIP_KEY, "size": 10, "etag": "e", "specHash": "h",
                "take": 0, "verifiedAt": "2026-11-30T12:00:00Z",
            },
        },
    )  # fmt: skip
    cluster.patch_scene_status(
        namespace, "lh-scene-002",
        {
            "phase": "Pending", "attempts": 2,
            "conditions": [condition("Ready", "False", "RetryScheduled", MESSAGE)],
            "lastError": {"reason": "ProviderUnavailable", "message": "503"},
        },
    )  # fmt: skip
    post_event(cluster, namespace, "Project", "lh", "ScenesPlanned", "planned 2 scenes")
    post_event(cluster, namespace, "Scene", "lh-scene-001", "ClipUploaded", "clip uploaded")
    post_event(cluster, namespace, "Scene", "lh-scene-002", "RetryScheduled", MESSAGE)
    post_event(cluster, namespace, "Scene", "other-scene-001", "ClipAdopted", "not lh's")
    return namespace


def test_status_uses_the_context_namespace_and_shows_why(
    fleet: str, kubeconfig: str, plugin_path: str, tmp_path: Path
) -> None:
    config = kubeconfig_with(kubeconfig, tmp_path / "kc", {"work": fleet}, current="work")
    out = video(plugin_path, config, "status", "project/lh")
    assert out.startswith(f"Project {fleet}/lh\n")
    assert "Ready:        False (InProgress)" in out and "1 of 2 scenes ready" in out
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("  1 ") or line.startswith("  2 ")}  # fmt: skip
    assert {"Completed", "1", CLIP_KEY} <= set(rows["lh-scene-001"].split())
    assert "Pending" in rows["lh-scene-002"] and "replicate answered 503" in rows["lh-scene-002"]
    assert rows["lh-scene-002"].split()[3] == "2"  # attempts
    for reason in ("ScenesPlanned", "ClipUploaded", "RetryScheduled"):
        assert reason in out
    assert "ClipAdopted" not in out and "other-scene-001" not in out
    # Without a REF: every Project of the namespace.
    everything = video(plugin_path, config, "status")
    assert f"Project {fleet}/lh" in everything and f"Project {fleet}/other" in everything


def test_output_json_and_yaml(fleet: str, kubeconfig: str, plugin_path: str, tmp_path) -> None:
    config = kubeconfig_with(kubeconfig, tmp_path / "kc", {"work": fleet}, current="work")
    as_json = json.loads(video(plugin_path, config, "status", "lh", "-o", "json"))
    as_yaml = yaml.safe_load(video(plugin_path, config, "status", "lh", "-o", "yaml"))
    for data in (as_json, as_yaml):
        (item,) = data["items"]
        assert (item["name"], item["namespace"], item["phase"]) == ("lh", fleet, "Processing")
        first, second = item["scenes"]
        assert (first["clip_key"], second["attempts"]) == (CLIP_KEY, 2)
        assert second["ready"] == {
            "status": "False",
            "reason": "RetryScheduled",
            "message": MESSAGE,
        }
        assert [e["reason"] for e in item["events"]] == sorted(
            ["ScenesPlanned", "ClipUploaded", "RetryScheduled"],
            key=[e["reason"] for e in item["events"]].index,
        ) and len(item["events"]) == 3
    scene = json.loads(video(plugin_path, config, "status", "scene/lh-scene-002", "-o", "json"))
    assert [e["reason"] for e in scene["items"][0]["events"]] == ["RetryScheduled"]


def test_context_namespace_and_all_namespaces_flags(
    fleet: str, kubeconfig: str, plugin_path: str, tmp_path: Path
) -> None:
    config = kubeconfig_with(
        kubeconfig, tmp_path / "kc", {"elsewhere": "kube-public", "work": fleet}, "elsewhere"
    )
    assert "No projects found in namespace kube-public" in video(plugin_path, config, "status")
    assert f"Project {fleet}/lh" in video(plugin_path, config, "status", "--context", "work")
    assert f"Project {fleet}/lh" in video(plugin_path, config, "status", "-n", fleet)
    listed = json.loads(video(plugin_path, config, "status", "-A", "-o", "json"))
    assert {("lh", fleet), ("other", fleet)} <= {
        (i["name"], i["namespace"]) for i in listed["items"]
    }
    missing = video(plugin_path, config, "status", "project/nope", "-n", fleet, check=False)
    assert "project/nope" in missing and "not found" in missing
    bad = video(plugin_path, config, "status", "--context", "no-such", check=False)
    assert "context 'no-such' not found" in bad


def test_events_of_a_project_are_its_own_and_its_scenes(
    fleet: str, kubeconfig: str, plugin_path: str, tmp_path: Path
) -> None:
    config = kubeconfig_with(kubeconfig, tmp_path / "kc", {"work": fleet}, current="work")
    rows = json.loads(video(plugin_path, config, "events", "project/lh", "-o", "json"))["items"]
    assert sorted((e["object"], e["reason"]) for e in rows) == [
        ("project/lh", "ScenesPlanned"),
        ("scene/lh-scene-001", "ClipUploaded"),
        ("scene/lh-scene-002", "RetryScheduled"),
    ]
    table = video(plugin_path, config, "events")  # every Project's and Scene's
    assert table.splitlines()[0].split()[:3] == ["LAST", "SEEN", "TYPE"]
    assert "ClipAdopted" in table and "RetryScheduled" in table


def test_regenerate_and_retry_write_fresh_tokens(
    fleet: str, cluster: Cluster, kubeconfig: str, plugin_path: str, tmp_path: Path
) -> None:
    config = kubeconfig_with(kubeconfig, tmp_path / "kc", {"work": fleet}, current="work")
    out = video(plugin_path, config, "regenerate", "scene/lh-scene-001")
    annotations = cluster.scenes(fleet, "lh")[0]["metadata"]["annotations"]
    token = annotations[v.ANNOTATION_REGENERATE]
    assert out.strip() == f"scene/lh-scene-001 annotated {v.ANNOTATION_REGENERATE}={token}"
    video(plugin_path, config, "retry", "project/lh")
    first = cluster.project(fleet, "lh")["metadata"]["annotations"][v.ANNOTATION_RETRY]
    video(plugin_path, config, "retry", "project/lh")
    assert cluster.project(fleet, "lh")["metadata"]["annotations"][v.ANNOTATION_RETRY] != first


def test_status_of_a_project_the_operator_generated(
    cluster: Cluster, namespace: str, run_operator, kubeconfig: str, plugin_path: str, tmp_path
) -> None:
    run_operator(namespace, {"SCENE_OPERATOR_SCENE_EVENTS": "all"})  # Events on Scenes
    cluster.create_project(
        namespace,
        "made",
        {
            "prompt": "A lighthouse keeper finds a message in a bottle",
            "scenes": {"count": 2, "durationSeconds": 1},
            "planner": {"provider": "local"},
            "video": {"provider": "local"},
            "generateVideos": True,
        },
    )
    wait_project(cluster, namespace, "made")
    config = kubeconfig_with(kubeconfig, tmp_path / "kc", {"work": namespace}, current="work")
    (item,) = json.loads(video(plugin_path, config, "status", "made", "-o", "json"))["items"]
    assert (item["phase"], item["ready"]["status"]) == ("Completed", "True")
    keys = [s["status"]["clip"]["key"] for s in cluster.scenes(namespace, "made")]
    assert [s["clip_key"] for s in item["scenes"]] == keys
    assert all(s["phase"] == "Completed" and s["attempts"] == 1 for s in item["scenes"])
    reasons = [e["reason"] for e in item["events"]]
    assert "ScenesPlanned" in reasons and reasons.count("ClipUploaded") == 2


def test_the_plugin_binary_is_on_the_venvs_path() -> None:
    # What `pip install .` gives a user: both commands next to the interpreter.
    assert shutil.which("kubectl-video", path=str(PLUGIN.parent))
    assert shutil.which("scene-operator", path=str(PLUGIN.parent))


def test_version_is_the_packages(kubeconfig: str, plugin_path: str) -> None:
    assert video(plugin_path, kubeconfig, "--version").strip() == f"kubectl-video {__version__}"


# An Event or a provider error can carry anything: a window title, a screen clear, a
# carriage return that hides what came before, a right-to-left override.
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\x1b[0m\rhidden \u202egnp.exe\x9b6n done"


def test_only_the_operators_events_are_shown_and_no_control_character_is_printed(
    fleet: str, cluster: Cluster, kubeconfig: str, plugin_path: str, tmp_path: Path
) -> None:
    config = kubeconfig_with(kubeconfig, tmp_path / "kc", {"work": fleet}, current="work")
    post_event(cluster, fleet, "Project", "lh", "ClipsDeleted", "forged", component="mallory")
    post_event(cluster, fleet, "Scene", "lh-scene-002", "GenerationFailed", HOSTILE)
    cluster.patch_scene_status(
        fleet, "lh-scene-002",
        {"conditions": [condition("Ready", "False", "RetryScheduled", HOSTILE)]},
    )  # fmt: skip
    outputs = [
        video(plugin_path, config, *args)
        for args in (
            ("status", "project/lh"),
            ("status", "scene/lh-scene-002"),
            ("events",),
            ("events", "project/lh"),
            ("status", "lh", "-o", "yaml"),
            ("status", "lh", "-o", "json"),
        )
    ]
    for out in outputs:
        assert "forged" not in out and "mallory" not in out
        assert not [c for c in out if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) <= 0x9F], out
        assert "\u202e" not in out
    assert "red" in outputs[1] and "hidden" in outputs[1] and "done" in outputs[1]
    assert "GenerationFailed" in outputs[2]
    error = video(plugin_path, config, "status", "project/x\x1b[2J", check=False)
    assert "\x1b" not in error and "project/x[2J" in error


def test_pause_and_resume_through_the_annotation(
    fleet: str, cluster: Cluster, kubeconfig: str, plugin_path: str, tmp_path: Path
) -> None:
    config = kubeconfig_with(kubeconfig, tmp_path / "kc", {"work": fleet}, current="work")
    out = video(plugin_path, config, "pause", "project/lh")
    assert out.startswith("project/lh paused")
    assert cluster.project(fleet, "lh")["metadata"]["annotations"][v.ANNOTATION_PAUSED] == "true"
    assert "Phase:        Processing  (paused)" in video(plugin_path, config, "status", "lh")
    assert video(plugin_path, config, "resume", "lh").strip() == "project/lh resumed"
    assert v.ANNOTATION_PAUSED not in (cluster.project(fleet, "lh")["metadata"].get("annotations") or {})  # fmt: skip
    assert "(paused)" not in video(plugin_path, config, "status", "lh")
    cluster.patch_project(fleet, "other", {"spec": {"paused": True}})
    assert "spec.paused is true: it stays paused" in video(plugin_path, config, "resume", "other")
    wrong = video(plugin_path, config, "pause", "scene/lh-scene-001", check=False)
    assert "takes a Project (project/NAME)" in wrong


def test_status_watch_prints_each_change_until_ctrl_c(
    fleet: str, cluster: Cluster, kubeconfig: str, plugin_path: str, tmp_path: Path
) -> None:
    config = kubeconfig_with(kubeconfig, tmp_path / "kc", {"work": fleet}, current="work")
    env = {"PATH": plugin_path, "KUBECONFIG": config, "HOME": os.environ.get("HOME", "/tmp")}
    proc = subprocess.Popen(
        [kubectl_path(), "video", "status", "project/lh", "--watch", "--interval", "0.3"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()  # type: ignore[union-attr]

    def read_until(text: str, timeout: float = 30) -> list[str]:
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                seen.append(lines.get(timeout=0.2))
            except queue.Empty:
                continue
            if text in seen[-1]:
                return seen
        raise AssertionError(f"{text!r} not printed: {seen}")

    try:
        first = read_until("Events (latest 3)")
        assert first[0] == f"Project {fleet}/lh\n"
        time.sleep(2)  # several looks: nothing changed, so no second block
        rest = []
        while not lines.empty():
            rest.append(lines.get())
        assert len(rest) == 4 and not any(x.startswith("Project ") for x in rest), rest
        cluster.custom.patch_namespaced_custom_object_status(
            v.GROUP, v.VERSION, fleet, v.PROJECT_PLURAL, "lh",
            {"status": {"completedScenes": 2, "phase": "Completed"}},
        )  # fmt: skip
        again = read_until("Events (latest 3)")
        assert again[:2] == ["\n", f"Project {fleet}/lh\n"]
        assert "  Phase:        Completed\n" in again
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0, proc.stderr.read()  # type: ignore[union-attr]
        assert "Traceback" not in proc.stderr.read()  # type: ignore[union-attr]
    finally:
        proc.kill()
        proc.wait()


def test_a_paused_project_waits_for_resume_then_open_gives_working_links(
    cluster: Cluster, namespace: str, run_operator, s3, kubeconfig: str, plugin_path: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    """`kubectl video pause` before the operator sees the Project: it plans, starts no
    job; `resume` lets it finish; `open` prints URLs that download the film and clips."""
    cluster.create_project(
        namespace,
        "held",
        {
            "prompt": "A lighthouse keeper finds a message in a bottle",
            "scenes": {"count": 2, "durationSeconds": 1},
            "planner": {"provider": "local"},
            "video": {"provider": "local"},
            "generateVideos": True,
        },
    )
    config = kubeconfig_with(kubeconfig, tmp_path / "kc", {"work": namespace}, current="work")
    video(plugin_path, config, "pause", "project/held")
    run_operator(namespace)

    def held() -> bool:
        scenes = cluster.scenes(namespace, "held")
        return len(scenes) == 2 and all(
            (condition_of(s, "Ready") or {}).get("reason") == v.Reason.PAUSED for s in scenes
        )

    wait_until(held, timeout=60, what="both Scenes held by the pause")
    time.sleep(2)  # a look later: still no job
    assert all(not (s.get("status") or {}).get("clip") for s in cluster.scenes(namespace, "held"))
    assert is_true(cluster.project(namespace, "held"), v.Cond.PAUSED)
    video(plugin_path, config, "resume", "project/held")
    project = wait_project(cluster, namespace, "held")

    opened = video(plugin_path, config, "open", "project/held", "--expires", "600", env=s3.env())
    assert "links valid for 600 s" in opened
    urls = [line.strip() for line in opened.splitlines() if line.strip().startswith("http")]
    scenes = cluster.scenes(namespace, "held")
    clips = [s["status"].get("workingClip") or s["status"]["clip"] for s in scenes]  # no edit
    expected = [project["status"]["finalVideo"], *clips]
    assert len(urls) == len(expected) == 3
    for url, obj in zip(urls, expected, strict=True):
        assert "X-Amz-Expires=600" in url
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = resp.read()
        assert hashlib.sha256(body).hexdigest() == obj["sha256"]
    no_keys = video(plugin_path, config, "open", "project/held", check=False,
                    env={"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"})  # fmt: skip
    assert "no AWS credentials to sign with" in no_keys
