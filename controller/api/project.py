"""The Project resource: an idea for a short video, owned by the user."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from controller.api.common import (
    ApiModel,
    AspectRatio,
    Condition,
    ErrorInfo,
    PlannerProviderName,
    Timestamp,
    VideoConfig,
)

MAX_SCENES = 50
MAX_PROMPT = 5000
# WIDTHxHEIGHT, both even (yuv420p), from 10 up to 3840x2160 or 2160x3840: the largest
# frame the engine may be asked to letterbox and encode (the operator's own cap,
# SCENE_OPERATOR_MAX_ASSEMBLY_PIXELS, may be lower). A regex: the API server is 1.20.
_UP_TO_3840 = r"(?:[1-9][0-9]?[02468]|[12][0-9]{2}[02468]|3[0-7][0-9][02468]|38[0-3][02468]|3840)"
_UP_TO_2160 = r"(?:[1-9][0-9]?[02468]|1[0-9]{2}[02468]|20[0-9][02468]|21[0-5][02468]|2160)"
RESOLUTION_PATTERN = rf"^(?:{_UP_TO_3840}x{_UP_TO_2160}|{_UP_TO_2160}x{_UP_TO_3840})$"


class Mode(StrEnum):
    MUSIC_VIDEO = "MusicVideo"
    AD_CREATIVE = "AdCreative"


# The old app's defaults per mode: (scene count, seconds per scene).
MODE_DEFAULTS: dict[Mode, tuple[int, int]] = {
    Mode.MUSIC_VIDEO: (1, 4),
    Mode.AD_CREATIVE: (3, 8),
}


class MissingClipPolicy(StrEnum):
    REGENERATE = "Regenerate"
    FAIL = "Fail"
    IGNORE = "Ignore"


class DeletionPolicy(StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"


class ProjectPhase(StrEnum):
    PENDING = "Pending"
    GENERATING_SCENES = "GeneratingScenes"
    SCENES_READY = "ScenesReady"
    PROCESSING = "Processing"
    COMPLETED = "Completed"
    FAILED = "Failed"


class SceneDefaults(ApiModel):
    """What the planner must produce."""

    count: int | None = Field(default=None, ge=1, le=MAX_SCENES)
    """Number of scenes; default 1 for MusicVideo, 3 for AdCreative."""
    duration_seconds: int | None = Field(default=None, ge=1, le=60)
    """Seconds per clip; default 4 for MusicVideo, 8 for AdCreative."""
    aspect_ratio: AspectRatio = AspectRatio.LANDSCAPE
    """16:9, 9:16 or 1:1."""


class PlannerConfig(ApiModel):
    """Which planner writes the scene plan."""

    provider: PlannerProviderName | None = None
    """gemini or local; empty means the operator's default."""
    model: str | None = Field(default=None, max_length=200)
    """Planner model, e.g. gemini-2.5-pro."""


class Backoff(ApiModel):
    """Exponential backoff between attempts (with jitter)."""

    initial_seconds: int = Field(default=10, ge=0, le=3600)
    """Delay after the first failed attempt."""
    factor: float = Field(default=2.0, ge=1.0, le=10.0)
    """Each further delay is the previous one times this."""
    max_seconds: int = Field(default=600, ge=0, le=86400)
    """Upper bound of one delay."""


class RetryPolicy(ApiModel):
    """Per-scene retry policy for retryable failures."""

    limit: int = Field(default=3, ge=1, le=20)
    """Attempts allowed per scene (including the first)."""
    backoff: Backoff = Field(default_factory=Backoff)


class RepairPolicy(ApiModel):
    """What to do when S3 and status disagree."""

    missing_clip: MissingClipPolicy = MissingClipPolicy.REGENERATE
    """Regenerate (new take), Fail the scene, or Ignore."""
    interval_seconds: int = Field(default=300, ge=10, le=86400)
    """How often the project's S3 prefix is compared with its scenes (one LIST each time;
    at least 10 s)."""


class Budget(ApiModel):
    """Hard caps on paid work."""

    max_generations: int | None = Field(default=None, ge=0)
    """Generation attempts allowed for the whole project; empty means unlimited."""


