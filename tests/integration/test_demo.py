"""`scene-operator demo --kubeconfig` against the test cluster: with provider keys in the
shell it still uses only the local providers (the protocol servers the keys point at get
no request), and only --real-providers reaches them, with a budget. The operator it ran
stops cleanly (no traceback)."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml

from controller.demo.cluster import kubectl_path
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


def test_keep_leaves_everything_running_and_ctrl_c_stops_it_all(tmp_path: Path) -> None:
    """`demo --keep` on its own control plane: once the first Project is Ready it prints
    what to type next; doing that works (another Project becomes Ready); Ctrl-C (SIGINT to
    the terminal's process group) stops the operator, S3 server and control plane cleanly."""
    out = tmp_path / "demo"
    proc = subprocess.Popen(
        [str(SCENE_OPERATOR), "demo", "--keep", "--output", str(out), "--timeout", "240"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    printed: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            printed.append(line)
            if line.startswith("The operator's log:"):
                break
        text = "".join(printed)
        assert "Ctrl-C here stops them all" in text, text[-4000:]
        kubeconfig = re.search(r"^  export KUBECONFIG=(\S+)$", text, re.M)
        apply = re.search(r"^  (kubectl apply .*)$", text, re.M)
        endpoint = re.search(r"^S3 endpoint: (http://\S+)", text, re.M)
        assert kubeconfig and apply and endpoint, text
        assert "  kubectl video status --watch\n" in text
        env = {**os.environ, "KUBECONFIG": kubeconfig.group(1)}
        command = shlex.split(apply.group(1))
        subprocess.run([kubectl_path(), *command[1:]], env=env, check=True, timeout=60)
        waited = subprocess.run(
            [kubectl_path(), "wait", "--for=condition=Ready", "project/harbor", "--timeout=180s"],
            env=env, capture_output=True, text=True, timeout=200, check=False,
        )  # fmt: skip
        assert waited.returncode == 0, f"{waited.stderr}\n{operator_log(out)[-4000:]}"
        with urllib.request.urlopen(endpoint.group(1), timeout=10) as resp:  # the S3 server
            assert resp.status == 200
        server = yaml.safe_load(Path(kubeconfig.group(1)).read_text())["clusters"][0]["cluster"]
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        rest = proc.communicate(timeout=90)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, rest
    assert "stopping the operator, the S3 server and the control plane" in rest
    assert "Traceback" not in rest
    assert not Path(kubeconfig.group(1)).exists()  # the control plane's data dir is gone
    for url in (server["server"], endpoint.group(1)):
        port = int(url.rsplit(":", 1)[1])
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"{url} still answers"
    log = operator_log(out)
    assert "Traceback" not in log and "CancelledError" not in log, log[-3000:]
