"""Liveness means progress, end to end: the operator's one worker held by an output
download that does not end, with work queued, fails /healthz; the download ending
heals it, and the Project finishes."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request

from tests.integration.clips import replicate_video
from tests.integration.helpers import Cluster, wait_project, wait_until
from tests.support.replicate_server import ReplicateServer


def healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_a_stuck_download_fails_healthz(cluster: Cluster, namespace, run_operator) -> None:
    with ReplicateServer(latency_seconds=0.3, video_bytes=replicate_video) as replicate:
        replicate.hold_files = threading.Event()
        op = run_operator(
            namespace,
            env={
                **replicate.env(),
                "SCENE_OPERATOR_WORKERS": "1",
                "SCENE_OPERATOR_LIVENESS_STALL_SECONDS": "3",
            },
        )
        cluster.create_project(
            namespace,
            "held",
            {
                "prompt": "A kite festival on a windy beach",
                "scenes": {"count": 2, "durationSeconds": 1},
                "planner": {"provider": "local"},
                "video": {"provider": "replicate"},
                "generateVideos": True,
                "assembly": {"enabled": False},
            },
        )
        try:
            wait_until(lambda: replicate.count("file") >= 1, timeout=60, what="a download")
            wait_until(
                lambda: healthz(op.liveness_port) == 500, timeout=30, what="/healthz failing"
            )
        finally:
            replicate.hold_files.set()
        wait_until(lambda: healthz(op.liveness_port) == 200, timeout=30, what="/healthz ok")
        wait_project(cluster, namespace, "held", timeout=60)
