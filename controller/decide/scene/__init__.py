"""The Scene state machine, as a pure function: observation -> decision.

No I/O here. The effect loop (controller/decide/effects.py) gathers an observation,
calls `decide`, has its actuator carry out the one effect the decision asks for (a
status write, a look at S3, a poll, a job start, an upload), folds what it learned back
into the observation and calls `decide` again. Each rule is a small named step; the
`Rule` that fired is returned with the decision, and the decision says what the runtime
must know of it (`park`, `outcome` for the metrics), so logs, metrics and tests name it
(cert-manager's policy-chain idea). See docs/architecture.md for the state machine.

Invariants (property-tested):
- phase Completed is only ever produced together with a clip that came from a verified
  S3 object (`o.finished` or `o.expected`), never from a promise;
- START is never returned while a job is recorded in status.generation;
- workingVideoClipS3Key points only at a verified object: the original, or the working
  clip derived from it (`o.derived`), recorded in status.workingClip.
"""

from __future__ import annotations

from controller.api.common import ErrorInfo
from controller.api.scene import ScenePhase, SceneStatus
from controller.api.vocabulary import Reason
from controller.decide.scene.checks import completed_checks, failed_checks
from controller.decide.scene.jobs import (
    abandoned_job,
    after_start_error,
    blocked_job,
    in_flight,
    late_duplicates,
    marker_key,
    spec_moved,
    tokens,
)
from controller.decide.scene.model import (
    BUCKET_RECHECK_SECONDS,
    CAPACITY_RECHECK_SECONDS,
    OUTCOMES,
    WAITING_NOTICE_SECONDS,
    BucketSeen,
    Controls,
    Decision,
    Derived,
    Desired,
    Effect,
    Event,
    JobPhase,
    JobSeen,
    ObjectSeen,
    Observation,
    OrphanSearch,
    Outcome,
    Rule,
    StoredObject,
)
from controller.decide.scene.start import generate
from controller.decide.scene.status import (
    clip_missing,
    retry_or_fail,
    same_clip,
    settle,
    with_job_id,
)

__all__ = [
    "BUCKET_RECHECK_SECONDS",
    "CAPACITY_RECHECK_SECONDS",
    "OUTCOMES",
    "WAITING_NOTICE_SECONDS",
    "BucketSeen",
    "Controls",
    "Decision",
    "Derived",
    "Desired",
    "Effect",
    "Event",
    "JobPhase",
    "JobSeen",
    "ObjectSeen",
    "Observation",
    "OrphanSearch",
    "Outcome",
    "Rule",
    "ScenePhase",
    "SceneStatus",
    "StoredObject",
    "abandoned_job",
    "after_start_error",
    "clip_missing",
    "decide",
    "late_duplicates",
    "marker_key",
    "retry_or_fail",
    "same_clip",
    "with_job_id",
]


def decide(o: Observation) -> Decision:
    if o.blocked is not None or o.desired is None:
        abandon = blocked_job(o)  # a job in flight does not hold its slot for ever
        if abandon is not None:
            return abandon
        err = o.blocked or ErrorInfo(reason=Reason.INVALID_SPEC, message="no desired state")
        return settle(o, o.status, Rule.BLOCKED, (err.reason, err.message))
    for rule in (tokens, in_flight, spec_moved, completed_checks, failed_checks):
        decision = rule(o)
        if decision is not None:
            return decision
    return generate(o)
