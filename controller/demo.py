"""The embedded demo: a local control plane, an S3 server, the operator, one Project.

Everything runs on this machine with no keys (local planner and renderer). With
REPLICATE_API_TOKEN or GEMINI_API_KEY set, the example uses those real providers instead.
Clips end up in ./demo-output/ as MP4 files a person can play.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from controller.embedded.cluster import Kubectl, install_crds
from controller.embedded.controlplane import REPO_ROOT, ControlPlane
from controller.embedded.operator import OperatorProcess
from controller.embedded.s3server import S3Server

EXAMPLE = REPO_ROOT / "manifests" / "examples" / "local-demo.yaml"
BUCKET = "scene-operator-demo"


def _example(real_planner: bool, real_video: bool) -> str:
    doc = yaml.safe_load(EXAMPLE.read_text())
    if real_planner:
        doc["spec"]["planner"] = {"provider": "gemini"}
    if real_video:
        doc["spec"]["video"] = {"provider": "replicate"}
    return yaml.safe_dump(doc)


def main(output: Path = Path("demo-output"), timeout: float = 600.0) -> int:
    import boto3

    from controller.providers.render import probe_clip

    real_planner = bool(os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY"))
    real_video = bool(os.environ.get("REPLICATE_API_TOKEN"))
    output.mkdir(parents=True, exist_ok=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the S3 server's request log
    print(
        "starting a local control plane (etcd, kube-apiserver, kube-controller-manager)...",
        flush=True,
    )
    with ControlPlane() as cp, S3Server() as s3:
        kubectl = Kubectl(cp.kubeconfig)
        install_crds(cp.kubeconfig, sorted((REPO_ROOT / "crds").glob("*.yaml")), kubectl=kubectl)
        env = {
            **s3.env(),
            "SCENE_OPERATOR_BUCKET": BUCKET,
            "SCENE_OPERATOR_CREATE_BUCKET": "true",
            "SCENE_OPERATOR_POLL_INITIAL_SECONDS": "1",
            "SCENE_OPERATOR_LOG_FORMAT": "text",
        }
        with OperatorProcess(
            cp.kubeconfig, env=env, log_path=output.resolve() / "operator.log"
        ) as op:
            op.wait_healthy()
            print(f"operator running (log: {op.log_path}); applying {EXAMPLE.name}", flush=True)
            kubectl("apply", "-n", "default", "-f", "-", input=_example(real_planner, real_video))
            started = time.monotonic()
            waited = kubectl(
                "wait",
                "-n",
                "default",
                "--for=condition=Ready",
                "project/lighthouse",
                f"--timeout={int(timeout)}s",
                check=False,
                timeout=timeout + 30,
            )
            print(kubectl("get", "-n", "default", "projects,scenes", check=False).stdout)
            if waited.returncode != 0:
                print(f"project not Ready: {waited.stderr}\n{op.logs()[-3000:]}", file=sys.stderr)
                return 1
            print(f"Ready after {time.monotonic() - started:.1f} s")
            creds = s3.env()
            client = boto3.client(
                "s3",
                endpoint_url=s3.endpoint_url,
                region_name=creds["AWS_DEFAULT_REGION"],
                aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
            )
            scenes = kubectl.json("get", "-n", "default", "scenes")["items"]  # type: ignore[attr-defined]
            for scene in sorted(scenes, key=lambda s: s["spec"]["sequence"]):
                key = scene["status"]["originalVideoClipS3Key"]
                dest = output / f"{scene['metadata']['name']}.mp4"
                client.download_file(BUCKET, key, str(dest))
                info = probe_clip(dest)
                print(
                    f"{dest}  {info.width}x{info.height} {info.codec} {info.duration_seconds:.1f}s  <- s3://{BUCKET}/{key}"
                )
            project = kubectl.json("get", "-n", "default", "project/lighthouse")  # type: ignore[attr-defined]
            final = (project.get("status") or {}).get("finalVideo")
            if final:  # the assembled film: every clip in order
                dest = output / "lighthouse-final.mp4"
                client.download_file(final["bucket"], final["s3Key"], str(dest))
                info = probe_clip(dest)
                print(
                    f"{dest}  {info.width}x{info.height} {info.codec} {info.duration_seconds:.1f}s  <- s3://{final['bucket']}/{final['s3Key']} (final video)"
                )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as e:
        print(e, file=sys.stderr)
        sys.exit(1)
