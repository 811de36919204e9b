"""Property tests: `decide` driven by a simulated runtime over random sequences of events.

The simulator is a pure, in-test stand-in for the world outside the state machine: a dict
plays S3, a table of scripted jobs plays the provider, a `SceneStatus` plays the API
server. The pass loop is the runtime's own (`controller.decide.effects.run_pass`), with
this world as its actuator; the invariants are checked at every step.
Hypothesis draws the world's policy and a sequence of events: job progress, S3 deletions
and corruptions, spec edits, token annotations, pause, capacity, the project vanishing,
provider outages and crashes at any point of a pass (which drop what the pass learned).

Properties:
(a) a status written with phase Completed has a clip whose object exists in S3 with the same
    size and etag at the moment that clip was written (never Completed from a promise);
(b) decide never returns START while status.generation is set;
(c) a job is only created right after the pending marker of a status that recorded none,
    and the jobs per (spec hash, take) never exceed the attempts counted (<= retry limit);
(d) attempts never exceed the retry limit; paid starts never exceed the budget;
(e) decide is deterministic and does not mutate its input;
(g) workingVideoClipS3Key only ever points at a verified object: the original recorded in
    the same status, or a working clip derived (and verified) in this pass; an edit never
    starts a job;
(f) every pass ends within the runtime's step bound; an immediate second pass with nothing
    changed makes zero writes; once the world is calm the scene settles (Completed, Failed
    or waiting on the budget) within a bounded number of passes.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.api.common import ErrorInfo
from controller.api.project import Backoff, MissingClipPolicy
from controller.api.scene import GenerationInfo, ScenePhase, SceneStatus
from controller.api.vocabulary import Cond, Reason
from controller.decide.backoff import backoff_seconds
from controller.decide.conditions import get_condition
from controller.decide.edit import Edit
from controller.decide.effects import MAX_STEPS, Ended, Facts, run_pass
from controller.decide.scene import (
    BucketSeen,
    Controls,
    Decision,
    Derived,
    Desired,
    Effect,
    JobPhase,
    JobSeen,
    ObjectSeen,
    Observation,
    OrphanSearch,
    Outcome,
    Rule,
    StoredObject,
    after_start_error,
    decide,
    marker_key,
    with_job_id,
)
from controller.decide.timeutil import parse_rfc3339, rfc3339
from tests.unit.run_now import run_now

CALM_PASSES = 40
T0 = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
HASHES = ("h1", "h2", "h3")
TOKENS = ("t1", "t2")
# Repeated entries weight the draw towards the common case.
START_OUTCOMES = ("ok", "ok", "ok", "refused", "rejected", "ambiguous-created", "ambiguous-none")
JOB_OUTCOMES = ("succeed", "succeed", "succeed", "fail-retryable", "fail-permanent", "lost")
FETCH_OUTCOMES = ("ok", "ok", "ok", "download-fails", "upload-fails")
RESET_RULES = ("retry-token", "project-retry-token")
CLIP_SECONDS = 4.0
EDITS = (
    None,
    Edit(trim_start=1.0),
    Edit(0.5, 0.5, True),
    Edit(trim_start=9.0),
)  # the last leaves nothing


@dataclass
class FakeJob:
    job_id: str
    spec_hash: str
    take: int
    polls_left: int
    outcome: str
    fetch: str
    created_at: dt.datetime = T0


@dataclass
class PassResult:
    decisions: list[Decision]
    writes: int
    ended: str  # "none", "start", "crash", "upload-failed"


@dataclass
class World:
    """Everything outside `decide`, plus the bookkeeping the properties need."""

    retry_limit: int
    backoff: Backoff
    missing_clip: MissingClipPolicy
    max_generations: int | None
    job_scripts: list[tuple[int, str, str]]
    start_script: list[str]
    now: dt.datetime = T0
    spec_hash: str = "h1"
    edit: Edit | None = None
    generation: int = 1
    stored: SceneStatus = field(default_factory=SceneStatus)
    s3: dict[str, StoredObject] = field(default_factory=dict)
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    generate_videos: bool = True
    paused: bool = False
    capacity: bool = True
    project_exists: bool = True
    provider_down: bool = False
    tokens: dict[str, str | None] = field(
        default_factory=lambda: dict.fromkeys(("retry", "regen", "project-retry", "project-regen"))
    )
    verify_clip: bool = False
    calm: bool = False
    # bookkeeping
    epoch_jobs: Counter[tuple[str, int]] = field(default_factory=Counter)
    jobs_created: int = 0
    jobs_before_recreate: int = 0
    starts: int = 0
    uploads: int = 0
    recorded: set[str] = field(default_factory=set)  # job ids ever written to status
    # The runtime's watch of a pending marker (its key, first seen); `now` doubles as the
    # process's monotonic clock, and a crash starts a new process (nothing seen yet).
    marker_seen: tuple[str, dt.datetime] | None = None

    # ------------------------------------------------------------------ the outside world
    def desired(self) -> Desired:
        return Desired(
            spec_hash=self.spec_hash,
            provider="replicate",
            model="m",
            duration_seconds=4,
            bucket="clips",
            key_prefix="v/ns/uid/scenes/1/",
            edit=self.edit,
        )

    def head(self, key: str) -> ObjectSeen:
        return ObjectSeen(key, self.s3.get(key))

    def poll(self, job_id: str) -> JobSeen:
        job = self.jobs.get(job_id)
        if self.provider_down:
            return JobSeen(job_id, JobPhase.UNREACHABLE, retry_after=10.0)
        if job is None:
            return JobSeen(job_id, JobPhase.LOST, _error("JobLost", "unknown job", True))
        if job.polls_left > 0:
            return JobSeen(job_id, JobPhase.RUNNING)
        if job.outcome == "succeed":
            return JobSeen(job_id, JobPhase.SUCCEEDED)
        if job.outcome == "lost":
            return JobSeen(job_id, JobPhase.LOST, _error("JobLost", "expired", True))
        retryable = job.outcome == "fail-retryable"
        return JobSeen(job_id, JobPhase.FAILED, _error("ProviderFailed", "no", retryable))

    def create_job(self, spec_hash: str, take: int) -> str:
        polls, outcome, fetch = self.job_scripts[self.jobs_created % len(self.job_scripts)]
        self.jobs_created += 1
        job_id = f"job-{self.jobs_created}"
        self.jobs[job_id] = FakeJob(job_id, spec_hash, take, polls, outcome, fetch, self.now)
        return job_id

    def next_start_outcome(self) -> str:
        if self.calm:
            return "ok"
        return self.start_script[self.starts % len(self.start_script)]

    def upload(self, job: FakeJob, key: str) -> StoredObject:
        """The job's output: the same bytes however often it is fetched."""
        n = int(job.job_id.split("-")[1])
        self.s3[key] = StoredObject(key, 1000 + n, f'"{job.job_id}"', f"sha-{job.job_id}")
        self.uploads += 1
        return self.s3[key]

    # ------------------------------------------------------------------ the API server
    def write(self, new: SceneStatus, facts: Facts) -> None:
        old = self.stored
        # (a) Completed only with a clip verified in S3 when that clip was written.
        if new.phase == ScenePhase.COMPLETED:
            assert new.clip is not None, "Completed without a clip"
            assert new.original_video_clip_s3_key == new.clip.key
            if new.clip != old.clip or old.phase != ScenePhase.COMPLETED:
                obj = self.s3.get(new.clip.key)
                assert obj is not None, f"Completed with a missing object {new.clip.key}"
                assert (obj.size, obj.etag) == (new.clip.size, new.clip.etag)
                looked = [f.obj for f in (facts.expected, facts.finished) if f is not None]
                assert obj in looked, "Completed from an object not seen in this pass"
                assert obj.invalid is None, "Completed from an object that is not a video"
                assert new.clip.spec_hash == self.spec_hash
                assert new.clip.key == self.desired().key(new.clip.take)
        # (g) the working key names a verified object: the original, or a derived clip.
        wk = new.working_video_clip_s3_key
        if wk is not None:
            assert new.clip is not None, "a working key without an original"
            w = new.working_clip
            if wk != new.clip.key:
                assert w is not None and w.key == wk, "working key without its record"
                assert w.source_key == new.clip.key
                if w != old.working_clip or wk != old.working_video_clip_s3_key:
                    obj = self.s3.get(wk)
                    assert obj is not None, f"working key at a missing object {wk}"
                    assert (obj.size, obj.etag) == (w.size, w.etag)
                    looked = [f.obj for f in (facts.derived, facts.working_check) if f]
                    assert obj in looked, "working clip not verified in this pass"
            else:
                assert w is None
        # (d) the retry limit and the budget hold in every stored status.
        assert new.attempts <= self.retry_limit
        if self.max_generations is not None:
            assert new.generations_started <= self.max_generations
        assert new.generations_started >= old.generations_started or new.generation is None
        for record in (new.generation, new.clip):
            if record is not None and record.job_id:
                self.recorded.add(record.job_id)
        # The API server stores JSON: keep what a re-read would return.
        self.stored = SceneStatus.model_validate(new.wire())
        self.marker_watched()

    def marker_watched(self) -> float:
        """As the runtime's SceneMemory.watch_marker: seconds the stored marker has been
        seen unchanged by this process."""
        key = marker_key(self.stored)
        if key is None or self.marker_seen is None or self.marker_seen[0] != key:
            self.marker_seen = None if key is None else (key, self.now)
            return 0.0
        return (self.now - self.marker_seen[1]).total_seconds()

    def find(self, g: GenerationInfo) -> OrphanSearch:
        """The provider's job list: the oldest unrecorded job of this marker's epoch."""
        if self.provider_down:
            return OrphanSearch(None, error=_error("ServerError", "HTTP 503", True))
        since = parse_rfc3339(g.started_at)
        found = [
            j
            for j in self.jobs.values()
            if (j.spec_hash, j.take) == (g.spec_hash, g.take)
            and since is not None
            and j.created_at >= since
            and j.job_id not in self.recorded
        ]
        return OrphanSearch(min(found, key=lambda j: j.created_at).job_id if found else None)

    # ------------------------------------------------------------------ the runtime
    def observe(self, facts: Facts, jitter: float) -> Observation:
        blocked = None
        if not self.project_exists:
            blocked = ErrorInfo(reason=Reason.PROJECT_NOT_FOUND, message="project gone")
        budget_left = None
        if self.max_generations is not None:
            budget_left = self.max_generations - self.stored.generations_started
        return Observation(
            now=self.now,
            generation=self.generation,
            status=self.stored,
            desired=self.desired() if self.project_exists else None,
            blocked=blocked,
            controls=Controls(
                generate_videos=self.generate_videos,
                paused=self.paused,
                retry_limit=self.retry_limit,
                backoff=self.backoff,
                missing_clip=self.missing_clip,
                budget_left=budget_left,
                regenerate_token=self.tokens["project-regen"],
                retry_token=self.tokens["project-retry"],
            ),
            regenerate_token=self.tokens["regen"],
            retry_token=self.tokens["retry"],
            expected=facts.expected,
            clip_check=facts.clip_check,
            job=facts.job,
            finished=facts.finished,
            working_check=facts.working_check,
            derived=facts.derived,
            orphan=facts.orphan,
            bucket=facts.bucket,
            capacity=self.capacity,
            marker_watched=self.marker_watched(),
            jitter=jitter,
        )

    def run_pass(self, jitter: float = 0.5, crash: tuple[int, str] | None = None) -> PassResult:
        """One reconcile pass; `crash=(n, stage)` kills the operator at its n-th effect."""
        facts = Facts()
        if self.verify_clip and self.stored.phase == ScenePhase.COMPLETED and self.stored.clip:
            facts.clip_check = self.head(self.stored.clip.key)
            if self.stored.working_clip:
                facts.working_check = self.head(self.stored.working_clip.key)
        self.verify_clip = False
        actuator = WorldActuator(self, jitter, crash)
        try:
            result = run_now(run_pass(actuator, facts))
        except Crash:
            self.marker_seen = None  # the restarted process has seen nothing yet
            return PassResult(actuator.decisions, actuator.writes, "crash")
        except UploadFailed:
            return PassResult(actuator.decisions, actuator.writes, "upload-failed")
        if result.ended == Ended.UNSETTLED:
            raise AssertionError(
                f"(f) pass did not end in {MAX_STEPS} steps: {_rules(result.decisions)}"
            )
        ended = {Ended.SETTLED: "none", Ended.STARTED: "start"}
        return PassResult(result.decisions, actuator.writes, ended[result.ended])

    def start(self, o: Observation, d: Decision, stage: str) -> int:
        """The runtime's START: pending marker, provider call, job id (or the start error)."""
        # (c) a new job only when none is recorded, and only after the marker is stored.
        assert self.stored.generation is None
        marker = d.status
        g = marker.generation
        assert g is not None and g.job_id is None
        self.write(marker, {})
        if stage == "after":
            return 1  # crashed before the provider call
        outcome = self.next_start_outcome()
        self.starts += 1
        job_id = None
        if outcome in ("ok", "ambiguous-created"):
            job_id = self.create_job(g.spec_hash, g.take)
            self.epoch_jobs[(g.spec_hash, g.take)] += 1
            assert self.epoch_jobs[(g.spec_hash, g.take)] <= marker.attempts <= self.retry_limit
            if self.max_generations is not None:
                assert self.jobs_created - self.jobs_before_recreate <= self.max_generations
        if outcome == "ok":
            assert job_id is not None
            if stage == "after-create":
                return 1  # the orphan window: a job exists, its id is not recorded
            self.write(with_job_id(marker, job_id), {})
            return 2
        retryable = outcome != "rejected"
        err = _error("ProviderError", f"start: {outcome}", retryable).model_copy(
            update={"at": rfc3339(self.now)}
        )
        ambiguous = outcome.startswith("ambiguous")
        after = after_start_error(o, marker, err, ambiguous=ambiguous)
        assert after.effect != Effect.START
        # No answer: the marker stays (a job may exist) until the provider is searched.
        assert (after.status.generation is not None) == ambiguous
        self.write(after.status, {})  # the runtime always overwrites the marker
        return 2

    # ------------------------------------------------------------------ events
    def reconcile(self, jitter: float, crash: tuple[int, str] | None) -> None:
        result = self.run_pass(jitter, crash)
        if result.ended == "none":
            # Nothing changed in the world: a second pass must not write anything.
            again = self.run_pass(jitter)
            assert again.writes == 0, f"resync wrote: {_rules(again.decisions)}"
            assert again.ended == "none"

    def apply(self, event: tuple) -> None:
        kind = event[0]
        if kind == "tick":
            self.now += dt.timedelta(seconds=event[1])
        elif kind == "progress":
            for job in self.jobs.values():
                job.polls_left = max(job.polls_left - 1, 0)
        elif kind in ("delete", "corrupt"):
            keys = sorted(self.s3)
            if not keys:
                return
            key = keys[event[1] % len(keys)]
            if kind == "delete":
                del self.s3[key]
            else:
                obj = self.s3[key]
                self.s3[key] = replace(obj, size=obj.size + 1, etag=obj.etag + "x")
        elif kind == "edit":
            if event[1] != self.spec_hash:
                self.spec_hash = event[1]
                self.epoch_jobs.clear()  # a new spec gets a fresh set of attempts
            self.generation += 1
        elif kind == "touch":  # an edit that does not change the clip (e.g. a label)
            self.generation += 1
        elif kind == "trim":  # spec.edit changed: never a job
            self.edit = EDITS[event[1]]
            self.generation += 1
        elif kind == "token":
            self.tokens[event[1]] = event[2]
        elif kind == "drift":
            self.verify_clip = True
        elif kind == "stray":  # a clip uploaded by an earlier run whose status write was lost
            key = self.desired().key(self.stored.take)
            self.s3[key] = StoredObject(key, 777, '"stray"')
        elif kind == "junk":  # something that is not a video lands at the clip's key
            key = self.desired().key(self.stored.take)
            self.s3[key] = StoredObject(key, 56, '"junk"', invalid="not a readable video")
        elif kind == "recreate":  # the Scene is deleted and applied again: status is gone
            self.stored = SceneStatus()
            self.epoch_jobs.clear()
            self.jobs_before_recreate = self.jobs_created
        else:
            setattr(self, kind, event[1])

    def calm_down(self) -> None:
        """Everything allowed and working: the scene must reach a resting state."""
        self.calm = True
        self.generate_videos, self.paused, self.capacity = True, False, True
        self.project_exists, self.provider_down = True, False
        for _ in range(CALM_PASSES):
            for job in self.jobs.values():
                job.polls_left = 0
            self.now += dt.timedelta(days=1)
            result = self.run_pass()
            last = result.decisions[-1]
            if result.ended == "none" and last.requeue_after is None:
                s = self.stored
                ready = get_condition(s.conditions, Cond.READY)
                assert s.generation is None
                assert s.phase in (ScenePhase.COMPLETED, ScenePhase.FAILED) or (
                    ready is not None and ready.reason == Reason.BUDGET_EXHAUSTED
                ), f"resting in {s.phase} ({ready.reason if ready else None})"
                if s.phase == ScenePhase.COMPLETED and s.clip is not None:
                    assert s.clip.spec_hash == self.spec_hash
                    want = self.desired().working_key(s.clip.spec_hash, s.clip.take)
                    refused = self.edit is not None and self.edit.leaves_nothing(CLIP_SECONDS)
                    if not refused and s.last_error is None:
                        assert s.working_video_clip_s3_key == want, "working clip not derived"
                return
        raise AssertionError(f"did not settle in {CALM_PASSES} calm passes: {self.stored}")


