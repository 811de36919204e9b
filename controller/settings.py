"""Operator configuration from the environment (prefix SCENE_OPERATOR_).

Secrets are not settings: provider keys and AWS credentials are read by each SDK from its
own environment variables (filled from a Kubernetes Secret) and never pass through here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from controller.api.common import PlannerProviderName, VideoProviderName


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCENE_OPERATOR_", extra="ignore")

    bucket: str = "scene-operator-clips"
    """Default S3 bucket for clips (a Project may override it)."""
    s3_prefix: str = "scene-operator"
    """Key prefix under which every project's clips live."""
    create_bucket: bool = False
    """Create the default bucket at startup if it is missing (demo and tests)."""
    default_planner: PlannerProviderName = PlannerProviderName.LOCAL
    default_video_provider: VideoProviderName = VideoProviderName.LOCAL

    workers: int = Field(default=16, ge=1, le=512)
    """Reconcile workers (coroutines) processing the work queue."""
    io_threads: int = Field(default=16, ge=1, le=256)
    """Threads for blocking calls (boto3, replicate client, rendering)."""
    concurrency_replicate: int = Field(default=20, ge=1)
    """Jobs in flight at once on Replicate, across all projects."""
    concurrency_veo: int = Field(default=10, ge=1)
    concurrency_local: int = Field(default=4, ge=1)
    project_concurrency: int = Field(default=8, ge=1)
    """Jobs in flight at once for one project."""
    reads_per_second_replicate: float = Field(default=40.0, gt=0)
    """Replicate allows about 3,000 reads a minute; stay under it."""
    reads_per_second_veo: float = Field(default=10.0, gt=0)
    creates_per_second_replicate: float = Field(default=8.0, gt=0)
    """Replicate allows 600 prediction creates a minute."""
    creates_per_second_veo: float = Field(default=2.0, gt=0)
    poll_initial_seconds: float = Field(default=5.0, gt=0)
    poll_max_seconds: float = Field(default=30.0, gt=0)
    poll_factor: float = Field(default=1.5, ge=1.0)
    orphan_search_after_seconds: float = Field(default=30.0, ge=0)
    """A job whose id was never recorded (the operator stopped during its create, or the
    create got no answer) is searched for at the provider this long after its start (or
    after the unanswered create): by then the provider has acted on it (the client
    timeout is 30 s)."""
    local_render_latency_seconds: float = Field(default=0.0, ge=0)
    """Simulated job latency of the local renderer (demos and benchmarks)."""
    cost_per_second_replicate: float = 0.40
    cost_per_second_veo: float = 0.40
    cost_per_second_local: float = 0.0

    metrics_port: int = Field(default=9090, ge=0, le=65535)
    """Prometheus metrics port; 0 turns metrics off."""
    liveness_port: int = Field(default=8080, ge=0, le=65535)
    """Port of the /healthz endpoint; 0 turns it off."""
    scene_events: Literal["all", "warnings"] = "all"
    """Which Events to post on Scenes: `warnings` drops the two Normal ones per Scene
    (GenerationStarted, ClipUploaded: 2 of ~6.5 API writes per Scene) for large fleets;
    they are still logged and counted, and Project Events are kept."""
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"

    assembly_concurrency: int = Field(default=1, ge=1, le=64)
    """Final videos assembled at once (CPU work, in threads off the event loop)."""
    assembly_max_bytes: int = Field(default=4 * 1024**3, ge=1024**2)
    """Cap on the temporary disk one assembly may use (clips, audio and the output)."""

    def concurrency(self, provider: str) -> int:
        return int(getattr(self, f"concurrency_{provider}", self.concurrency_local))

    def cost_per_second(self, provider: str) -> float:
        return float(getattr(self, f"cost_per_second_{provider}", 0.0))
