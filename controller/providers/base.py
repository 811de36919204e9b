"""Provider contracts: one small interface per kind of external system.

The reconcile code talks to every planner and video generator through these, so a
provider can be swapped without touching it (Crossplane's Observe/Create idea).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from controller.api.request import VideoRequest
from controller.api.text import bound
from controller.decide.retry_after import bounded


class ProviderError(Exception):
    """A classified provider failure.

    `retryable` is decided once, where the error is raised (see `errors.classify_status`):
    429, 5xx, timeouts and connection errors are retryable; other 4xx, safety blocks and
    invalid input are permanent. `message` keeps the provider's own words (no secrets),
    bounded (`controller.api.text.bound`): it ends up in status, Events and logs.
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        message = bound(message)
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after = bounded(retry_after)  # capped: see controller/decide/retry_after.py


class JobLostError(ProviderError):
    """The provider does not know the recorded job any more (expired, deleted, restarted)."""

    def __init__(self, message: str) -> None:
        super().__init__("JobLost", message, retryable=True, status_code=404)


# ----------------------------------------------------------------------------- video


class JobStatus(StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class JobState:
    status: JobStatus
    output_url: str | None = None  # where the finished video can be downloaded
    output_bytes: bytes | None = None  # or the video itself (Veo bytesBase64Encoded)
    error: ProviderError | None = None  # set when status is FAILED
    # How long the job ran, created to completed, on the provider's clock, when it says
    # (Replicate does): what the learned poll timing records (controllers/scene/poll_timing.py).
    ran_seconds: float | None = None


class VideoProvider(Protocol):
    """Start a job (returns its id at once), poll it, fetch its output. All async."""

    name: str
    default_model: str

    async def start(self, request: VideoRequest) -> str:
        """Create one generation job and return its external id. Never retried blindly:
        a failure raises ProviderError and the caller decides."""
        ...

    async def poll(self, job_id: str, request: VideoRequest) -> JobState:
        """Observe a job without changing it. Raises JobLostError if the provider no
        longer knows it, ProviderError for transport/API failures."""
        ...

    async def fetch(self, job_id: str, state: JobState, request: VideoRequest, dest: Path) -> None:
        """Write the finished video to `dest` (a local file)."""
        ...

    async def cancel(self, job_id: str) -> bool:
        """Ask the provider to stop a job whose output will not be used (a superseded take,
        a spec change, its Scene or Project gone), so it costs no more. True: the provider
        took the cancel; False: it cannot cancel jobs (Veo). Raises ProviderError. Best
        effort: the caller bounds it, logs and counts it, and never waits on it for the
        Scene's own state."""
        ...


class JobFinder(Protocol):
    """Optional: a provider that can list its jobs implements this, so a job whose id
    was never recorded (the operator stopped between create and the id write) is found
    and resumed instead of paid for again."""

    async def find_job(
        self, request: VideoRequest, since: datetime, exclude: frozenset[str]
    ) -> str | None:
        """The id of the oldest job created for exactly `request` at or after `since`
        (on the provider's clock: the caller allows for skew) and not in `exclude`, or
        None. Raises ProviderError."""
        ...


# ----------------------------------------------------------------------------- planner


@dataclass(frozen=True)
class PlanRequest:
    prompt: str
    mode: str  # "MusicVideo" | "AdCreative"
    count: int
    duration_seconds: int
    aspect_ratio: str
    style: str | None = None
    character_description: str | None = None
    product_description: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class PlannedScene:
    prompt: str
    negative_prompt: str


class Planner(Protocol):
    name: str
    default_model: str

    async def plan(self, request: PlanRequest) -> list[PlannedScene]:
        """Return at most `request.count` scenes (never more), at least one.
        Raises ProviderError (reason e.g. PromptBlocked, InvalidPlan, RateLimited)."""
        ...
