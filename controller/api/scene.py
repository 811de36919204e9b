"""The Scene resource: one planned shot and its clip."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from controller.api.common import (
    ApiModel,
    AspectRatio,
    Condition,
    ErrorInfo,
    Timestamp,
    VideoConfig,
)
from controller.api.project import MAX_PROMPT


class ScenePhase(StrEnum):
    PENDING = "Pending"
    PROCESSING = "Processing"
    COMPLETED = "Completed"
    FAILED = "Failed"


class ProjectRef(ApiModel):
    """The Project this scene belongs to."""

    name: str = Field(min_length=1, max_length=253)
    """Name of the Project (same namespace) this scene belongs to."""


MAX_TRIM_SECONDS = 600.0


class ClipEdit(ApiModel):
    """A non-destructive edit of the generated clip: the working clip is derived from the
    original (no provider job); the original is never changed."""

    trim_start_seconds: float | None = Field(default=None, ge=0, le=MAX_TRIM_SECONDS)
    """Seconds cut from the start of the original (decimals allowed; cut at the first frame
    at or after this time)."""
    trim_end_seconds: float | None = Field(default=None, ge=0, le=MAX_TRIM_SECONDS)
    """Seconds cut from the end of the original (decimals allowed)."""
    mute_audio: bool | None = None
    """Drop the clip's own sound (e.g. Veo 3's) from the working clip."""


class SceneSpec(ApiModel):
    """One shot: written by the planner when it creates the Scene, or by the user in Git."""

    project_ref: ProjectRef
    sequence: int = Field(ge=1, le=999)
    """Position of the scene in the video, from 1."""
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT)
    """What the clip shows."""
    negative_prompt: str | None = Field(default=None, max_length=1000)
    """What the clip must not show."""
    duration_seconds: int | None = Field(default=None, ge=1, le=60)
    """Seconds of video; empty uses the Project's."""
    aspect_ratio: AspectRatio | None = None
    """Empty uses the Project's."""
    video: VideoConfig | None = None
    """Per-scene override of the Project's video generator."""
    edit: ClipEdit | None = None
    """Trims and mute applied to a copy of the clip (the working clip); changing it never
    starts a provider job. Empty: the working clip is the original."""


class ClipInfo(ApiModel):
    """The verified object in S3 that this scene's status points at."""

    bucket: str
    """S3 bucket."""
    key: str
    """S3 key: <prefix>/<namespace>/<project uid>/scenes/<seq>/<spec hash>-t<take>.mp4."""
    size: int = Field(ge=0)
    """Size in bytes."""
    etag: str
    """S3 ETag, without quotes (drift compares it with the bucket listing)."""
    sha256: str | None = None
    """SHA-256 of the bytes, from the object's metadata when the operator uploaded it."""
    spec_hash: str
    """Hash of the scene inputs the clip was generated from."""
    take: int = Field(ge=0)
    """The take the clip belongs to."""
    provider: str | None = None
    """The video provider that generated it."""
    job_id: str | None = None
    """The provider's job id."""
    verified_at: Timestamp
    """When HEAD last confirmed size and checksum (RFC 3339)."""


class WorkingClipInfo(ApiModel):
    """The verified working clip: the original with `spec.edit` applied (absent without an
    edit, when the working clip is the original itself)."""

    bucket: str
    """S3 bucket (the original's)."""
    key: str
    """S3 key: beside the original, <spec hash>-t<take>-w<edit hash>.mp4."""
    size: int = Field(ge=0)
    """Size in bytes."""
    etag: str
    """S3 ETag, without quotes (drift compares it with the bucket listing)."""
    sha256: str | None = None
    """SHA-256 of the bytes, from the object's metadata."""
    duration_seconds: float = Field(ge=0)
    """Seconds of video in the working clip."""
    edit_hash: str
    """Hash of the edit it was derived with."""
    source_key: str
    """The original it was derived from."""
    verified_at: Timestamp
    """When HEAD last confirmed size and checksum (RFC 3339)."""


class GenerationInfo(ApiModel):
    """The external job in flight. Written before waiting, so a restart resumes it."""

    provider: str
    """replicate, veo or local."""
    model: str
    """The provider's model."""
    job_id: str | None = None
    """Empty only in the short window between the provider call and this write."""
    started_at: Timestamp
    """When this record was written, before the provider was called (RFC 3339)."""
    attempt: int = Field(ge=1)
    """Attempt number within the current take, from 1."""
    spec_hash: str
    """Hash of the scene inputs the job was started for."""
    take: int = Field(ge=0)
    """The take the job generates."""
    polls: int = Field(default=0, ge=0)
    """Polls of the job so far."""


class SceneStatus(ApiModel):
    """Observed state; Completed is written only after the object is verified in S3."""

    phase: ScenePhase | None = None
    """Pending, Processing, Completed or Failed."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready, Generating, Failed, and kstatus's Reconciling and Stalled (present only while
    True)."""
    observed_generation: int | None = None
    """The metadata.generation this status was computed from."""
    spec_hash: str | None = None
    """Hash of the inputs that decide the clip (prompt, duration, ratio, provider, model)."""
    original_video_clip_s3_key: str | None = Field(default=None, alias="originalVideoClipS3Key")
    """S3 key of the generated clip (the old app's field name)."""
    working_video_clip_s3_key: str | None = Field(default=None, alias="workingVideoClipS3Key")
    """S3 key of the clip to use: the original without an edit, else the verified working
    clip (the old app's field name)."""
    clip: ClipInfo | None = None
    working_clip: WorkingClipInfo | None = None
    refused_edit: str | None = None
    """The working key of an edit refused because its trims leave nothing of the clip; not
    tried again until the edit or the clip changes."""
    generation: GenerationInfo | None = None
    take: int = Field(default=0, ge=0)
    """Bumped by each regeneration; part of the S3 key so takes never overwrite."""
    attempts: int = Field(default=0, ge=0)
    """Paid generation attempts for the current take."""
    generations_started: int = Field(default=0, ge=0)
    """All generation jobs ever started for this scene (usage and budget)."""
    last_error: ErrorInfo | None = None
    next_retry_at: Timestamp | None = None
    """While backing off: when the next attempt may start (RFC 3339)."""
    handled_regenerate_token: str | None = None
    """The last video.scene-operator.io/regenerate annotation value acted on (each acts once)."""
    handled_retry_token: str | None = None
    """The last video.scene-operator.io/retry annotation value acted on (each acts once)."""
    handled_project_regenerate_token: str | None = None
    """The last regenerate token of the Project acted on for this scene."""
    handled_project_retry_token: str | None = None
    """The last retry token of the Project acted on for this scene."""
