"""Types shared by the Project and Scene resources."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from controller.text import bound


class ApiModel(BaseModel):
    """Base of every resource model: camelCase on the wire, docstrings become descriptions."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        extra="ignore",
    )

    def wire(self) -> dict[str, Any]:
        """The JSON the API server stores: camelCase, no unset optionals."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class AspectRatio(StrEnum):
    LANDSCAPE = "16:9"
    PORTRAIT = "9:16"
    SQUARE = "1:1"


class VideoProviderName(StrEnum):
    REPLICATE = "replicate"
    VEO = "veo"
    LOCAL = "local"


class PlannerProviderName(StrEnum):
    GEMINI = "gemini"
    LOCAL = "local"


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """The metav1.Condition shape: type, status, reason, message and lastTransitionTime are
    required, as the API conventions ask."""

    type: str = Field(min_length=1, max_length=316)
    """Condition type, e.g. Ready."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: str = Field(min_length=1, max_length=1024)
    """CamelCase reason for the condition's last transition."""
    message: str = Field(max_length=32768)
    """Human-readable details (may be empty)."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The .metadata.generation this condition was computed from."""
    last_transition_time: str
    """When the status last changed (RFC 3339)."""


class VideoConfig(ApiModel):
    """Which video generator makes the clips, and its inputs."""

    provider: VideoProviderName | None = None
    """replicate, veo or local; empty means the operator's default."""
    model: str | None = Field(default=None, max_length=200)
    """Provider model, e.g. google/veo-3.1 (Replicate) or veo-3.1-generate-001 (Veo)."""
    params: dict[str, Any] | None = None
    """Extra provider inputs passed through as given (e.g. resolution, seed)."""


MAX_ERROR_MESSAGE = 4096


class ErrorInfo(ApiModel):
    """The last failure, kept with the provider's own message."""

    reason: str
    """CamelCase reason, e.g. RateLimited, InvalidInput, UploadFailed, RetriesExhausted."""
    message: str = Field(default="", max_length=MAX_ERROR_MESSAGE)
    """The provider's or S3's own message, without credentials."""
    retryable: bool = False
    """Whether trying again may succeed (a permanent error fails the scene at once)."""
    at: str | None = None
    """When it happened (RFC 3339)."""

    @field_validator("message", mode="before")
    @classmethod
    def _bounded(cls, value: object) -> object:
        # A long text is cut (with a marker), never refused: a refused status write
        # would leave the Scene unable to record its failure.
        return bound(value, MAX_ERROR_MESSAGE) if isinstance(value, str) else value
