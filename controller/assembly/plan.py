"""The final video, decided: its inputs hash and key, how to join the clips, what to do now.

Pure functions only; the I/O lives in controller/assembly/reconciler.py (S3, threads)
and controller/media/engine.py (PyAV).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum

from controller.api.project import AssemblyAttempts, FinalVideo
from controller.api.vocabulary import Reason
from controller.decide.timeutil import parse_rfc3339, rfc3339
from controller.storage.clips import project_prefix

# Part of the inputs hash: bump it when the engine's output changes for the same inputs,
# so existing final videos are rebuilt under new keys rather than silently kept.
ASSEMBLY_FORMAT = "v1"
# Codecs whose packets may be copied into an MP4 as they are.
AUDIO_RECHECK = 30.0  # seconds between two looks at an audio object that could not be read


@dataclass(frozen=True)
class ClipRef:
    """One verified clip, as its Scene's status records it."""

    sequence: int
    bucket: str
    key: str
    sha256: str  # the clip's SHA-256 (its ETag when no checksum was recorded)
    size: int


@dataclass(frozen=True)
class AudioRef:
    """The audio object as S3 showed it (HEAD)."""

    bucket: str
    key: str
    version: str  # its SHA-256 metadata, or its ETag
    size: int


def inputs_hash(clips: tuple[ClipRef, ...], audio: AudioRef | None, resolution: str | None) -> str:
    """What decides the final video's bytes: the ordered clips, the audio, the settings."""
    fields = {
        "format": ASSEMBLY_FORMAT,
        "clips": [[c.sequence, c.sha256] for c in clips],
        "audio": [audio.bucket, audio.key, audio.version] if audio else None,
        "resolution": resolution,
    }
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def final_key(prefix: str, namespace: str, project_uid: str, inputs: str) -> str:
    """`<prefix>/<ns>/<project uid>/final/<inputsHash>.mp4`: under the Project's prefix, so
    the drift LIST sees it and deletionPolicy Delete removes it."""
    return f"{project_prefix(prefix, namespace, project_uid)}final/{inputs}.mp4"


def refusal(resolution: str | None, max_pixels: int) -> str | None:
    """Why spec.assembly.resolution is over the operator's cap, or None."""
    size = parse_resolution(resolution)
    if size is None or size[0] * size[1] <= max_pixels:
        return None
    return (
        f"spec.assembly.resolution {resolution} ({size[0] * size[1]} pixels) is over this "
        f"operator's cap of {max_pixels} pixels (SCENE_OPERATOR_MAX_ASSEMBLY_PIXELS)"
    )


