"""The Scene resource: one planned shot and its clip."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from controller.api.common import ApiModel, AspectRatio, Condition, ErrorInfo, VideoConfig
from controller.api.project import MAX_PROMPT


class ScenePhase(StrEnum):
    PENDING = "Pending"
    PROCESSING = "Processing"
    COMPLETED = "Completed"
    FAILED = "Failed"


class ProjectRef(ApiModel):
    name: str = Field(min_length=1, max_length=253)
    """Name of the Project (same namespace) this scene belongs to."""


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


class ClipInfo(ApiModel):
    """The verified object in S3 that this scene's status points at."""

    bucket: str
    key: str
    size: int = Field(ge=0)
    etag: str
    sha256: str | None = None
    spec_hash: str
    take: int = Field(ge=0)
    provider: str | None = None
    job_id: str | None = None
    verified_at: str
    """When HEAD last confirmed size and checksum (RFC 3339)."""


class GenerationInfo(ApiModel):
    """The external job in flight. Written before waiting, so a restart resumes it."""

    provider: str
    model: str
    job_id: str | None = None
    """Empty only in the short window between the provider call and this write."""
    started_at: str
    attempt: int = Field(ge=1)
    spec_hash: str
    take: int = Field(ge=0)
    polls: int = Field(default=0, ge=0)


class SceneStatus(ApiModel):
    """Observed state; Completed is written only after the object is verified in S3."""

    phase: ScenePhase | None = None
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    spec_hash: str | None = None
    """Hash of the inputs that decide the clip (prompt, duration, ratio, provider, model)."""
    original_video_clip_s3_key: str | None = Field(default=None, alias="originalVideoClipS3Key")
    """S3 key of the generated clip (the old app's field name)."""
    working_video_clip_s3_key: str | None = Field(default=None, alias="workingVideoClipS3Key")
    """S3 key of the clip to use (the old app's field name; same object for now)."""
    clip: ClipInfo | None = None
    generation: GenerationInfo | None = None
    take: int = Field(default=0, ge=0)
    """Bumped by each regeneration; part of the S3 key so takes never overwrite."""
    attempts: int = Field(default=0, ge=0)
    """Paid generation attempts for the current take."""
    generations_started: int = Field(default=0, ge=0)
    """All generation jobs ever started for this scene (usage and budget)."""
    last_error: ErrorInfo | None = None
    next_retry_at: str | None = None
    handled_regenerate_token: str | None = None
    handled_retry_token: str | None = None
    handled_project_regenerate_token: str | None = None
    handled_project_retry_token: str | None = None