class Crash(Exception):
    """The operator process dies: what the pass learned is lost."""


class UploadFailed(Exception):
    """The upload failed: the pass ends and the worker will try again later."""


class WorldActuator:
    """The world as the runtime's actuator for one pass, with crashes injected."""

    def __init__(self, world: World, jitter: float, crash: tuple[int, str] | None) -> None:
        self.w, self.jitter, self.crash = world, jitter, crash
        self.decisions: list[Decision] = []
        self.writes = 0
        self.facts = Facts()

    @property
    def stage(self) -> str:
        """The crash stage at the current step ("" if the operator survives it)."""
        step = len(self.decisions) - 1
        return self.crash[1] if self.crash is not None and self.crash[0] == step else ""

    def survive(self) -> None:
        if self.stage:
            raise Crash()

    async def observe(self, facts: Facts) -> Observation:
        self.facts = facts
        return self.w.observe(facts, self.jitter)

    def decided(self, o: Observation, d: Decision) -> None:
        check_decision(o, d)
        self.decisions.append(d)
        if d.effect != Effect.NONE and self.stage == "before":
            raise Crash()

    async def write(self, o: Observation, d: Decision) -> bool:
        self.w.write(d.status, self.facts)
        self.writes += 1
        if d.rule in RESET_RULES and o.status.phase == ScenePhase.FAILED:
            self.w.epoch_jobs.clear()  # a person asked for a fresh set of attempts
        self.survive()
        return True

    async def look(self, o: Observation) -> ObjectSeen:
        assert o.desired is not None
        seen = self.w.head(o.desired.key(o.status.take))
        self.survive()
        return seen

    async def poll(self, o: Observation) -> JobSeen:
        g = o.status.generation
        assert g is not None and g.job_id is not None
        seen = self.w.poll(g.job_id)
        self.survive()
        return seen

    async def check_bucket(self, o: Observation) -> BucketSeen:
        return BucketSeen()

    async def find_job(self, o: Observation) -> OrphanSearch:
        g = o.status.generation
        assert g is not None and g.job_id is None
        found = self.w.find(g)
        self.survive()
        return found

    async def start(self, o: Observation, d: Decision) -> float | None:
        self.writes += self.w.start(o, d, self.stage)
        self.survive()
        return None

    async def derive(self, o: Observation) -> Derived:
        """The working clip from the original in S3: no job, the original untouched."""
        s, d = o.status, o.desired
        assert s.clip is not None and d is not None and d.edit is not None
        jobs, original = self.w.jobs_created, self.w.s3.get(s.clip.key)
        key = d.working_key(s.clip.spec_hash, s.clip.take)
        if original is None:  # as the runtime: the next pass looks at the original
            self.w.verify_clip = True
            raise UploadFailed()
        if d.edit.leaves_nothing(CLIP_SECONDS):
            seen = Derived(key, None, refused="leaves nothing of the clip")
        else:  # deterministic: the same original and edit give the same object
            size = original.size // 2 + len(d.edit.hash)
            obj = StoredObject(key, size, f'"w-{d.edit.hash}-{original.etag}"', f"sha-{key}")
            self.w.s3[key] = obj
            seen = Derived(key, obj, duration_seconds=3.0)
        assert self.w.s3.get(s.clip.key) == original and self.w.jobs_created == jobs
        self.survive()
        return seen

    async def finish(self, o: Observation) -> ObjectSeen | JobSeen:
        g = o.status.generation
        assert g is not None and g.job_id is not None and o.desired is not None
        job = self.w.jobs[g.job_id]
        if job.fetch == "upload-fails":
            job.fetch = "ok"  # the next attempt works
            raise UploadFailed()
        seen: ObjectSeen | JobSeen
        if job.fetch == "download-fails":
            err = _error("OutputUnavailable", "output download failed", True)
            seen = JobSeen(job.job_id, JobPhase.FAILED, err)
        else:
            key = o.desired.key(o.status.take)
            seen = ObjectSeen(key, self.w.upload(job, key))
        self.survive()
        return seen