def parse_resolution(value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    w, h = value.split("x")
    return int(w), int(h)


# ----------------------------------------------------------------------------- joining


# ----------------------------------------------------------------------------- deciding


class Step(StrEnum):
    OFF = "off"  # assembly not enabled
    WAIT = "wait"  # not every Scene has a verified clip yet
    DONE = "done"  # status records the final video of these inputs
    VERIFY = "verify"  # the drift LIST disagreed with the record: HEAD it first
    ASSEMBLE = "assemble"  # build it (after a HEAD of the key: adopt an object there)
    RUNNING = "running"  # an assembly of these inputs is under way
    FAILED = "failed"  # the last assembly of these inputs failed: wait to retry


INTERRUPTED = "the build stopped with its operator (killed or restarted)"


@dataclass(frozen=True)
class AssemblyObservation:
    now: dt.datetime
    enabled: bool
    scene_count: int
    clips: tuple[ClipRef, ...]  # verified clips (Completed, not reported missing), ordered
    inputs_hash: str | None  # None when the audio object is not known yet
    recorded: FinalVideo | None  # status.finalVideo
    suspect: bool = False  # the drift LIST did not show the recorded object as recorded
    missing: bool = False  # a HEAD confirmed the recorded object missing or changed
    running: str | None = None  # inputs hash of the assembly under way
    attempts: AssemblyAttempts | None = None  # memory's, else status's record
    audio_error: str | None = None  # the audio object could not be read (HEAD)
    paused: bool = False  # spec.paused: no new work is started
    generation: int | None = None  # the Project's metadata.generation
    max_attempts: int = 5  # SCENE_OPERATOR_ASSEMBLY_MAX_ATTEMPTS
    refused: str | None = None  # why the spec is over the operator's caps


@dataclass(frozen=True)
class AssemblyDecision:
    step: Step
    assembled: bool  # the condition Assembled
    reason: str
    message: str
    final_video: FinalVideo | None  # what status.finalVideo should say
    requeue_after: float | None = None
    attempts: AssemblyAttempts | None = None  # what status.assemblyAttempts should say
    stalled: bool = False  # nothing more happens until the spec or a clip changes


def decide(o: AssemblyObservation) -> AssemblyDecision:
    """The decision table of the final video."""
    rec = o.recorded
    if not o.enabled:
        why = "spec.generateVideos is false or spec.assembly.enabled is false"
        return AssemblyDecision(Step.OFF, False, Reason.ASSEMBLY_NOT_REQUESTED, why, None)
    # A record of an object known to be gone is dropped: status never points at nothing.
    keep = None if o.missing else rec
    if o.refused is not None:
        return AssemblyDecision(Step.OFF, False, Reason.INVALID_SPEC, o.refused, keep, stalled=True)
    if o.scene_count == 0 or len(o.clips) < o.scene_count:
        msg = f"{len(o.clips)} of {o.scene_count} clips verified"
        return AssemblyDecision(Step.WAIT, False, Reason.WAITING_FOR_SCENES, msg, keep)
    if o.inputs_hash is None:
        if o.audio_error is not None:  # looked at again shortly: it may be uploaded yet
            return AssemblyDecision(
                Step.FAILED, False, Reason.ASSEMBLY_FAILED, o.audio_error, keep, AUDIO_RECHECK
            )
        msg = "reading the audio object"
        return AssemblyDecision(Step.ASSEMBLE, False, Reason.ASSEMBLING, msg, keep)
    h = o.inputs_hash
    current = rec is not None and rec.inputs_hash == h
    if rec is not None and current and not o.missing:
        if o.suspect:
            return AssemblyDecision(Step.VERIFY, True, Reason.VIDEO_ASSEMBLED, _done(rec), rec)
        return AssemblyDecision(Step.DONE, True, Reason.VIDEO_ASSEMBLED, _done(rec), rec)
    reason = Reason.FINAL_VIDEO_MISSING if current else Reason.ASSEMBLING
    if o.paused and o.running != h:
        msg = "spec.paused is true: the final video is not assembled"
        return AssemblyDecision(Step.WAIT, False, Reason.PAUSED, msg, keep)
    a = o.attempts
    if a is not None and (a.inputs_hash != h or a.generation != o.generation):
        a = None  # tried for other inputs or another spec: those say nothing about these
    if o.running == h:
        msg = _rebuild(current, f"assembling {len(o.clips)} clips")
        return AssemblyDecision(Step.RUNNING, False, reason, msg, keep, attempts=a)
    if a is not None:
        error = a.last_error or INTERRUPTED
        if a.attempts >= o.max_attempts:
            msg = (
                f"gave up after {a.attempts} attempts (SCENE_OPERATOR_ASSEMBLY_MAX_ATTEMPTS); "
                f"change the spec or a clip to try again. Last: {error}"
            )
            return AssemblyDecision(
                Step.FAILED, False, Reason.ASSEMBLY_FAILED, msg, keep, attempts=a, stalled=True
            )
        retry_at = next_attempt_at(a)
        if retry_at > o.now:
            wait = (retry_at - o.now).total_seconds()
            when = rfc3339(retry_at)  # not "in N s": the text must not churn
            msg = f"attempt {a.attempts} of {o.max_attempts} failed, next at {when}: {error}"
            return AssemblyDecision(
                Step.FAILED, False, Reason.ASSEMBLY_FAILED, msg, keep, wait, attempts=a
            )
    msg = _rebuild(current, f"assembling {len(o.clips)} clips")
    return AssemblyDecision(Step.ASSEMBLE, False, reason, msg, keep, attempts=a)


def next_attempt_at(a: AssemblyAttempts) -> dt.datetime:
    """When another build may start: the recorded time, or (a build that died with its
    operator recorded none) the backoff counted from its start."""
    at = parse_rfc3339(a.retry_at)
    if at is not None:
        return at
    started = parse_rfc3339(a.started_at) or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return started + dt.timedelta(seconds=retry_delay(a.attempts, 0.5))


def _done(rec: FinalVideo) -> str:
    return f"s3://{rec.bucket}/{rec.s3_key} ({rec.duration_seconds:.2f} s) verified"


def _rebuild(current: bool, what: str) -> str:
    return f"the final video is missing or changed in S3: {what}" if current else what


def retry_delay(attempts: int, jitter: float) -> float:
    """Seconds before another attempt: 5, 10, 20 ... up to 300, spread by +-25 %."""
    return min(5.0 * 2 ** max(attempts - 1, 0), 300.0) * (0.75 + jitter / 2)
