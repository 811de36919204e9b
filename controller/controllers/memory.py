"""What the runtime keeps between passes, per object.

Memory is lost on restart by design: everything that matters is in the API server and
S3, and a restart must lose nothing and pay nothing twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from controller.api.common import ErrorInfo, Key
from controller.api.scene import SceneStatus
from controller.controllers.job_durations import RecentDurations
from controller.controllers.specs import ProjectSpecs
from controller.controllers.uploads import UploadGate
from controller.providers.base import JobState
from controller.storage.buckets import BucketChecks


@dataclass(slots=True)
class LateJobs:
    """A marker whose late creates are looked for: when next, and the jobs that are no
    duplicates to cancel (the Scene's own, recorded since, and those already canceled)."""

    provider: str
    started_at: str
    due: float  # monotonic
    known: set[str] = field(default_factory=set)


@dataclass(slots=True)
class JobClock:
    """A Scene's job on this process's monotonic clock: when the provider answered its
    create (None: not started by this process), when a poll last saw it running, and
    whether its run time was recorded."""

    job_id: str
    created: float | None
    running: float | None = None
    ended: bool = False


@dataclass(slots=True)  # one per Scene: 10,000 of them at 10,000 Scenes
class SceneMemory:
    polls: int = 0
    job_state: JobState | None = None
    job_clock: JobClock | None = None  # the job's age, for the learned poll timing
    verify_clip: bool = False  # drift polling asked for a HEAD of the recorded clip
    fetch_failures: int = 0
    trim_over_limit: int = 0  # tries in a row of the working clip's trim over the media limits
    unrecorded: SceneStatus | None = None  # a started job whose id write failed: retry it
    look_first: bool = False  # drift saw an object for this scene: HEAD it before deciding
    marker: tuple[str, float] | None = None  # (pending marker's key, first seen: monotonic)
    duplicates: LateJobs | None = None  # a marker's late creates looked for (duplicates.py)

    def watch_marker(self, key: str | None, now: float) -> float:
        """Seconds this process has seen the pending marker `key` unchanged, on its
        monotonic clock `now` (0 the first time); None forgets it."""
        if key is None or self.marker is None or self.marker[0] != key:
            self.marker = None if key is None else (key, now)
            return 0.0
        return now - self.marker[1]


_IDLE_SCENE = SceneMemory()


@dataclass(slots=True)
class ProjectMemory:
    planning: bool = False
    planning_error: ErrorInfo | None = None
    plan_failures: int = 0
    drift_scheduled: bool = False
    name_conflicts: list[str] = field(default_factory=list)  # planning.report_name_conflicts
    bucket_problem: str | None = None  # Projects.report_bucket


@dataclass
class Memory:
    scenes: dict[Key, SceneMemory] = field(default_factory=dict)
    projects: dict[Key, ProjectMemory] = field(default_factory=dict)
    buckets: BucketChecks = field(default_factory=BucketChecks)  # HeadBucket, cached
    specs: ProjectSpecs = field(default_factory=ProjectSpecs)  # validated once per generation
    abandoned: dict[Key, tuple[str, str]] = field(default_factory=dict)  # deleted Scene's job
    uploads: UploadGate = field(default_factory=UploadGate)  # closed by deletion (uploads.py)
    # Scene -> parked for a slot since (the decisions' clock): set by its first parking
    # pass, or by the intake for a planned Scene parked before its first pass.
    waiting_since: dict[Key, dt.datetime] = field(default_factory=dict)
    durations: RecentDurations = field(default_factory=RecentDurations)  # poll timing

    def scene(self, key: Key) -> SceneMemory:
        return self.scenes.setdefault(key, SceneMemory())

    def settle_scene(self, key: Key) -> None:
        """After a pass: forget a Scene's memory that holds nothing (a Completed or
        waiting Scene's, mostly), so 10,000 idle Scenes keep no record each."""
        if self.scenes.get(key) == _IDLE_SCENE:
            del self.scenes[key]

    def project(self, key: Key) -> ProjectMemory:
        return self.projects.setdefault(key, ProjectMemory())
