"""What one clip should be: the request the decision builds and a video provider gets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class VideoRequest:
    """What one clip should be; built from the Scene spec and the effective video config."""

    prompt: str
    duration_seconds: int
    aspect_ratio: str  # "16:9" | "9:16" | "1:1"
    negative_prompt: str | None = None
    model: str | None = None  # None: the provider's default model
    params: dict[str, Any] = field(default_factory=dict)  # extra provider inputs
    sequence: int = 1  # shown by the local renderer so clips can be told apart
    seed: int | None = None
