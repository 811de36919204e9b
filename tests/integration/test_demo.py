"""`scene-operator demo --kubeconfig` against the test cluster: with provider keys in the
shell it still uses only the local providers (the protocol servers the keys point at get
no request), and only --real-providers reaches them, with a budget. The operator it ran
stops cleanly (no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from controller.demo.run import DEMO_BUDGET, PROJECT_NAME
from controller.providers.render import probe_clip
from tests.integration.clips import replicate_video
from tests.integration.helpers import Cluster
from tests.support.gemini_server import GeminiServer
from tests.support.replicate_server import ReplicateServer

SCENE_OPERATOR = Path(sys.executable).parent / "scene-operator"


def run_demo(kubeconfig: str, namespace: str, out: Path, env: dict[str, str], *extra: str):
    return subprocess.run(
        [
            str(SCENE_OPERATOR), "demo", "--kubeconfig", kubeconfig, "-n", namespace,
            "--output", str(out), "--timeout", "240", *extra,
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )  # fmt: skip


def operator_log(out: Path) -> str:
    path = out / "operator.log"
    return path.read_text(errors="replace") if path.exists() else "(no operator log)"


def check_clean_stop(out: Path, secrets: list[str]) -> None:
    log = (out / "operator.log").read_text()
    assert "scene_operator starting" in log
    assert "Traceback" not in log and "CancelledError" not in log, log[-3000:]
    assert not [s for s in secrets if s in log]


def test_keys_in_the_shell_do_not_make_the_demo_use_paid_providers(
    cluster: Cluster, kubeconfig: str, crds_installed: list[str], namespace: str, tmp_path: Path
) -> None:
    out = tmp_path / "demo"
    with ReplicateServer() as replicate, GeminiServer() as gemini:
        env = {**replicate.env(), **gemini.env(), "GOOGLE_API_KEY": "AIza-fake-google-key"}
        done = run_demo(kubeconfig, namespace, out, env)
        why = f"{done.stdout[-3000:]}{done.stderr[-3000:]}\n{operator_log(out)[-6000:]}"
        assert done.returncode == 0, why
        assert replicate.requests == [] and gemini.request_count == 0
    assert "providers: planner local, video local" in done.stdout
    assert "GEMINI_API_KEY, GOOGLE_API_KEY, REPLICATE_API_TOKEN" in done.stdout
    project = cluster.project(namespace, PROJECT_NAME)
    assert project["spec"]["planner"] == {"provider": "local"}
    assert project["spec"]["video"] == {"provider": "local"}
    scenes = cluster.scenes(namespace, PROJECT_NAME)
    assert len(scenes) == 3 and all(s["status"]["clip"]["provider"] == "local" for s in scenes)
    assert sorted(p.name for p in out.glob("*.mp4")) == sorted(
        [f"{s['metadata']['name']}.mp4" for s in scenes] + [f"{PROJECT_NAME}-final.mp4"]
    )
    final = probe_clip(out / f"{PROJECT_NAME}-final.mp4")  # every clip, in one film
    assert (
        abs(
            final.duration_seconds
            - sum(probe_clip(out / f"{s['metadata']['name']}.mp4").duration_seconds for s in scenes)
        )
        < 0.3
    )
    assert f"{PROJECT_NAME}-final.mp4" in done.stdout and "(final video)" in done.stdout
    check_clean_stop(out, [env["REPLICATE_API_TOKEN"], env["GEMINI_API_KEY"]])


def test_real_providers_only_when_asked_and_with_a_small_budget(
    cluster: Cluster, kubeconfig: str, crds_installed: list[str], namespace: str, tmp_path: Path
) -> None:
    out = tmp_path / "demo"
    with ReplicateServer(video_bytes=replicate_video) as replicate, GeminiServer() as gemini:
        env = {**replicate.env(), **gemini.env()}
        done = run_demo(kubeconfig, namespace, out, env, "--real-providers")
        why = f"{done.stdout[-3000:]}{done.stderr[-3000:]}\n{operator_log(out)[-6000:]}"
        assert done.returncode == 0, why
        assert gemini.request_count >= 1, why
        assert replicate.counts["create"] == 3, f"{replicate.requests}\n{why}"
    project = cluster.project(namespace, PROJECT_NAME)
    assert project["spec"]["planner"] == {"provider": "gemini"}
    assert project["spec"]["video"] == {"provider": "replicate"}
    assert project["spec"]["budget"] == {"maxGenerations": DEMO_BUDGET}
    assert project["status"]["usage"]["generationsStarted"] == 3
    check_clean_stop(out, [env["REPLICATE_API_TOKEN"], env["GEMINI_API_KEY"]])
