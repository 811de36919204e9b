"""Types shared by the Project and Scene resources."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from controller.api.text import bound

# A Kubernetes object as JSON: what the API server sends and the cache keeps.
Body = dict[str, Any]
# An object's (namespace, name): the cache's and the work queue's key.
Key = tuple[str, str]


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

# An RFC 3339 time, as the API server's metav1.Time: `format: date-time` in the CRDs.
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
# metav1.Condition's validation of type and reason (k8s.io/apimachinery conditions_types).
CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

# Provider inputs the operator fills from the spec's own, bounded fields (lower case; the
# spellings of Replicate's input, Veo's GenerateVideosConfig and the spec's camelCase).
RESERVED_PARAMS = frozenset(
    {
        "prompt",
        "negative_prompt",
        "negativeprompt",
        "duration",
        "duration_seconds",
        "durationseconds",
        "seconds",
        "aspect_ratio",
        "aspectratio",
    }
)

# Provider inputs that make one job produce (and bill) several outputs, per provider;
# refused whatever the provider (the spec's may be empty, a Scene's may differ).
COST_MULTIPLYING = {
    VideoProviderName.REPLICATE: ("num_outputs", "num_videos", "num_generations", "batch_size"),
    VideoProviderName.VEO: ("number_of_videos", "numberOfVideos", "sample_count", "sampleCount"),
}


def _spelled(key: str) -> str:
    """A param name whatever its case and separators: num_outputs, numOutputs, NUM-OUTPUTS."""
    return key.lower().replace("_", "").replace("-", "")


COST_MULTIPLYING_PARAMS = frozenset(_spelled(k) for keys in COST_MULTIPLYING.values() for k in keys)
# video.params bounds: keys (the schema's maxProperties too) and JSON size (the operator's
# check alone: a free-form value's size is beyond a 1.20 structural schema).
MAX_PARAMS = 32
MAX_PARAMS_BYTES = 8192


class Condition(ApiModel):
    """The metav1.Condition shape: type, status, reason, message and lastTransitionTime are
    required, as the API conventions ask."""

    type: str = Field(min_length=1, max_length=316, pattern=CONDITION_TYPE_PATTERN)
    """Condition type, e.g. Ready."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: str = Field(min_length=1, max_length=1024, pattern=CONDITION_REASON_PATTERN)
    """CamelCase reason for the condition's last transition."""
    message: str = Field(max_length=32768)
    """Human-readable details (may be empty)."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The .metadata.generation this condition was computed from."""
    last_transition_time: Timestamp
    """When the status last changed (RFC 3339)."""


class VideoConfig(ApiModel):
    """Which video generator makes the clips, and its inputs."""

    provider: VideoProviderName | None = None
    """replicate, veo or local; empty means the operator's default."""
    model: str | None = Field(default=None, max_length=200)
    """Provider model, e.g. google/veo-3.1 (Replicate) or veo-3.1-generate-001 (Veo)."""
    params: Annotated[dict[str, Any], Field(max_length=MAX_PARAMS)] | None = None
    """Extra provider inputs (e.g. resolution, seed); not prompt, duration or aspect ratio,
    nor a number of outputs per job; at most 32 keys and 8 KiB (as JSON)."""

    @field_validator("params")
    @classmethod
    def _no_reserved_params(cls, params: dict[str, Any] | None) -> dict[str, Any] | None:
        # The schema bounds the prompt and the duration; a param of the same name would
        # pass any value around them (Replicate's input takes params last).
        taken = sorted(k for k in params or {} if k.lower() in RESERVED_PARAMS)
        if taken:
            raise ValueError(
                f"params may not set {', '.join(taken)}: use the prompt, negativePrompt, "
                "durationSeconds and aspectRatio fields, which the schema bounds"
            )
        # One generation is one clip: a job asked for several is paid several times and
        # counted once against the budget.
        costly = sorted(k for k in params or {} if _spelled(k) in COST_MULTIPLYING_PARAMS)
        if costly:
            raise ValueError(
                f"params may not set {', '.join(costly)}: they multiply the cost of one "
                "generation (one job makes one clip)"
            )
        size = len(json.dumps(params, separators=(",", ":"))) if params else 0
        if size > MAX_PARAMS_BYTES:
            raise ValueError(f"params are {size} bytes as JSON: at most {MAX_PARAMS_BYTES}")
        return params


MAX_ERROR_MESSAGE = 4096


class ErrorInfo(ApiModel):
    """The last failure, kept with the provider's own message."""

    reason: str
    """CamelCase reason, e.g. RateLimited, InvalidInput, UploadFailed, RetriesExhausted."""
    message: str = Field(default="", max_length=MAX_ERROR_MESSAGE)
    """The provider's or S3's own message, without credentials."""
    retryable: bool = False
    """Whether trying again may succeed (a permanent error fails the scene at once)."""
    at: Timestamp | None = None
    """When it happened (RFC 3339)."""

    @field_validator("message", mode="before")
    @classmethod
    def _bounded(cls, value: object) -> object:
        # A long text is cut (with a marker), never refused: a refused status write
        # would leave the Scene unable to record its failure.
        return bound(value, MAX_ERROR_MESSAGE) if isinstance(value, str) else value