def _error(reason: str, message: str, retryable: bool) -> ErrorInfo:
    return ErrorInfo(reason=reason, message=message, retryable=retryable, at=rfc3339(T0))


def _rules(decisions: list[Decision]) -> list[str]:
    return [d.rule for d in decisions]


def check_decision(o: Observation, d: Decision) -> None:
    """The properties that hold for every single decision the loop made (`d`)."""
    before = o.status.wire()
    # (e) deterministic and pure.
    assert d == decide(o), "decide is not deterministic"
    assert o.status.wire() == before, "decide mutated the observation"
    assert decide(replace(o, status=SceneStatus.model_validate(before))) == d
    # The orphan-window metric follows the Events it counts (it once missed one).
    posted = {e.reason for e in d.events}
    assert (Reason.JOB_RECOVERED in posted) == (d.outcome == Outcome.ORPHAN_RECOVERED), d.rule
    assert (Reason.JOB_MAY_BE_ORPHANED in posted) == (d.outcome == Outcome.ORPHAN_AGAIN), d.rule
    assert d.park == (d.rule == Rule.WAITING_CAPACITY)
    # (b) never a second job while one is recorded.
    if o.status.generation is not None:
        assert d.effect != Effect.START, d.rule
    if d.effect == Effect.START:
        assert o.desired is not None and o.controls.generate_videos and not o.controls.paused
        assert o.capacity and o.status.attempts < o.controls.retry_limit
        assert o.controls.budget_left is None or o.controls.budget_left > 0
        assert o.expected is not None  # nothing to adopt: no object, or not a video
        assert o.expected.obj is None or o.expected.obj.invalid is not None
    if o.blocked is not None:
        assert d.effect in (Effect.WRITE, Effect.NONE)
    if not o.controls.generate_videos and o.status.generation is None:
        assert d.effect not in (Effect.START, Effect.LOOK_EXPECTED)
    if d.effect == Effect.WRITE:
        assert d.status.wire() != o.status.wire(), f"{d.rule}: WRITE of an unchanged status"
    if d.effect in (Effect.WRITE, Effect.START):
        check_kstatus(d)


