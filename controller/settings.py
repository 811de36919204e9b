"""Operator configuration from the environment (prefix SCENE_OPERATOR_).

Secrets are not settings: provider keys and AWS credentials are read by each SDK from its
own environment variables (filled from a Kubernetes Secret) and never pass through here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from controller.api.common import PlannerProviderName, VideoProviderName


class Settings(BaseSettings):
    # Each field's docstring is its description: `scene-operator run --help`, `config` and
    # docs/configuration.md are generated from them.
    model_config = SettingsConfigDict(
        env_prefix="SCENE_OPERATOR_", extra="ignore", use_attribute_docstrings=True
    )

    bucket: str = "scene-operator-clips"
    """Default S3 bucket for clips (a Project may override it)."""
    s3_prefix: str = "scene-operator"
    """Key prefix under which every project's clips live."""
    create_bucket: bool = False
    """Create the default bucket at startup if it is missing (demo and tests)."""
    default_planner: PlannerProviderName = PlannerProviderName.LOCAL
    """Planner of Projects that name none (`local` or `gemini`)."""
    default_video_provider: VideoProviderName = VideoProviderName.LOCAL
    """Video provider of Projects that name none (`local`, `replicate` or `veo`)."""

    workers: int = Field(default=16, ge=1, le=512)
    """Reconcile workers (coroutines) processing the work queue."""
    io_threads: int = Field(default=16, ge=1, le=256)
    """Threads for blocking calls (boto3, replicate client, rendering)."""
    concurrency_replicate: int = Field(default=20, ge=1)
    """Jobs in flight at once on Replicate, across all projects."""
    concurrency_veo: int = Field(default=10, ge=1)
    """Jobs in flight at once on Veo, across all projects."""
    concurrency_local: int = Field(default=4, ge=1)
    """Jobs in flight at once on the local renderer."""
    project_concurrency: int = Field(default=8, ge=1)
    """Jobs in flight at once for one project."""
    reads_per_second_replicate: float = Field(default=40.0, gt=0)
    """Replicate allows about 3,000 reads a minute; stay under it."""
    reads_per_second_veo: float = Field(default=10.0, gt=0)
    """Veo operation reads (polls) per second, across all projects."""
    creates_per_second_replicate: float = Field(default=8.0, gt=0)
    """Replicate allows 600 prediction creates a minute."""
    creates_per_second_veo: float = Field(default=2.0, gt=0)
    """Veo jobs created per second, across all projects."""
    poll_initial_seconds: float = Field(default=5.0, gt=0)
    """First wait before a running provider job is polled."""
    poll_max_seconds: float = Field(default=30.0, gt=0)
    """Longest wait between two polls of a running provider job."""
    poll_factor: float = Field(default=1.5, ge=1.0)
    """Each poll waits this many times longer than the last one (up to the maximum)."""
    poll_learn: bool = True
    """Poll a running job around when the last jobs of its provider and model ended (their
    run times are kept in memory), instead of on the fixed schedule above, which still
    times the first jobs of a model and those after a restart. false: always the fixed
    schedule."""
    orphan_search_after_seconds: float = Field(default=30.0, ge=0)
    """A job whose id was never recorded (the operator stopped during its create, or the
    create got no answer) is searched for at the provider once the searching process has
    seen its marker (or the unanswered create) for this long, on its own monotonic clock:
    by then the provider has acted on it (the client timeout is 30 s). A second job found
    for the marker later is canceled (DuplicateCanceled)."""
    clock_skew_seconds: float = Field(default=30.0, ge=0)
    """How far the provider's clock (a job's `created_at`) and the clock of the node that
    wrote a marker's `startedAt` may disagree: the search for a job whose id was never
    recorded reaches back this much further."""
    local_render_latency_seconds: float = Field(default=0.0, ge=0)
    """Simulated job latency of the local renderer (demos and benchmarks)."""
    cost_per_second_replicate: float = 0.40
    """Estimated USD per generated second on Replicate (status.usage, metrics)."""
    cost_per_second_veo: float = 0.40
    """Estimated USD per generated second on Veo."""
    cost_per_second_local: float = 0.0
    """Estimated USD per generated second on the local renderer."""

    metrics_port: int = Field(default=9090, ge=0, le=65535)
    """Prometheus metrics port; 0 turns metrics off."""
    liveness_port: int = Field(default=8080, ge=0, le=65535)
    """Port of the /healthz endpoint; 0 turns it off."""
    liveness_stall_seconds: float = Field(default=300.0, ge=0)
    """/healthz fails when work is queued, every worker is busy and none has started or
    finished a pass for this long (a stuck download); 0 turns the check off."""
    resync_seconds: float = Field(default=600.0, ge=0)
    """How often each namespace's Projects and Scenes are LISTed and compared with the
    cache, so objects deleted while a watch was down leave it; 0 turns it off."""
    scene_events: Literal["all", "project", "warnings"] = "project"
    """Where the two routine Normal Events of a Scene (GenerationStarted, ClipUploaded: 2
    of ~7 API writes per Scene) go: `project` posts them on the Project, one Event per
    reason with a count, at most once a minute (controller/controllers/project/series.py); `all` on
    each Scene; `warnings` nowhere. All are logged and counted; Warning Events and the
    rare Normal ones always go on their Scene."""
    log_format: Literal["json", "text"] | None = None
    """Log lines as JSON or text; `--log-format` wins. Unset: text when stderr is a
    terminal, JSON otherwise."""
    log_level: str = "INFO"
    """Python logging level: DEBUG, INFO, WARNING, ERROR."""
    allowed_buckets: str = ""
    """Comma-separated buckets Projects may store clips in (the default bucket
    included); empty allows any. Any other bucket makes the Project InvalidSpec."""
    allowed_models: str = ""
    """Comma-separated models (video and planner, defaults included) Projects and Scenes
    may use; empty allows any. Any other model is InvalidSpec."""
    default_max_generations: int | None = Field(default=None, ge=0)
    """budget.maxGenerations of Projects that set none; empty: unlimited."""
    drift_interval_scale: float = Field(default=1.0, gt=0, le=1.0)
    """Multiplies every Project's repair.intervalSeconds (whose schema minimum is 10 s):
    for tests and demos that need a drift check sooner; 1 in production."""

    leader_elect: bool | None = None
    """Leader election on a Lease (several replicas, one active); `--leader-elect` wins.
    Unset: on when running in a cluster, off with a kubeconfig."""
    leader_elect_namespace: str | None = None
    """Namespace of the Lease; unset: the pod's namespace, else `default`."""
    leader_elect_id: str = Field(
        default="scene-operator", pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
    )
    """Name of the Lease; each shard needs its own."""
    leader_elect_lease_duration_seconds: float = Field(default=15.0, gt=0)
    """How long a standby waits, after the record last changed, before taking over."""
    leader_elect_renew_deadline_seconds: float = Field(default=10.0, gt=0)
    """A leader that could not renew for this long stops all work and exits."""
    leader_elect_retry_period_seconds: float = Field(default=2.0, gt=0)
    """Renew (leader) and acquire (standby) attempts are this far apart."""

    leader_elect_fence_seconds: float = Field(default=5.0, ge=0)
    """A provider create or an S3 PUT is sent only while this process's lease has at least
    this long left before its renew deadline (on its monotonic clock), so a leader frozen
    just before the call does not send it after its successor took over."""

    @model_validator(mode="after")
    def _leader_timings(self) -> Settings:
        # client-go's rule: the leader gives up before anyone may take over.
        lease, renew = (
            self.leader_elect_lease_duration_seconds,
            self.leader_elect_renew_deadline_seconds,
        )
        if not lease > renew > self.leader_elect_retry_period_seconds * 1.2:
            raise ValueError(
                "SCENE_OPERATOR_LEADER_ELECT_*: need lease duration > renew deadline > "
                "1.2 x retry period"
            )
        if self.leader_elect_fence_seconds >= renew:
            raise ValueError(
                "SCENE_OPERATOR_LEADER_ELECT_FENCE_SECONDS must be less than the renew deadline"
            )
        return self

    # Provider output (README "What the operator refuses").
    output_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    """Largest clip accepted from a provider (download or inline bytes), in bytes; a
    bigger one is refused (InvalidOutput) and never stored. Each reconcile worker holds
    at most one such file on the scratch disk at a time (see scratch_limit_mb)."""
    output_duration_tolerance_seconds: float = Field(default=1.0, ge=0)
    """How far a clip's length may be from the duration asked before it is refused."""
    output_allowed_hosts: str = "api.replicate.com,replicate.delivery,*.replicate.delivery"
    """Comma-separated hosts (`*.suffix` for subdomains) output URLs may point at, over
    https only; the origin of REPLICATE_BASE_URL is allowed as well, exactly."""
    output_allow_private_addresses: bool = False
    """Allow output hosts that resolve to private, loopback or link-local addresses (an
    in-cluster mirror); off, such URLs are refused."""
    output_download_deadline_seconds: float = Field(default=300.0, gt=0)
    """One deadline for a whole output download, redirects included: a body that drips
    slowly is cut off and the download tried again."""

    kept_outputs_max_bytes: int = Field(default=256 * 1024**2, ge=0)
    """Local disk for succeeded jobs' outputs kept while their upload is tried again; an
    output that does not fit is downloaded again from the provider at the next try."""

    assembly_concurrency: int = Field(default=1, ge=1, le=64)
    """Media work at once: final videos assembled and working clips trimmed, each in a
    child process limited by the media_* settings below."""
    assembly_max_bytes: int = Field(default=640 * 1024**2, ge=1024**2)
    """Cap on the temporary disk one assembly (or trim) may use (clips, audio and the
    output); counted once per assembly_concurrency in scratch_limit_mb."""
    assembly_max_attempts: int = Field(default=5, ge=1, le=100)
    """Failed (or killed) builds of the same final video before the operator stops trying
    (Stalled, AssemblyFailed) until the spec or a clip changes; counted in status."""
    media_memory_mb: int = Field(default=384, ge=64)
    """Memory limit (RLIMIT_DATA) of each media child process. 1920x1080 needs about
    384 MiB, 3840x2160 about 1 GiB (benchmarks/README.md); with the operator's own memory
    it must fit the pod's limit times assembly_concurrency."""
    media_timeout_seconds: float = Field(default=1800.0, gt=0)
    """Wall-clock (and CPU-time) limit of one assembly or trim; past it the child is
    killed and the build counts as failed (a trim over a media limit is tried 3 times,
    300 s apart, then its edit is refused in status)."""
    max_assembly_pixels: int = Field(default=1920 * 1080, ge=64 * 64, le=3840 * 2160)
    """Largest final video re-encoded, in pixels (width x height); the schema allows up
    to 3840x2160. A larger spec.assembly.resolution is refused (InvalidSpec)."""
    max_film_seconds: float = Field(default=600.0, gt=0)
    """Longest final video assembled; a longer film is refused (AssemblyFailed, Stalled)."""
    scratch_limit_mb: int | None = Field(default=None, ge=1)
    """Size of the scratch disk (TMPDIR; the Deployment's /tmp emptyDir sizeLimit). Set,
    the operator refuses to start (exit 78) when its caps could fill more than this:
    workers x output_max_bytes + kept_outputs_max_bytes + assembly_concurrency x
    assembly_max_bytes."""

    def scratch_needed_bytes(self) -> int:
        """The most scratch disk the caps allow at once: every reconcile worker holding one
        clip (a download, a clip checked for adoption, a trim's original), the outputs kept
        for a failed upload, and each media slot's work."""
        return (
            self.workers * self.output_max_bytes
            + self.kept_outputs_max_bytes
            + self.assembly_concurrency * self.assembly_max_bytes
        )

    def scratch_problem(self) -> str | None:
        """Why the caps do not fit SCENE_OPERATOR_SCRATCH_LIMIT_MB, or None."""
        if self.scratch_limit_mb is None:
            return None
        need, have = self.scratch_needed_bytes(), self.scratch_limit_mb * 1024**2
        if need <= have:
            return None
        mib = 1024**2
        return (
            f"the scratch disk caps add up to {need // mib} MiB, over "
            f"SCENE_OPERATOR_SCRATCH_LIMIT_MB={self.scratch_limit_mb}: "
            f"SCENE_OPERATOR_WORKERS ({self.workers}) x SCENE_OPERATOR_OUTPUT_MAX_BYTES "
            f"({self.output_max_bytes // mib} MiB) + SCENE_OPERATOR_KEPT_OUTPUTS_MAX_BYTES "
            f"({self.kept_outputs_max_bytes // mib} MiB) + SCENE_OPERATOR_ASSEMBLY_CONCURRENCY "
            f"({self.assembly_concurrency}) x SCENE_OPERATOR_ASSEMBLY_MAX_BYTES "
            f"({self.assembly_max_bytes // mib} MiB); lower one of them or give the pod more "
            "scratch disk"
        )

    def concurrency(self, provider: str) -> int:
        return int(getattr(self, f"concurrency_{provider}", self.concurrency_local))

    def cost_per_second(self, provider: str) -> float:
        return float(getattr(self, f"cost_per_second_{provider}", 0.0))

    # ------------------------------------------------------------------ webhooks
    webhook_url: str | None = None
    """Public base URL at which Replicate reaches the webhook receiver (e.g.
    https://hooks.example.com). Set, it turns webhooks on: predictions are created with
    webhook=<url>/webhooks/replicate, and the receiver listens on `webhook_port`."""
    webhook_port: int = Field(default=8000, ge=1, le=65535)
    """Port of the webhook receiver (plain HTTP; TLS ends at the Ingress)."""
    webhook_poll_seconds: float = Field(default=300.0, gt=0)
    """While webhooks are on, Replicate jobs are polled this rarely: a safety net, so a
    lost webhook delays a Scene but never loses it."""
    webhook_max_connections: int = Field(default=64, ge=1, le=10000)
    """Connections the webhook receiver keeps open at once; one more is answered 503
    (Retry-After: 1) and closed before anything of it is read. Replicate's deliveries
    are short requests: a few connections suffice, even through an ingress."""
