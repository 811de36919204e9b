"""`scene-operator demo --keep`: a demo to play in. Once the first Project is Ready the
control plane, the S3 server and the operator keep running, and the demo prints what to
type next, until Ctrl-C (SIGINT) or SIGTERM stops everything.
"""

from __future__ import annotations

import shlex
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import yaml

from controller.api import vocabulary as v

EXAMPLE_NAME = "harbor"
EXAMPLE_FILE = "local-harbor.yaml"  # manifests/examples/local-harbor.yaml (a test keeps them equal)
# A second Project to try in the kept demo: local providers, nothing to pay.
EXAMPLE: dict[str, Any] = {
    "apiVersion": v.API_VERSION,
    "kind": v.PROJECT_KIND,
    "metadata": {"name": EXAMPLE_NAME},
    "spec": {
        "prompt": "A fishing boat comes home through the fog to a harbor waking up at dawn",
        "mode": "MusicVideo",
        "style": "soft blue morning light, handheld",
        "scenes": {"count": 2, "durationSeconds": 4, "aspectRatio": "16:9"},
        "planner": {"provider": "local"},
        "video": {"provider": "local"},
        "generateVideos": True,
    },
}
EXAMPLE_HEADER = (
    "# Another Project that needs no keys (local planner and renderer); "
    "`scene-operator demo --keep` suggests it.\n"
)


def write_example(output: Path) -> Path:
    """The example Project, written where the demo writes its clips: an installed package
    has no manifests/ folder to point at."""
    path = output / EXAMPLE_FILE
    path.write_text(EXAMPLE_HEADER + yaml.safe_dump(EXAMPLE, sort_keys=False))
    return path


def hints(
    *, kubeconfig: str, namespace: str, example: Path, s3_env: dict[str, str], bucket: str,
    operator_log: Path,
) -> str:  # fmt: skip
    """What to type next, in another terminal."""
    q = shlex.quote
    ns = "" if namespace == "default" else f" -n {q(namespace)}"
    lines = [
        "",
        "The demo keeps running: the control plane, the S3 server and the operator "
        "(Ctrl-C here stops them all).",
        "In another terminal:",
        "",
        f"  export KUBECONFIG={q(kubeconfig)}",
    ]
    if not shutil.which("kubectl-video"):  # the plugin is next to this Python
        lines.append(f'  export PATH={q(str(Path(sys.executable).parent))}:"$PATH"')
    lines += [
        f"  kubectl apply{ns} -f {q(str(example))}",
        f"  kubectl video status --watch{ns}",
        f"  kubectl video open project/{EXAMPLE_NAME}{ns}    # links to its film and clips",
        "",
        f"S3 endpoint: {s3_env['AWS_ENDPOINT_URL_S3']} (bucket {bucket}); for boto3, the aws "
        "CLI and `kubectl video open`:",
        "",
        "  export " + " ".join(f"{k}={q(val)}" for k, val in sorted(s3_env.items())),
        "",
        f"The operator's log: {operator_log}",
    ]
    return "\n".join(lines)


def serve_until_stopped(operator: Any, poll: float = 1.0) -> int:
    """Wait for SIGINT, SIGTERM or SIGHUP (0), or the operator's unexpected exit (1)."""
    stop = threading.Event()
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # SIGHUP: the terminal closed
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in handled}
    try:
        while not stop.wait(poll):
            if not operator.alive():
                print(
                    f"the operator exited; its log: {operator.log_path}",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    print("stopping the operator, the S3 server and the control plane...", flush=True)
    return 0