class StorageConfig(ApiModel):
    """Where clips go; empty fields use the operator's defaults."""

    bucket: str | None = Field(default=None, min_length=3, max_length=63)
    """S3 bucket of this project's clips; empty uses SCENE_OPERATOR_BUCKET."""
    prefix: str | None = Field(default=None, max_length=512)
    """Key prefix; empty uses SCENE_OPERATOR_S3_PREFIX. Keys are
    <prefix>/<namespace>/<project uid>/scenes/<seq>/<spec hash>-t<take>.mp4."""


class AudioSource(ApiModel):
    """An audio object in S3 (e.g. the song of a music video) laid under the final video."""

    bucket: str | None = Field(default=None, min_length=3, max_length=63)
    """Bucket of the audio object; empty means the Project's clip bucket."""
    key: str = Field(min_length=1, max_length=1024)
    """Key of the audio object (any format FFmpeg reads: mp3, m4a, wav, ...)."""


class AssemblyConfig(ApiModel):
    """The final video: the Scenes' clips joined in sequence order into one MP4 in S3."""

    enabled: bool | None = None
    """Assemble the final video; empty follows generateVideos (no clips, no final video)."""
    audio: AudioSource | None = None
    """Audio laid under the whole film, trimmed or padded with silence to its length."""
    resolution: str | None = Field(default=None, pattern=RESOLUTION_PATTERN)
    """WIDTHxHEIGHT of the final video, both even, e.g. 1280x720, at most 3840x2160 (or
    2160x3840) and the operator's SCENE_OPERATOR_MAX_ASSEMBLY_PIXELS; empty uses the
    first clip's. Clips of another size or aspect ratio are scaled and letterboxed."""


class ProjectSpec(ApiModel):
    """The desired video: written by the user, never by the operator."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT)
    """The concept of the video."""
    mode: Mode = Mode.MUSIC_VIDEO
    """MusicVideo or AdCreative (their default scene count and duration differ)."""
    character_description: str | None = Field(default=None, max_length=2000)
    """Who appears in the video, kept the same in every scene (given to the planner)."""
    product_description: str | None = Field(default=None, max_length=2000)
    """The product an AdCreative shows (given to the planner)."""
    style: str | None = Field(default=None, max_length=1000)
    """Visual style of every scene, e.g. "35 mm film, warm dusk light" (given to the planner)."""
    scenes: SceneDefaults = Field(default_factory=SceneDefaults)
    planner: PlannerConfig = Field(default_factory=PlannerConfig)
    video: VideoConfig = Field(default_factory=VideoConfig)
    generate_videos: bool = False
    """The "Generate videos" switch: false plans scenes only."""
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    repair: RepairPolicy = Field(default_factory=RepairPolicy)
    budget: Budget = Field(default_factory=Budget)
    paused: bool = False
    """Stop starting new work; observation continues."""
    storage: StorageConfig = Field(default_factory=StorageConfig)
    deletion_policy: DeletionPolicy = DeletionPolicy.RETAIN
    """Retain keeps clips in S3 when the Project is deleted; Delete removes them first."""
    assembly: AssemblyConfig = Field(default_factory=AssemblyConfig)
    """The final video assembled from the clips (status.finalVideo)."""

    def assembly_enabled(self) -> bool:
        """Assembly needs clips: on when generateVideos is, unless assembly.enabled is false."""
        return self.generate_videos and self.assembly.enabled is not False

    def scene_count(self) -> int:
        return self.scenes.count or MODE_DEFAULTS[self.mode][0]

    def duration_seconds(self) -> int:
        return self.scenes.duration_seconds or MODE_DEFAULTS[self.mode][1]


class PlannedSceneRecord(ApiModel):
    """One scene of the recorded plan."""

    prompt: str = Field(max_length=MAX_PROMPT)
    """What the planned clip shows."""
    negative_prompt: str | None = Field(default=None, max_length=1000)
    """What it must not show."""


class PlanInfo(ApiModel):
    """The scene plan, recorded before Scenes are created so a restart can finish it."""

    provider: str
    """The planner that wrote the plan (gemini or local)."""
    model: str
    """The planner's model."""
    planned_at: Timestamp
    """When the plan was recorded (RFC 3339)."""
    spec_hash: str
    """Hash of the planning inputs the plan was made from (prompt, mode, descriptions,
    style, scenes, planner)."""
    scenes: list[PlannedSceneRecord] = Field(default_factory=list)
    """The planned scenes, in order."""


