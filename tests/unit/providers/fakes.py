"""Fake providers: a video provider whose every verb can be scripted per call, and a
planner. Jobs live in a dict; the provider's job list (`find_job`) is optional, like
Replicate's (present) and Veo's (absent)."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import itertools
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from controller.api.request import VideoRequest
from controller.providers.base import (
    JobLostError,
    JobState,
    JobStatus,
    PlannedScene,
    PlanRequest,
    ProviderError,
)
from controller.providers.render import render_clip


@functools.cache
def clip_bytes(seconds: int, aspect_ratio: str) -> bytes:
    """A tiny real MP4, rendered once per length and shape."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        render_clip(
            path,
            prompt="fake",
            sequence=1,
            duration_seconds=seconds,
            aspect_ratio=aspect_ratio,
            fps=4,
            height=32,
        )
        return path.read_bytes()


@dataclass
class FakeJob:
    job_id: str
    request: VideoRequest
    created_at: dt.datetime
    polls_left: int = 0
    outcome: str = "succeed"  # succeed | fail | lost
    seconds: float | None = None  # runs this long on the provider's clock (not by polls)
    polled: int = 0


def refused(status: int = 503) -> ProviderError:
    """An HTTP answer: no job was created."""
    return ProviderError("ServerError", f"HTTP {status}", retryable=True, status_code=status)


def no_answer() -> ProviderError:
    """A timeout or a dropped connection: a job may or may not exist."""
    return ProviderError("Timeout", "no answer", retryable=True, status_code=None)


@dataclass
class FakeVideo:
    name: str = "replicate"
    default_model: str = "fake-model"
    polls: int = 0  # polls a new job answers Running before its outcome
    seconds: float | None = None  # or: a new job runs this long on the clock `now`
    tells_run_time: bool = True  # its state says how long it ran (as Replicate's does)
    outcome: str = "succeed"
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    # One entry per start call, in order: None creates the job and answers; an
    # exception is raised; ("created", exc) creates the job and then raises (no answer).
    start_script: list[object] = field(default_factory=list)
    fetch_errors: list[Exception] = field(default_factory=list)
    # What a job's output is (default: a real clip of the length asked).
    output: Callable[[FakeJob], bytes] | None = None
    search_errors: list[Exception] = field(default_factory=list)
    starts: int = 0
    searches: int = 0
    cancels: list[str] = field(default_factory=list)  # job ids the operator asked to cancel
    can_cancel: bool = True  # False: like Veo
    cancel_errors: list[Exception] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    now: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))

    def create(self, request: VideoRequest) -> str:
        job_id = f"{self.name}-job-{next(self._ids)}"
        self.jobs[job_id] = FakeJob(
            job_id, request, self.now(), self.polls, self.outcome, self.seconds
        )
        return job_id

    async def start(self, request: VideoRequest) -> str:
        self.starts += 1
        step = self.start_script.pop(0) if self.start_script else None
        if isinstance(step, tuple):
            self.create(request)
            raise step[1]
        if isinstance(step, BaseException):  # Killed: the process died before sending
            raise step
        return self.create(request)

    async def poll(self, job_id: str, request: VideoRequest) -> JobState:
        job = self.jobs.get(job_id)
        if job is None or job.outcome == "lost":
            raise JobLostError(f"unknown job {job_id}")
        job.polled += 1
        if job.seconds is not None:
            return self._timed(job)
        if job.polls_left > 0:
            job.polls_left -= 1
            return JobState(JobStatus.RUNNING)
        if job.outcome == "fail":
            err = ProviderError("ContentRejected", "the model refused", retryable=False)
            return JobState(JobStatus.FAILED, error=err)
        return JobState(JobStatus.SUCCEEDED, output_bytes=f"video of {job_id}".encode())

    def _timed(self, job: FakeJob) -> JobState:
        assert job.seconds is not None
        if self.now() < job.created_at + dt.timedelta(seconds=job.seconds):
            return JobState(JobStatus.RUNNING)
        if job.outcome == "fail":
            err = ProviderError("ContentRejected", "the model refused", retryable=False)
            return JobState(JobStatus.FAILED, error=err)
        ran = job.seconds if self.tells_run_time else None
        return JobState(JobStatus.SUCCEEDED, output_bytes=b"video", ran_seconds=ran)

    async def cancel(self, job_id: str) -> bool:
        if self.cancel_errors:
            raise self.cancel_errors.pop(0)
        if not self.can_cancel:
            return False
        self.cancels.append(job_id)
        job = self.jobs.get(job_id)
        if job is not None and job.polls_left > 0:  # a running job ends canceled
            job.polls_left, job.outcome = 0, "fail"
        return True

    async def fetch(self, job_id: str, state: JobState, request: VideoRequest, dest: Path) -> None:
        if self.fetch_errors:
            raise self.fetch_errors.pop(0)
        # A real clip of the length asked: the operator checks that output is a video.
        job = self.jobs[job_id]
        data = self.output(job) if self.output else None
        Path(dest).write_bytes(data or clip_bytes(request.duration_seconds, request.aspect_ratio))


@dataclass
class FakeFinder(FakeVideo):
    """A provider that can list its jobs (like Replicate)."""

    async def find_job(
        self, request: VideoRequest, since: dt.datetime, exclude: frozenset[str]
    ) -> str | None:
        self.searches += 1
        if self.search_errors:
            raise self.search_errors.pop(0)
        found = [
            j
            for j in self.jobs.values()
            if j.request == request and j.created_at >= since and j.job_id not in exclude
        ]
        return min(found, key=lambda j: j.created_at).job_id if found else None


@dataclass
class FakePlanner:
    name: str = "local"
    default_model: str = "fake-planner"
    errors: list[Exception] = field(default_factory=list)
    calls: int = 0

    async def plan(self, request: PlanRequest) -> list[PlannedScene]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return [
            PlannedScene(f"{request.prompt}, shot {i}", "") for i in range(1, request.count + 1)
        ]


@dataclass
class FakeProviders:
    videos: dict[str, FakeVideo] = field(default_factory=dict)
    planners: dict[str, FakePlanner] = field(default_factory=dict)

    def video(self, name: str) -> FakeVideo:
        if name not in self.videos:
            raise ProviderError("ProviderUnavailable", f"no {name} credentials", retryable=False)
        return self.videos[name]

    def planner(self, name: str) -> FakePlanner:
        return self.planners.setdefault(name, FakePlanner(name))


def hold_fetch(video: FakeVideo) -> tuple[asyncio.Event, asyncio.Event]:
    """Make the provider's next downloads wait: returns (release, fetching); `fetching`
    is set once a download has begun, which then waits for `release`."""
    release, fetching = asyncio.Event(), asyncio.Event()
    fetch = video.fetch

    async def held(job_id: str, state: JobState, request: VideoRequest, dest: Path) -> None:
        fetching.set()
        await release.wait()
        await fetch(job_id, state, request, dest)

    video.fetch = held  # type: ignore[method-assign]
    return release, fetching
