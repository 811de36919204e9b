"""What the Scene state machine sees and decides: observations, rules, decisions."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from controller.api.common import ErrorInfo
from controller.api.project import Backoff, MissingClipPolicy
from controller.api.scene import SceneStatus
from controller.decide.edit import Edit

# A safety net only: the runtime parks a Scene that waits for a job slot and wakes it
# when a slot frees (controller/queue/waiting.py).
CAPACITY_RECHECK_SECONDS = 300.0
# A planned Scene never written yet that waits for a job slot is parked in memory without
# a status write (its Project counts the Scenes waiting); once it has waited this long it
# says so in its own status too, so no Scene waits long in silence. As long as the
# capacity re-check, so the notice rides on a wake-up already due: at 10,000 Scenes
# behind 100 slots most Scenes wait minutes, and a shorter bound cost ~0.8 writes each.
WAITING_NOTICE_SECONDS = CAPACITY_RECHECK_SECONDS
BUCKET_RECHECK_SECONDS = 15.0  # a Scene held by a missing or denied bucket looks again


class Effect(StrEnum):
    NONE = "None"  # nothing to do now (maybe requeue later)
    WRITE = "Write"  # write `status`, then decide again
    LOOK_EXPECTED = "LookExpected"  # HEAD the key of the desired clip, then decide again
    POLL = "Poll"  # poll the recorded job, then decide again
    START = "Start"  # write `status` (the pending marker), then create the job
    FINISH = "Finish"  # download the output, upload, verify, then decide again
    FIND_JOB = "FindJob"  # search the provider for a started job whose id was never recorded
    CHECK_BUCKET = "CheckBucket"  # is the bucket there and writable? (cached), then decide again
    DERIVE_WORKING = "DeriveWorking"  # apply the edit to the original, upload, verify; decide again


class Rule(StrEnum):
    """The name of every rule that can fire: metrics labels, logs and test ids."""

    # blocked, and the controls (annotation tokens)
    BLOCKED = "blocked"
    RETRY_TOKEN = "retry-token"
    PROJECT_RETRY_TOKEN = "project-retry-token"
    REGENERATE_TOKEN = "regenerate-token"
    PROJECT_REGENERATE_TOKEN = "project-regenerate-token"
    # a job in flight
    ABANDON_STALE_JOB = "abandon-stale-job"
    ABANDON_BLOCKED_JOB = "abandon-blocked-job"  # its Project gone or invalid
    POLL_JOB = "poll-job"
    JOB_RUNNING = "job-running"
    POLL_FAILED = "poll-failed"
    FINISH_JOB = "finish-job"
    CLIP_UPLOADED = "clip-uploaded"
    UPLOAD_RETRYING = "upload-retrying"
    LOOK_BEFORE_RETRY = "look-before-retry"
    ADOPT_AFTER_JOB_ENDED = "adopt-after-job-ended"
    JOB_FAILED = "job-failed"
    JOB_LOST = "job-lost"
    # a pending marker without a job id (the orphan window, an unanswered create)
    ORPHAN_SETTLING = "orphan-settling"
    FIND_ORPHAN = "find-orphan"
    ORPHAN_RECOVERED = "orphan-recovered"
    UNANSWERED_RECOVERED = "unanswered-recovered"
    ORPHAN_SEARCH_FAILED = "orphan-search-failed"
    START_AMBIGUOUS = "start-ambiguous"
    ORPHAN_WINDOW = "orphan-window"
    UNANSWERED_WINDOW = "unanswered-window"
    # between attempts, Completed and Failed
    SPEC_MOVED = "spec-moved"
    COMPLETED_WITHOUT_CLIP = "completed-without-clip"
    SPEC_CHANGED = "spec-changed"
    CLIP_MISSING_IGNORED = "clip-missing-ignored"
    CLIP_MISSING_FAIL = "clip-missing-fail"
    CLIP_MISSING_REGENERATE = "clip-missing-regenerate"
    CLIP_RESTORED = "clip-restored"
    CLIP_SAME_CONTENT = "clip-etag-changed-same-content"  # a new ETag, the same bytes
    COMPLETED = "completed"
    # the working clip (controller/decide/scene/working.py)
    EDIT_REMOVED = "edit-removed"
    EDIT_REFUSED = "edit-refused"
    EDIT_PENDING = "edit-pending"
    DERIVE_WORKING = "derive-working"
    WORKING_DERIVED = "working-derived"
    WORKING_SAME_CONTENT = "working-etag-changed-same-content"
    FAILED_SPEC_CHANGED = "failed-spec-changed"
    FAILED = "failed"
    # generating
    VIDEOS_NOT_REQUESTED = "videos-not-requested"
    BACKING_OFF = "backing-off"
    LOOK_EXPECTED = "look-expected"
    ADOPT = "adopt"
    PAUSED = "paused"
    ATTEMPTS_EXHAUSTED = "attempts-exhausted"
    BUDGET_EXHAUSTED = "budget-exhausted"
    WAITING_CAPACITY = "waiting-capacity"
    CHECK_BUCKET = "check-bucket"
    BUCKET_UNAVAILABLE = "bucket-unavailable"
    START_JOB = "start-job"
    # the answer to a start (after_start_error), and a provider that cannot be built
    START_UNANSWERED = "start-unanswered"
    START_REJECTED = "start-rejected"
    START_REFUSED = "start-refused"
    PROVIDER_UNAVAILABLE = "provider-unavailable"


class Outcome(StrEnum):
    """What a decision means for the metrics, beyond the rule's own counter."""

    ORPHAN_RECOVERED = "recovered"  # JobRecovered: scene_operator_orphan_window_total
    ORPHAN_AGAIN = "again"  # JobMayBeOrphaned: a new job; the only pay-twice window
    DRIFT_REPAIRED = "drift-repaired"  # scene_operator_drift_repairs_total
    JOB_SUCCEEDED = "job-succeeded"  # a job's clip is verified