class Usage(ApiModel):
    """Paid work done for this project (recounted from its Scenes)."""

    generations_started: int = Field(default=0, ge=0)
    """Generation jobs started for the project's Scenes (retries and new takes included)."""
    seconds_of_video: int = Field(default=0, ge=0)
    """Seconds of video in verified clips."""
    estimated_cost_usd: float = Field(default=0.0, ge=0)
    """Generations started x seconds per clip x the operator's price per second of the
    provider (SCENE_OPERATOR_COST_PER_SECOND_<PROVIDER>): an upper estimate, not a bill."""


class FinalVideo(ApiModel):
    """The assembled video in S3, recorded only after HEAD confirmed size and checksum."""

    bucket: str
    """Bucket of the final video (the Project's clip bucket)."""
    s3_key: str = Field(alias="s3Key")
    """`<prefix>/<ns>/<project uid>/final/<inputsHash>.mp4`."""
    size: int = Field(ge=0)
    """Bytes, as HEAD showed them."""
    etag: str
    """The object's ETag, compared with the drift check's listing."""
    sha256: str
    """SHA-256 of the bytes uploaded, checked against the object's metadata."""
    duration_seconds: float = Field(ge=0)
    """Length of the video, measured from the file."""
    inputs_hash: str
    """Hash of the ordered clips (sequence and SHA-256), the audio object and the settings."""
    assembled_at: Timestamp
    """When the object was verified (RFC 3339)."""


class AssemblyAttempts(ApiModel):
    """Builds of the final video tried for one set of inputs: recorded as each starts and
    when it fails, so a restarted operator backs off instead of building again at once."""

    inputs_hash: str
    """The inputs these attempts were for (a changed clip or spec starts a new count)."""
    generation: int | None = None
    """metadata.generation of the Project when they were tried."""
    attempts: int = Field(ge=0)
    """Builds started (one killed with its operator included)."""
    started_at: Timestamp
    """When the last one started (RFC 3339)."""
    last_error: str | None = None
    """Why the last one failed; empty while it runs (or when it died with its operator)."""
    retry_at: Timestamp | None = None
    """Earliest next attempt (RFC 3339); empty once the attempts are used up."""


class ProjectStatus(ApiModel):
    """Observed state; the counters are recounts of the project's Scenes, except
    generationsUsed, which only goes up."""

    phase: ProjectPhase | None = None
    """Pending, GeneratingScenes, ScenesReady, Processing, Completed or Failed."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready, ScenesPlanned, VideosReady, Paused, BudgetExhausted, and kstatus's Reconciling
    and Stalled (present only while True)."""
    observed_generation: int | None = None
    """The metadata.generation this status was computed from."""
    scene_count: int = 0
    """Scenes of this project."""
    pending_scenes: int = 0
    """Scenes in phase Pending."""
    processing_scenes: int = 0
    """Scenes in phase Processing (a job in flight)."""
    completed_scenes: int = 0
    """Scenes in phase Completed (a verified clip)."""
    failed_scenes: int = 0
    """Scenes in phase Failed."""
    usage: Usage | None = None
    generations_used: int = Field(default=0, ge=0)
    """Generations started for this Project, ever: only goes up (deleting Scenes gives
    no budget back); budget.maxGenerations is checked against it."""
    plan: PlanInfo | None = None
    last_error: ErrorInfo | None = None
    """Why planning failed (only while the project has no Scenes)."""
    final_video: FinalVideo | None = None
    """The final video (when assembly is enabled), once verified in S3."""
    assembly_attempts: AssemblyAttempts | None = None
    """Failed or unfinished builds of the final video for its current inputs."""