def check_kstatus(d: Decision) -> None:
    """(f) kstatus conditions: abnormal-true, never both, and consistent with the phase."""
    conds = {c.type: c for c in d.status.conditions}
    for c in conds.values():  # metav1.Condition's required fields
        assert c.reason and c.last_transition_time, (d.rule, c)
    reconciling, stalled = conds.get(Cond.RECONCILING), conds.get(Cond.STALLED)
    assert all(c is None or c.status == "True" for c in (reconciling, stalled)), d.rule
    assert reconciling is None or stalled is None, d.rule
    if conds[Cond.READY].status == "True":
        assert reconciling is None and stalled is None, d.rule
    if d.status.phase == ScenePhase.FAILED:
        assert stalled is not None and stalled.message, d.rule
    if d.status.generation is not None:
        assert reconciling is not None, d.rule


# ----------------------------------------------------------------------------- strategies

world_events = st.one_of(
    st.tuples(st.just("tick"), st.integers(1, 4000)),
    st.just(("progress",)),
    st.tuples(st.sampled_from(("delete", "corrupt")), st.integers(0, 7)),
    st.tuples(st.just("edit"), st.sampled_from(HASHES)),
    st.tuples(st.just("trim"), st.integers(0, len(EDITS) - 1)),
    st.just(("touch",)),
    st.tuples(
        st.just("token"),
        st.sampled_from(("retry", "regen", "project-retry", "project-regen")),
        st.sampled_from(TOKENS),
    ),
    st.just(("drift",)),
    st.just(("stray",)),
    st.just(("junk",)),
    st.just(("recreate",)),
    st.tuples(
        st.sampled_from(
            ("generate_videos", "paused", "capacity", "project_exists", "provider_down")
        ),
        st.booleans(),
    ),
)
crashes = st.one_of(
    st.none(),
    st.none(),
    st.tuples(st.integers(0, 4), st.sampled_from(("before", "after", "after-create"))),
)
# One step of history: time passes, maybe something happens in the world, then a
# reconcile pass runs (and the operator may crash in it).
steps = st.tuples(
    st.integers(0, 900),
    st.one_of(st.none(), st.just(("progress",)), world_events),
    st.sampled_from((False, False, True)),  # the project's drift timer asks for a HEAD
    crashes,
    st.floats(0.0, 0.999),
)
worlds = st.builds(
    World,
    retry_limit=st.integers(1, 4),
    backoff=st.builds(
        Backoff,
        initial_seconds=st.integers(0, 60),
        factor=st.floats(1.0, 4.0),
        max_seconds=st.integers(0, 900),
    ),
    missing_clip=st.sampled_from(MissingClipPolicy),
    max_generations=st.one_of(st.none(), st.none(), st.integers(0, 8)),
    job_scripts=st.lists(
        st.tuples(
            st.integers(0, 2), st.sampled_from(JOB_OUTCOMES), st.sampled_from(FETCH_OUTCOMES)
        ),
        min_size=1,
        max_size=6,
    ),
    start_script=st.lists(st.sampled_from(START_OUTCOMES), min_size=1, max_size=6),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds, history=st.lists(steps, min_size=5, max_size=40))
