"""The benchmark's scenarios, and the operator settings each runs with."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

BUCKET = "scene-operator-bench"
# Where the Projects' clips go. moto's LIST walks every object of the bucket, real S3's
# is indexed by prefix: a bucket per Project makes the fake's LIST cost what S3's does
# (the objects under the Project's prefix), so the fake does not bound the run.
BUCKET_MODES = ("project", "namespace", "shared")
S3_PREFIX = "bench"
UNLIMITED_RATE = 500.0  # creates/s and reads/s when the fake enforces no limit
PROJECT_CONCURRENCY = 10
WORKERS = 32
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "REPLICATE_API_TOKEN")
# Replicate's published per-account limits.
REPLICATE_CREATES_PER_MINUTE = 600.0
REPLICATE_READS_PER_MINUTE = 3000.0
# Real jobs of one model do not all take the same time: the realistic scenario's jobs
# take its latency times a log-normal factor (median 1, log-sd REALISTIC_SIGMA: half of
# them within 7 % of the latency, 90 % within -15 %..+18 %), drawn in creation order from
# a generator seeded with SPREAD_SEED, so every run gets the same lengths.
REALISTIC_SIGMA = 0.1
SPREAD_SEED = 14


@dataclass(frozen=True)
class Scenario:
    name: str
    projects: int
    scenes: int  # per Project
    latency: float = 2.0  # seconds per provider job (the median, with a spread)
    latency_sigma: float = 0.0  # log-sd of the jobs' lengths around it; 0: all equal
    concurrency: int = 100  # jobs in flight on the provider (issue 14's main table)
    time_box: float = 300.0
    # Limits the fake provider enforces (429 + Retry-After beyond them); None: none.
    creates_per_minute: float | None = None
    reads_per_minute: float | None = None
    burst_seconds: float = 1.0
    webhooks: bool = False  # the operator's receiver on; the fake calls back signed
    buckets: str = "project"  # one of BUCKET_MODES (spec.storage.bucket per Project)

    @property
    def total(self) -> int:
        return self.projects * self.scenes

    @property
    def limited(self) -> bool:
        return self.creates_per_minute is not None

    def operator_rates(self) -> tuple[float, float]:
        """(creates/s, reads/s) the operator is told: the enforced limits, else far above
        what the local server needs."""
        creates = (self.creates_per_minute or UNLIMITED_RATE * 60) / 60
        reads = (self.reads_per_minute or UNLIMITED_RATE * 60) / 60
        return creates, reads


SCENARIOS: dict[str, Scenario] = {
    "small": Scenario("small", 10, 10, time_box=300.0),
    "medium": Scenario("medium", 100, 10, time_box=900.0),
    "large": Scenario("large", 1000, 10, time_box=1800.0),
    # Issue 14's real-provider shape: 2,000 Scenes, 60 s jobs, Replicate's limits.
    "realistic": Scenario(
        "realistic",
        200,
        10,
        latency=60.0,
        latency_sigma=REALISTIC_SIGMA,
        concurrency=500,
        time_box=1200.0,
        creates_per_minute=REPLICATE_CREATES_PER_MINUTE,
        reads_per_minute=REPLICATE_READS_PER_MINUTE,
    ),
}
MAIN = ("small", "medium", "large")  # `--scenario all`


def customised(base: Scenario, **overrides: Any) -> Scenario:
    """`base` with the flags given (None: not given); the name says what changed."""
    given = {k: val for k, val in overrides.items() if val is not None}
    out = dataclasses.replace(base, **given)
    name = base.name
    if "projects" in given or "scenes" in given:
        name += f"-{out.projects}x{out.scenes}"
    if out.webhooks and not base.webhooks:
        name += "-webhooks"
    if out.buckets != base.buckets:
        name += f"-{out.buckets}-bucket"
    if out.latency_sigma != base.latency_sigma:
        name += f"-sigma{out.latency_sigma:g}"
    return dataclasses.replace(out, name=name)


def bucket_of(mode: str, project: str, namespace: str) -> str:
    """The bucket a Project's manifest names (the harness creates each one first)."""
    if mode == "project":
        return f"{BUCKET}-{project}"
    if mode == "namespace":
        return f"{BUCKET}-{namespace}"
    if mode == "shared":
        return BUCKET
    raise ValueError(f"buckets: {mode!r} is not one of {', '.join(BUCKET_MODES)}")


def operator_env(
    s: Scenario, s3_env: dict[str, str], provider_env: dict[str, str], webhook_port: int | None
) -> dict[str, str]:
    creates, reads = s.operator_rates()
    env = {
        **s3_env,
        **provider_env,
        "SCENE_OPERATOR_BUCKET": BUCKET,
        "SCENE_OPERATOR_S3_PREFIX": S3_PREFIX,
        "SCENE_OPERATOR_CONCURRENCY_REPLICATE": str(s.concurrency),
        "SCENE_OPERATOR_PROJECT_CONCURRENCY": str(PROJECT_CONCURRENCY),
        "SCENE_OPERATOR_CREATES_PER_SECOND_REPLICATE": f"{creates:g}",
        "SCENE_OPERATOR_READS_PER_SECOND_REPLICATE": f"{reads:g}",
        "SCENE_OPERATOR_WORKERS": str(WORKERS),
        "SCENE_OPERATOR_LOG_LEVEL": "WARNING",
    }
    if not s.limited:
        # 2 s jobs: look first halfway through. A rate-limited run keeps the defaults, as
        # a user who does not know the job length would.
        env["SCENE_OPERATOR_POLL_INITIAL_SECONDS"] = f"{s.latency / 2:g}"
    if webhook_port is not None:
        env["SCENE_OPERATOR_WEBHOOK_URL"] = f"http://127.0.0.1:{webhook_port}"
        env["SCENE_OPERATOR_WEBHOOK_PORT"] = str(webhook_port)
    return env
