"""The one effect loop of a Scene pass: decide -> carry out the effect -> fold what it
learned back into the observation -> decide again, until a decision asks for nothing
(or for a job start, which ends the pass).

The loop does no I/O itself: every effect goes through a `SceneActuator`. The runtime
passes the real one (Kubernetes, S3, providers); unit and property tests pass fakes, so
they check this very loop, not a model of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from controller.decide.scene import (
    BucketSeen,
    Decision,
    Derived,
    Effect,
    JobSeen,
    ObjectSeen,
    Observation,
    OrphanSearch,
    Rule,
    decide,
)

MAX_STEPS = 12  # decisions allowed in one pass; a pass that needs more is a bug
UNSETTLED_RECHECK_SECONDS = 1.0


@dataclass
class Facts:
    """What one pass has learned so far; each new observation carries it."""

    expected: ObjectSeen | None = None  # a HEAD of the desired clip's key
    clip_check: ObjectSeen | None = None  # a HEAD of the clip status points at
    job: JobSeen | None = None
    finished: ObjectSeen | None = None  # the verified upload of a succeeded job
    orphan: OrphanSearch | None = None
    bucket: BucketSeen | None = None  # the bucket of the desired clip, before a start
    working_check: ObjectSeen | None = None  # a HEAD of the working clip status points at
    derived: Derived | None = None  # the working clip derived in this pass


class Ended(StrEnum):
    SETTLED = "settled"  # a decision asked for nothing more
    STARTED = "started"  # a job start was carried out (or refused)
    GONE = "gone"  # nothing to reconcile any more (the Scene was deleted)
    UNSETTLED = "unsettled"  # MAX_STEPS decisions without settling


@dataclass
class PassResult:
    ended: Ended
    decisions: list[Decision] = field(default_factory=list)
    requeue_after: float | None = None  # the earliest re-check asked for during the pass

    def ask(self, seconds: float | None) -> None:
        if seconds is not None and (self.requeue_after is None or seconds < self.requeue_after):
            self.requeue_after = seconds


class SceneActuator(Protocol):
    """Everything a pass does outside `decide`. A method that cannot do its part now
    raises: the pass ends there and the error reaches the worker loop (backoff)."""

    async def observe(self, facts: Facts) -> Observation | None:
        """Gather an observation (the Scene as cached now, plus `facts`); may add facts
        it gathers itself. None: the Scene is gone."""
        ...

    def decided(self, o: Observation, d: Decision) -> None:
        """Called for every decision, before its effect (metrics, parking). Must not await:
        nothing may run between the capacity seen in `o` and a START."""
        ...

    async def write(self, o: Observation, d: Decision) -> bool:
        """Write `d.status` (with a precondition) and post `d.events`. False on a
        conflict: the pass observes again."""
        ...

    async def look(self, o: Observation) -> ObjectSeen:
        """HEAD the key of the desired clip at the current take."""
        ...

    async def poll(self, o: Observation) -> JobSeen: ...

    async def find_job(self, o: Observation) -> OrphanSearch:
        """Search the provider for the job of a pending marker without a job id."""
        ...

    async def check_bucket(self, o: Observation) -> BucketSeen:
        """Is the desired clip's bucket there and ours (HeadBucket, cached)?"""
        ...

    async def start(self, o: Observation, d: Decision) -> float | None:
        """Write the pending marker `d.status`, create the job, record its id. Returns
        when to look at the Scene again."""
        ...

    async def finish(self, o: Observation) -> ObjectSeen | JobSeen:
        """Download a succeeded job's output, upload and verify it: the verified object,
        or the job seen anew (to poll again, or failed for good)."""
        ...

    async def derive(self, o: Observation) -> Derived:
        """Derive the working clip from the original (spec.edit), upload and verify it."""
        ...


async def run_pass(
    actuator: SceneActuator, facts: Facts | None = None, max_steps: int = MAX_STEPS
) -> PassResult:
    facts = facts if facts is not None else Facts()
    result = PassResult(Ended.UNSETTLED)
    for _ in range(max_steps):
        o = await actuator.observe(facts)
        if o is None:
            result.ended = Ended.GONE
            return result
        d = decide(o)
        result.decisions.append(d)
        actuator.decided(o, d)
        if d.effect == Effect.NONE:
            result.ask(d.requeue_after)
            result.ended = Ended.SETTLED
            return result
        if d.effect == Effect.WRITE:
            if await actuator.write(o, d):
                result.ask(d.requeue_after)
                if d.rule == Rule.WORKING_DERIVED:
                    facts.derived = None  # recorded: another derivation is a new fact
            continue  # written: decide on it; a conflict: observe again
        if d.effect == Effect.START:
            result.ask(await actuator.start(o, d))
            result.ended = Ended.STARTED
            return result
        if d.effect == Effect.LOOK_EXPECTED:
            facts.expected = await actuator.look(o)
        elif d.effect == Effect.POLL:
            facts.job = await actuator.poll(o)
        elif d.effect == Effect.FIND_JOB:
            facts.orphan = await actuator.find_job(o)
        elif d.effect == Effect.CHECK_BUCKET:
            facts.bucket = await actuator.check_bucket(o)
        elif d.effect == Effect.DERIVE_WORKING:
            facts.derived = await actuator.derive(o)
            facts.working_check = None  # superseded by what was just derived
        elif d.effect == Effect.FINISH:
            seen = await actuator.finish(o)
            if isinstance(seen, JobSeen):
                facts.job = seen
            else:
                facts.finished = seen
        else:
            raise AssertionError(f"unknown effect {d.effect}")
    result.ask(UNSETTLED_RECHECK_SECONDS)
    return result
