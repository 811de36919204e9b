"""The demo: the operator, an S3 server and one Project, on a local control plane or a cluster.

By default everything runs on this machine and nothing is paid for: the local planner and
renderer, and the operator gets no provider keys even when the shell has them. Only
`--real-providers` uses Gemini/Replicate (whichever has a key), and then with a small
`budget.maxGenerations`. `--kubeconfig` runs against an existing cluster (kind, minikube)
instead of building and starting a control plane; the operator then watches only the demo
namespace. Clips end up in ./demo-output/ as MP4 files a person can play. With `--keep`
everything keeps running once the Project is Ready, to try Projects of one's own
(controller/demo/keep.py), until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controller.api import vocabulary as v

PROJECT_NAME = "lighthouse"
BUCKET = "scene-operator-demo"
DEMO_BUDGET = 3  # generations with --real-providers: one take per scene, no paid retries
PLANNER_KEYS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
VIDEO_KEYS = ("REPLICATE_API_TOKEN",)
# The same Project as manifests/examples/local-demo.yaml (a test keeps them equal); kept
# here so an installed package runs the demo without the repository.
PROJECT: dict[str, Any] = {
    "apiVersion": v.API_VERSION,
    "kind": v.PROJECT_KIND,
    "metadata": {"name": PROJECT_NAME},
    "spec": {
        "prompt": "A lighthouse keeper finds a message in a bottle and follows it across the sea",
        "mode": "AdCreative",
        "style": "warm golden-hour film look, 35mm",
        "productDescription": "a brass pocket compass",
        "scenes": {"count": 3, "durationSeconds": 4, "aspectRatio": "16:9"},
        "planner": {"provider": "local"},
        "video": {"provider": "local"},
        "generateVideos": True,
    },
}


@dataclass(frozen=True)
class ProviderChoice:
    """Which providers the demo's Project uses, and what the operator process may see."""

    planner: str
    video: str
    max_generations: int | None
    withheld: tuple[str, ...]  # provider keys removed from the operator's environment
    operator_env: dict[str, str] = field(default_factory=dict)


def choose_providers(
    real: bool, environ: Mapping[str, str], max_generations: int = DEMO_BUDGET
) -> ProviderChoice:
    """Local providers unless `real`; keys in the shell never switch providers by themselves."""
    keys = (*PLANNER_KEYS, *VIDEO_KEYS)
    if not real:
        return ProviderChoice(
            planner="local",
            video="local",
            max_generations=None,
            withheld=tuple(k for k in keys if k in environ),
            # A Project that names no provider gets the local ones too.
            operator_env={
                "SCENE_OPERATOR_DEFAULT_PLANNER": "local",
                "SCENE_OPERATOR_DEFAULT_VIDEO_PROVIDER": "local",
            },
        )
    planner = "gemini" if any(environ.get(k) for k in PLANNER_KEYS) else "local"
    video = "replicate" if any(environ.get(k) for k in VIDEO_KEYS) else "local"
    if planner == video == "local":
        raise SystemExit(
            "--real-providers needs GEMINI_API_KEY (or GOOGLE_API_KEY) or REPLICATE_API_TOKEN"
        )
    return ProviderChoice(planner, video, max(1, max_generations), withheld=())


def project_manifest(choice: ProviderChoice) -> dict[str, Any]:
    doc = copy.deepcopy(PROJECT)
    doc["spec"]["planner"] = {"provider": choice.planner}
    doc["spec"]["video"] = {"provider": choice.video}
    if choice.max_generations is not None:
        doc["spec"]["budget"] = {"maxGenerations": choice.max_generations}
    return doc


@dataclass(frozen=True)
class DemoOptions:
    output: Path = Path("demo-output")
    timeout: float = 600.0
    kubeconfig: str | None = None
    namespace: str = "default"
    real_providers: bool = False
    max_generations: int = DEMO_BUDGET
    keep: bool = False  # keep everything running once Ready, until Ctrl-C