OUTCOMES: dict[Rule, Outcome] = {
    Rule.ORPHAN_RECOVERED: Outcome.ORPHAN_RECOVERED,
    Rule.UNANSWERED_RECOVERED: Outcome.ORPHAN_RECOVERED,
    Rule.ORPHAN_WINDOW: Outcome.ORPHAN_AGAIN,
    Rule.UNANSWERED_WINDOW: Outcome.ORPHAN_AGAIN,
    Rule.CLIP_UPLOADED: Outcome.JOB_SUCCEEDED,
    Rule.COMPLETED_WITHOUT_CLIP: Outcome.DRIFT_REPAIRED,
    Rule.CLIP_MISSING_IGNORED: Outcome.DRIFT_REPAIRED,
    Rule.CLIP_MISSING_FAIL: Outcome.DRIFT_REPAIRED,
    Rule.CLIP_MISSING_REGENERATE: Outcome.DRIFT_REPAIRED,
    Rule.ADOPT: Outcome.DRIFT_REPAIRED,
    Rule.ADOPT_AFTER_JOB_ENDED: Outcome.DRIFT_REPAIRED,
}


class JobPhase(StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    LOST = "Lost"  # the provider no longer knows the job
    UNREACHABLE = "Unreachable"  # the poll itself failed; try again later


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    etag: str
    sha256: str | None = None  # as recorded in the object's metadata at upload
    content_sha256: str | None = None  # of the bytes, read back when the ETag moved
    invalid: str | None = None  # why the object is not a usable clip (not a video, ...)


@dataclass(frozen=True)
class ObjectSeen:
    """A look at one S3 key: `obj` is None when nothing is there."""

    key: str
    obj: StoredObject | None


@dataclass(frozen=True)
class Derived:
    """The working clip derived from the original, uploaded and verified; or why the edit
    cannot be applied to it (`refused`: the trims leave nothing)."""

    key: str
    obj: StoredObject | None
    duration_seconds: float = 0.0
    refused: str | None = None


@dataclass(frozen=True)
class JobSeen:
    job_id: str
    phase: JobPhase
    error: ErrorInfo | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class BucketSeen:
    """A look at the bucket a clip goes to, before a job is paid for."""

    problem: str | None = None  # None: there and reachable; else why not, naming it


@dataclass(frozen=True)
class OrphanSearch:
    """The provider searched for the job of a pending marker that has no job id."""

    job_id: str | None  # the job found
    searched: bool = True  # False: the provider cannot list its jobs
    error: ErrorInfo | None = None  # the search failed


@dataclass(frozen=True)
class Desired:
    """What the clip must be, from the Scene spec and its Project."""

    spec_hash: str
    provider: str
    model: str
    duration_seconds: int
    bucket: str
    key_prefix: str  # the scene's folder: "<prefix>/<ns>/<project uid>/scenes/<seq>/"
    edit: Edit | None = None  # None: the working clip is the original

    def key(self, take: int) -> str:
        return f"{self.key_prefix}{self.spec_hash}-t{take}.mp4"

    def working_key(self, spec_hash: str, take: int) -> str:
        """The working clip of the original (spec_hash, take): the original itself
        without an edit, else the derived clip beside it."""
        base = f"{self.key_prefix}{spec_hash}-t{take}"
        return f"{base}-w{self.edit.hash}.mp4" if self.edit else f"{base}.mp4"


@dataclass(frozen=True)
class Controls:
    """Project-level switches and policies that bear on this scene."""

    generate_videos: bool = False
    paused: bool = False
    retry_limit: int = 3
    backoff: Backoff = field(default_factory=Backoff)
    missing_clip: MissingClipPolicy = MissingClipPolicy.REGENERATE
    budget_left: int | None = None  # None: no cap
    regenerate_token: str | None = None  # the Project's annotation
    retry_token: str | None = None


@dataclass(frozen=True)
class Event:
    reason: str
    message: str
    type: str = "Normal"


@dataclass(frozen=True)
class Observation:
    now: dt.datetime
    generation: int  # metadata.generation
    status: SceneStatus
    desired: Desired | None = None
    blocked: ErrorInfo | None = None  # project missing, invalid spec: nothing can proceed
    controls: Controls = field(default_factory=Controls)
    regenerate_token: str | None = None  # the Scene's annotations
    retry_token: str | None = None
    expected: ObjectSeen | None = None  # None: not looked yet
    clip_check: ObjectSeen | None = None  # set when drift polling asked for a check
    job: JobSeen | None = None
    finished: ObjectSeen | None = None  # the verified upload of a succeeded job
    working_check: ObjectSeen | None = None  # drift's look at the recorded working clip
    derived: Derived | None = None  # the working clip just derived
    capacity: bool = True  # a job slot is free for this provider and project
    capacity_limit: str = ""  # when not: which limit is reached, for the condition message
    waiting_since: dt.datetime | None = None  # parked for a slot since (this process)
    planned: bool = False  # created by its Project's plan (owned), not applied by a user
    orphan: OrphanSearch | None = None  # None: not searched yet
    bucket: BucketSeen | None = None  # None: not looked at yet
    orphan_search_after: float = 30.0  # seconds this process watches a marker first
    # How long this process has seen the pending marker (or its unanswered create)
    # unchanged, on its own monotonic clock: never another node's wall clock.
    marker_watched: float = 0.0
    poll_delay: float = 5.0
    jitter: float = 0.5  # a random draw in [0, 1) for backoff


@dataclass(frozen=True)
class Decision:
    effect: Effect
    status: SceneStatus
    rule: Rule
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None

    @property
    def park(self) -> bool:
        """The Scene waits for a job slot: the runtime parks it until one frees."""
        return self.rule == Rule.WAITING_CAPACITY

    @property
    def outcome(self) -> Outcome | None:
        return OUTCOMES.get(self.rule)
