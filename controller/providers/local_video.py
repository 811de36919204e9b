"""The `local` video provider: renders a real MP4 on this machine, no network, no keys.

Stateless by design, so it behaves like a remote provider across operator restarts:
the job id is a hash of the request, polling needs nothing but that id, and fetching
renders the clip from the request. The only memory is when this process first saw a job
id, used to simulate generation latency; a restarted process treats the job as just
started, which is exactly what a slow remote provider looks like.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from controller.api.request import VideoRequest
from controller.providers.base import JobLostError, JobState, JobStatus, ProviderError
from controller.providers.render import frame_size, render_clip

JOB_PREFIX = "local-"
_MAX_TRACKED_JOBS = 100_000  # bounds the latency memory; forgetting only restarts the wait


class LocalVideoProvider:
    name = "local"
    default_model = "local-renderer-v1"

    def __init__(
        self,
        latency_seconds: float = 0.0,
        *,
        fps: int = 12,
        height: int = 144,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if latency_seconds < 0:
            raise ValueError("latency_seconds must not be negative")
        self.latency_seconds = latency_seconds
        self.fps = fps
        self.height = height
        self._clock = clock
        self._first_seen: OrderedDict[str, float] = OrderedDict()

    def job_id(self, request: VideoRequest) -> str:
        """`local-` + 16 hex of the sha256 of every request field (model made explicit)."""
        fields = asdict(request)
        fields["model"] = request.model or self.default_model
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
        return JOB_PREFIX + hashlib.sha256(canonical.encode()).hexdigest()[:16]

    async def start(self, request: VideoRequest) -> str:
        self._validate(request)
        job_id = self.job_id(request)
        self._seen(job_id)
        return job_id

    async def poll(self, job_id: str, request: VideoRequest) -> JobState:
        self._check_id(job_id, request)
        started = self._seen(job_id)
        if self._clock() - started < self.latency_seconds:
            return JobState(status=JobStatus.RUNNING)
        return JobState(status=JobStatus.SUCCEEDED)

    async def fetch(self, job_id: str, state: JobState, request: VideoRequest, dest: Path) -> None:
        self._check_id(job_id, request)
        if state.status != JobStatus.SUCCEEDED:
            raise ProviderError("NotReady", f"job {job_id} is {state.status}", retryable=True)
        try:
            # Encoding is CPU work: keep it off the event loop.
            await asyncio.to_thread(
                render_clip,
                Path(dest),
                prompt=request.prompt,
                sequence=request.sequence,
                duration_seconds=request.duration_seconds,
                aspect_ratio=request.aspect_ratio,
                fps=self.fps,
                height=self.height,
            )
        except ValueError as exc:
            raise ProviderError("InvalidRequest", str(exc), retryable=False) from exc
        except Exception as exc:  # encoder or disk trouble: worth another try
            raise ProviderError(
                "RenderFailed", f"{type(exc).__name__}: {exc}", retryable=True
            ) from exc

    async def cancel(self, job_id: str) -> bool:
        """Nothing runs before the fetch renders: forgetting the job is the whole cancel."""
        self._first_seen.pop(job_id, None)
        return True

    # ------------------------------------------------------------------------- helpers

    def _validate(self, request: VideoRequest) -> None:
        """Refuse up front what the renderer would refuse later (permanent errors)."""
        try:
            frame_size(request.aspect_ratio, self.height)
        except ValueError as exc:
            raise ProviderError("InvalidRequest", str(exc), retryable=False) from exc
        if request.duration_seconds < 1:
            raise ProviderError(
                "InvalidRequest", "duration_seconds must be at least 1", retryable=False
            )

    def _check_id(self, job_id: str, request: VideoRequest) -> None:
        # The id is a function of the request: a mismatch means the job recorded in status
        # was started for a different request (e.g. the spec changed). Report it the way a
        # remote provider reports an unknown job, so the caller starts the right one.
        if job_id != self.job_id(request):
            raise JobLostError(f"local job {job_id} does not match the request")

    def _seen(self, job_id: str) -> float:
        """When this process first saw `job_id` (now, if never)."""
        if not self.latency_seconds:
            return 0.0  # no simulated latency: nothing worth remembering
        first = self._first_seen.get(job_id)
        if first is None:
            first = self._first_seen[job_id] = self._clock()
            while len(self._first_seen) > _MAX_TRACKED_JOBS:
                self._first_seen.popitem(last=False)
        return first
