"""Rules for a Scene that has ended: a Completed Scene whose clip drift looked at, a
Failed Scene whose spec changed."""

from __future__ import annotations

from controller.api.project import MissingClipPolicy
from controller.api.scene import ScenePhase
from controller.api.vocabulary import Reason
from controller.decide.scene.model import Decision, Event, Observation, Rule
from controller.decide.scene.status import (
    clip_gone,
    clip_missing,
    error_at,
    fresh_attempts,
    now_text,
    same_clip,
    settle,
)
from controller.decide.scene.working import working_checks


def completed_checks(o: Observation) -> Decision | None:
    s, d, c = o.status, o.desired, o.controls
    if s.phase != ScenePhase.COMPLETED or d is None:
        return None
    clip = s.clip
    if clip is None:
        nxt = clip_gone(s, phase=ScenePhase.PENDING)
        msg = "status said Completed but recorded no clip; generating it"
        return settle(
            o,
            nxt,
            Rule.COMPLETED_WITHOUT_CLIP,
            events=(Event(Reason.CLIP_MISSING, msg, "Warning"),),
        )
    if clip.spec_hash != d.spec_hash or clip.take != s.take:
        nxt = fresh_attempts(s, d.spec_hash, phase=ScenePhase.PROCESSING)
        msg = f"spec changed (clip {clip.spec_hash}, spec {d.spec_hash}): regenerating; the old clip stays until the new one is verified"
        return settle(o, nxt, Rule.SPEC_CHANGED, events=(Event(Reason.SPEC_CHANGED, msg),))
    check = o.clip_check
    if check is not None and check.key == clip.key:
        obj = check.obj
        intact = obj is not None and same_clip(clip, obj)
        if not intact:
            what = "missing" if obj is None else "changed (size or checksum differs)"
            msg = f"clip s3://{clip.bucket}/{clip.key} is {what}"
            if c.missing_clip == MissingClipPolicy.IGNORE:
                if clip_missing(s):
                    return settle(o, s, Rule.CLIP_MISSING_IGNORED)  # reported already
                msg += "; repair.missingClip is Ignore: not regenerated"
                nxt = s.model_copy(
                    update={"last_error": error_at(o, Reason.CLIP_MISSING, msg, False)}
                )
                return settle(
                    o,
                    nxt,
                    Rule.CLIP_MISSING_IGNORED,
                    events=(Event(Reason.CLIP_MISSING, msg, "Warning"),),
                )
            if c.missing_clip == MissingClipPolicy.FAIL:
                err = error_at(o, Reason.CLIP_MISSING, msg, False)
                nxt = clip_gone(s, phase=ScenePhase.FAILED, last_error=err)
                return settle(
                    o,
                    nxt,
                    Rule.CLIP_MISSING_FAIL,
                    events=(Event(Reason.CLIP_MISSING, msg, "Warning"),),
                )
            nxt = clip_gone(
                s, phase=ScenePhase.PENDING, take=s.take + 1, attempts=0, last_error=None
            )
            return settle(
                o,
                nxt,
                Rule.CLIP_MISSING_REGENERATE,
                events=(Event(Reason.CLIP_MISSING, msg + "; regenerating", "Warning"),),
            )
        assert obj is not None
        if obj.etag != clip.etag:  # the same bytes under a new ETag: remember the new one
            s = s.model_copy(
                update={
                    "clip": clip.model_copy(update={"etag": obj.etag, "verified_at": now_text(o)})
                }
            )
        if clip_missing(s):  # an ignored missing clip is back, intact
            msg = f"clip s3://{clip.bucket}/{clip.key} is back and intact"
            nxt = s.model_copy(update={"last_error": None})
            return settle(o, nxt, Rule.CLIP_RESTORED, events=(Event(Reason.CLIP_RESTORED, msg),))
        if obj.etag != clip.etag:
            return settle(o, s, Rule.CLIP_SAME_CONTENT)
    if not clip_missing(s):
        return working_checks(o, s) or settle(o, s, Rule.COMPLETED)
    return settle(o, s, Rule.COMPLETED)


def failed_checks(o: Observation) -> Decision | None:
    s, d = o.status, o.desired
    if s.phase != ScenePhase.FAILED or d is None:
        return None
    if s.spec_hash is not None and s.spec_hash != d.spec_hash:
        nxt = fresh_attempts(s, d.spec_hash, phase=ScenePhase.PENDING)
        return settle(
            o,
            nxt,
            Rule.FAILED_SPEC_CHANGED,
            events=(Event(Reason.SPEC_CHANGED, "spec changed: trying again"),),
        )
    return settle(o, s, Rule.FAILED)