def test_invariants_hold_over_random_histories(world: World, history: list[tuple]) -> None:
    for seconds, event, drift, crash, jitter in history:
        world.now += dt.timedelta(seconds=seconds)
        if event is not None:
            world.apply(event)
        world.verify_clip = world.verify_clip or drift
        world.reconcile(jitter, crash)
    world.calm_down()


@settings(max_examples=200, deadline=None)
@given(
    attempt=st.integers(1, 30),
    jitter=st.floats(-1.0, 2.0),
    policy=st.builds(
        Backoff,
        initial_seconds=st.integers(0, 3600),
        factor=st.floats(1.0, 10.0),
        max_seconds=st.integers(0, 86400),
    ),
)
def test_backoff_stays_within_the_equal_jitter_window(
    attempt: int, jitter: float, policy: Backoff
) -> None:
    capped = min(policy.initial_seconds * policy.factor ** (attempt - 1), policy.max_seconds)
    delay = backoff_seconds(attempt, policy, jitter)
    assert capped / 2 - 1e-9 <= delay <= capped + 1e-9
    assert delay <= policy.max_seconds + 1e-9


def test_simulator_reaches_completed_on_the_happy_path() -> None:
    """The simulator itself works: start, poll, finish, Completed, then zero writes."""
    world = World(
        retry_limit=3,
        backoff=Backoff(),
        missing_clip=MissingClipPolicy.REGENERATE,
        max_generations=None,
        job_scripts=[(1, "succeed", "ok")],
        start_script=["ok"],
    )
    assert world.run_pass().ended == "start"
    assert world.run_pass().decisions[-1].rule == "job-running"
    world.apply(("progress",))
    result = world.run_pass()
    assert _rules(result.decisions)[-3:] == ["finish-job", "clip-uploaded", "completed"]
    assert world.stored.phase == ScenePhase.COMPLETED and world.jobs_created == 1
    assert world.run_pass().writes == 0
