"""What cluster operators see: Prometheus metrics, JSON logs, and no secret anywhere."""

from __future__ import annotations

import json
import socket

from tests.integration.clips import replicate_video
from tests.integration.helpers import Cluster, metric_sum, wait_project
from tests.support.gemini_server import GeminiServer
from tests.support.operator_process import OperatorProcess
from tests.support.replicate_server import ReplicateServer


def test_metrics_logs_and_events_are_useful_and_leak_no_secret(
    cluster: Cluster, namespace, run_operator, s3
) -> None:
    with (
        ReplicateServer(latency_seconds=0.3, video_bytes=replicate_video) as replicate,
        GeminiServer(scene_count=3) as gemini,
    ):
        replicate.fail_next_creates = [500]  # one retry path, so warnings are logged too
        gemini.script = [429]
        op = run_operator(namespace, env={**replicate.env(), **gemini.env()})
        cluster.create_project(
            namespace,
            "observed",
            {
                "prompt": "A kite festival on a windy beach",
                "scenes": {"count": 3, "durationSeconds": 1},
                "planner": {"provider": "gemini"},
                "video": {"provider": "replicate"},
                "generateVideos": True,
                "retry": {
                    "limit": 3,
                    "backoff": {"initialSeconds": 1, "factor": 1, "maxSeconds": 1},
                },
            },
        )
        project = wait_project(cluster, namespace, "observed", timeout=90)
        text = op.metrics()
        secrets = [replicate.token, gemini.api_key, s3.env()["AWS_SECRET_ACCESS_KEY"]]

    jobs = "scene_operator_provider_jobs_total"
    assert metric_sum(text, jobs, provider="replicate", outcome="started") == 3
    assert metric_sum(text, jobs, provider="replicate", outcome="succeeded") == 3
    assert metric_sum(text, jobs, provider="replicate", outcome="start-error") == 1
    assert metric_sum(text, "scene_operator_generations_in_flight", provider="replicate") == 0
    assert metric_sum(text, "scene_operator_reconciles_total", kind="scene", result="ok") >= 3
    assert metric_sum(text, "scene_operator_reconciles_total", result="error") == 0
    assert metric_sum(text, "scene_operator_reconcile_duration_seconds_count", kind="project") >= 1
    # three clips and the final video
    assert metric_sum(text, "scene_operator_s3_operations_total", operation="put", result="ok") == 4
    assert metric_sum(text, "scene_operator_events_total", reason="VideoAssembled") == 1
    assert (
        metric_sum(
            text, "scene_operator_api_requests_total", verb="PATCH", resource="scenes/status"
        )
        >= 9
    )
    assert (
        metric_sum(
            text,
            "scene_operator_provider_request_duration_seconds_count",
            provider="replicate",
            operation="poll",
        )
        >= 3
    )
    assert metric_sum(text, "scene_operator_events_total", reason="ClipUploaded") == 3
    # fleet gauges, counted from the operator's cache at scrape time
    assert metric_sum(text, "scene_operator_scenes", namespace=namespace, phase="Completed") == 3
    assert metric_sum(text, "scene_operator_projects", namespace=namespace, ready="True") == 1
    cost = metric_sum(text, "scene_operator_estimated_cost_usd", namespace=namespace)
    assert cost == project["status"]["usage"]["estimatedCostUsd"] > 0
    # no per-scene labels: cardinality does not grow with scenes
    assert "observed-scene-001" not in text

    lines = [line for line in op.logs().splitlines() if line.strip()]
    assert lines
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    uploaded = [r for r in records if r.get("reason") == "ClipUploaded"]
    assert len(uploaded) == 3 and all(
        r["namespace"] == namespace and r["object"].startswith("observed-scene-") for r in uploaded
    )
    assert any(r.get("reason") == "RetryScheduled" and r["level"] == "WARNING" for r in records)

    visible = [op.logs(), json.dumps(project), json.dumps([s for s in cluster.scenes(namespace)])]
    visible += [f"{e.reason} {e.message}" for e in cluster.events(namespace)]
    for secret in secrets:
        assert all(secret not in blob for blob in visible)


def test_a_taken_liveness_port_stops_the_operator_with_a_clear_error(
    kubeconfig, crds_installed, namespace, s3, tmp_path
) -> None:
    """A port conflict is not transient: exit (the pod restarts, visibly) instead of
    restarting kopf in a loop with no endpoint."""
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        op = OperatorProcess(
            kubeconfig,
            env={**s3.env(), "SCENE_OPERATOR_LIVENESS_PORT": str(port)},
            namespaces=[namespace],
            log_path=tmp_path / "operator.log",
        )
        op.start()
        try:
            assert op.proc is not None
            code = op.proc.wait(timeout=60)
        finally:
            op.stop()
    assert code != 0
    lines = [json.loads(line) for line in op.logs().splitlines() if line.startswith("{")]
    fatal = [x for x in lines if x.get("message") == "cannot listen on the liveness endpoint"]
    assert fatal and "address already in use" in fatal[0]["error"]
