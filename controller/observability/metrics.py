"""Prometheus metrics. No per-Scene labels: cardinality stays flat at 10,000 scenes."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info, start_http_server

import controller

RECONCILES = Counter(
    "scene_operator_reconciles_total", "Reconcile passes by kind and result", ["kind", "result"]
)
RECONCILE_SECONDS = Histogram(
    "scene_operator_reconcile_duration_seconds",
    "Time spent in one reconcile pass",
    ["kind"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
)
DECISIONS = Counter(
    "scene_operator_scene_decisions_total", "Scene state-machine rules that fired", ["rule"]
)
JOBS = Counter(
    "scene_operator_provider_jobs_total",
    "Provider jobs by provider and outcome (started, succeeded, failed, lost)",
    ["provider", "outcome", "reason"],
)
PROVIDER_SECONDS = Histogram(
    "scene_operator_provider_request_duration_seconds",
    "Latency of provider API calls",
    ["provider", "operation"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 120),
)
JOB_SECONDS = Histogram(
    "scene_operator_job_duration_seconds",
    "From job start to verified clip",
    ["provider"],
    buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800),
)
JOB_RUN_SECONDS = Histogram(
    "scene_operator_provider_job_run_seconds",
    "How long provider jobs ran until they succeeded (the provider's own times when it "
    "gives them), as the learned poll timing records them",
    ["provider"],
    buckets=(1, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1800),
)
JOB_POLLS = Counter(
    "scene_operator_job_polls_total",
    "Polls of provider jobs, by whether the run times of the model's recent jobs were "
    "known (learned: polls are timed from them) or not (fixed: the fixed schedule)",
    ["provider", "schedule"],
)
IN_FLIGHT = Gauge("scene_operator_generations_in_flight", "Jobs recorded in status", ["provider"])
DRIFT_REPAIRS = Counter(
    "scene_operator_drift_repairs_total", "Repairs of status/S3 disagreements", ["reason"]
)
S3_OPS = Counter("scene_operator_s3_operations_total", "S3 calls", ["operation", "result"])
API_REQUESTS = Counter(
    "scene_operator_api_requests_total",
    "Kubernetes API requests made by the operator's client, by HTTP status code "
    "(<error>: no answer)",
    ["verb", "resource", "code"],
)
API_RETRIES = Counter(
    "scene_operator_api_retries_total",
    "Kubernetes API calls retried after a 429 or 5xx answer (Retry-After honoured, bounded)",
    ["code"],
)
DUPLICATE_GUARD = Counter(
    "scene_operator_duplicate_job_guard_total",
    "Times a second job was not started because one was recorded or being recorded",
    ["kind"],
)
ORPHAN_WINDOW = Counter(
    "scene_operator_orphan_window_total",
    "Jobs started whose id was never recorded (the operator stopped during the create): "
    "recovered from the provider's job list, or started again (the only pay-twice window)",
    ["outcome"],
)
# Both series exist from the start at 0, so increase() sees the first one (the alert
# SceneOperatorJobMayBePaidTwice reads `again`).
for _outcome in ("recovered", "again"):
    ORPHAN_WINDOW.labels(_outcome)
DUPLICATES_CANCELED = Counter(
    "scene_operator_duplicate_jobs_canceled_total",
    "Second jobs for one pending marker found at the provider after one was taken (a "
    "create that landed late), by provider and cancel outcome: canceled, unsupported, failed",
    ["provider", "outcome"],
)
QUEUE_DEPTH = Gauge("scene_operator_workqueue_depth", "Keys waiting in the work queue")
WAITING = Gauge(
    "scene_operator_scenes_waiting_for_capacity",
    "Scenes parked until a job slot frees (provider or project concurrency)",
)
EVENTS = Counter("scene_operator_events_total", "Kubernetes Events posted", ["reason"])
WEBHOOKS = Counter(
    "scene_operator_webhooks_total",
    "Webhook requests by outcome (accepted, unknown, replay, bad_signature, stale, ...)",
    ["outcome"],
)

# scene_operator_build_info{version, commit} 1: which build runs (joins on any series).
BUILD_INFO = Info("scene_operator_build", "The running build: version and source commit")
BUILD_INFO.info({"version": controller.__version__, "commit": controller.__commit__})

LEADER = Gauge(
    "scene_operator_leader", "1 while this process holds the leader-election Lease, else 0"
)
LEASE_TRANSITIONS = Gauge(
    "scene_operator_lease_transitions",
    "leaseTransitions of the leader-election Lease as last observed: hand-overs between holders",
)


def serve(port: int) -> None:
    if port:
        start_http_server(port, addr="0.0.0.0")


ASSEMBLIES = Counter(
    "scene_operator_assemblies_total",
    "Final videos by outcome (copy, encode: assembled that way; adopted; failed)",
    ["outcome"],
)
ASSEMBLY_SECONDS = Histogram(
    "scene_operator_assembly_duration_seconds",
    "Wall time of one final video: downloads, joining, checks and upload",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
)
JOB_CANCELS = Counter(
    "scene_operator_job_cancels_total",
    "Abandoned jobs (superseded take, spec change, Scene or Project gone) the operator asked "
    "the provider to cancel, by outcome: canceled, unsupported (Veo cannot), failed",
    ["provider", "outcome"],
)