def main(options: DemoOptions, environ: Mapping[str, str]) -> int:
    from controller.demo.cluster import ExistingCluster, Kubectl, install_crds
    from controller.demo.controlplane import ControlPlane
    from controller.demo.operator import OperatorProcess
    from controller.demo.s3server import S3Server

    for stop in (signal.SIGTERM, signal.SIGHUP):  # stop like Ctrl-C: everything cleaned up
        signal.signal(stop, _interrupted)
    choice = choose_providers(options.real_providers, environ, options.max_generations)
    print(
        f"providers: planner {choice.planner}, video {choice.video}"
        + (f", budget.maxGenerations {choice.max_generations}" if choice.max_generations else "")
        + (
            f" (not passed to the operator: {', '.join(choice.withheld)})"
            if choice.withheld
            else ""
        ),
        flush=True,
    )
    output = options.output.resolve()
    output.mkdir(parents=True, exist_ok=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the S3 server's request log
    with contextlib.ExitStack() as stack:
        if options.kubeconfig:
            cluster: ControlPlane | ExistingCluster = ExistingCluster(options.kubeconfig)
            print(f"using the cluster at {cluster.server}", flush=True)
        else:
            print("starting a local control plane (etcd, kube-apiserver)...", flush=True)
            cluster = stack.enter_context(ControlPlane())
        s3 = stack.enter_context(S3Server())
        kubectl = Kubectl(cluster.kubeconfig)
        install_crds(cluster.kubeconfig, _crd_files(stack), kubectl=kubectl)
        kubectl("create", "namespace", options.namespace, check=False)  # exists: fine
        if options.kubeconfig:  # a Project left by an earlier demo would look Ready at once
            kubectl(
                "delete", "-n", options.namespace, f"project/{PROJECT_NAME}", "--ignore-not-found",
                "--cascade=foreground", "--wait=true", "--timeout=120s", timeout=150,
            )  # fmt: skip
        env = {
            **s3.env(),
            **choice.operator_env,
            "SCENE_OPERATOR_BUCKET": BUCKET,
            "SCENE_OPERATOR_CREATE_BUCKET": "true",
            "SCENE_OPERATOR_POLL_INITIAL_SECONDS": "1",
            "SCENE_OPERATOR_LOG_FORMAT": "text",
        }
        op = stack.enter_context(
            OperatorProcess(
                cluster.kubeconfig,
                env=env,
                unset=choice.withheld,
                namespaces=[options.namespace],
                log_path=output / "operator.log",
            )
        )
        op.wait_healthy()
        print(f"operator running (log: {op.log_path}); applying project/{PROJECT_NAME}", flush=True)
        manifest = yaml.safe_dump(project_manifest(choice))
        kubectl("apply", "-n", options.namespace, "-f", "-", input=manifest)
        done = _wait_and_download(kubectl, s3, op, options, output)
        if done != 0 or not options.keep:
            return done
        return _keep(cluster.kubeconfig, s3, op, options, output)


def _keep(kubeconfig: str, s3: Any, op: Any, options: DemoOptions, output: Path) -> int:
    from controller.demo import keep

    example = keep.write_example(output)
    text = keep.hints(
        kubeconfig=kubeconfig, namespace=options.namespace, example=example,
        s3_env=s3.env(), bucket=BUCKET, operator_log=op.log_path,
    )  # fmt: skip
    print(text, flush=True)
    return keep.serve_until_stopped(op)


def _interrupted(*_: object) -> None:
    raise KeyboardInterrupt


def _crd_files(stack: contextlib.ExitStack) -> list[Path]:
    """The CRDs generated from the models (an installed package has no crds/ folder)."""
    from controller.api.crd import write_crds

    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scene-operator-crds-")))
    return sorted(write_crds(folder))


def _wait_and_download(kubectl: Any, s3: Any, op: Any, options: DemoOptions, output: Path) -> int:
    from controller.providers.render import probe_clip

    ns = options.namespace
    started = time.monotonic()
    waited = kubectl(
        "wait", "-n", ns, "--for=condition=Ready", f"project/{PROJECT_NAME}",
        f"--timeout={int(options.timeout)}s", check=False, timeout=options.timeout + 30,
    )  # fmt: skip
    print(kubectl("get", "-n", ns, "projects,scenes", check=False).stdout)
    if waited.returncode != 0:
        print(f"project not Ready: {waited.stderr}\n{op.logs()[-3000:]}", file=sys.stderr)
        return 1
    print(f"Ready after {time.monotonic() - started:.1f} s")
    client = s3.client()
    scenes = kubectl.json("get", "-n", ns, "scenes")["items"]
    own = [s for s in scenes if s["spec"]["projectRef"]["name"] == PROJECT_NAME]
    for scene in sorted(own, key=lambda s: s["spec"]["sequence"]):
        key = scene["status"]["workingVideoClipS3Key"]  # the clip as edited (spec.edit)
        dest = output / f"{scene['metadata']['name']}.mp4"
        client.download_file(BUCKET, key, str(dest))
        info = probe_clip(dest)
        print(
            f"{dest}  {info.width}x{info.height} {info.codec} {info.duration_seconds:.1f}s"
            f"  <- s3://{BUCKET}/{key}"
        )
    final = (kubectl.json("get", "-n", ns, f"project/{PROJECT_NAME}").get("status") or {}).get(
        "finalVideo"
    )
    if final:  # the assembled film: every clip in order
        dest = output / f"{PROJECT_NAME}-final.mp4"
        client.download_file(final["bucket"], final["s3Key"], str(dest))
        info = probe_clip(dest)
        print(
            f"{dest}  {info.width}x{info.height} {info.codec} {info.duration_seconds:.1f}s"
            f"  <- s3://{final['bucket']}/{final['s3Key']} (final video)"
        )
    return 0
