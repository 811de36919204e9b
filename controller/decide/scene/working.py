"""Rules for the working clip of a Completed Scene: the original with `spec.edit` applied.

Derived, never generated: an edit added, changed or removed, a regenerated original, or
a working object drift found missing or changed is repaired by DERIVE_WORKING (download
the original, trim, upload beside it, verify), which starts no provider job and never
touches the original. `workingVideoClipS3Key` points only at a verified object: the
original itself (no edit) or the working clip recorded in `status.workingClip`.
"""

from __future__ import annotations

from controller.api.scene import SceneStatus, WorkingClipInfo
from controller.api.vocabulary import Reason
from controller.decide.scene.editing import refusal
from controller.decide.scene.model import Decision, Effect, Event, Observation, Rule
from controller.decide.scene.status import error_at, now_text, same_clip, settle


def _cleared(s: SceneStatus, **update: object) -> SceneStatus:
    """`update`, and any refusal of an earlier edit forgotten."""
    if refusal(s):
        update.setdefault("last_error", None)
    return s.model_copy(update={"refused_edit": None, **update})


def working_checks(o: Observation, s: SceneStatus) -> Decision | None:
    """For a Completed Scene whose original is verified (`s.clip`): None when the working
    clip matches the current edit, else the step towards it."""
    d, clip = o.desired, s.clip
    assert d is not None and clip is not None
    edit = d.edit
    key = d.working_key(clip.spec_hash, clip.take)
    if edit is None:
        if (
            s.working_video_clip_s3_key == clip.key
            and s.working_clip is None
            and not s.refused_edit
        ):
            return None
        nxt = _cleared(s, working_video_clip_s3_key=clip.key, working_clip=None)
        msg = f"edit removed: the working clip is the original s3://{clip.bucket}/{clip.key}"
        return settle(o, nxt, Rule.EDIT_REMOVED, events=(Event(Reason.CLIP_EDITED, msg),))
    if s.refused_edit == key and refusal(s):
        return settle(o, s, Rule.EDIT_REFUSED)  # reported already
    derived = o.derived if o.derived is not None and o.derived.key == key else None
    if derived is not None and derived.refused:
        msg = f"spec.edit ({edit.describe()}) {derived.refused}: not applied; the working clip is unchanged"
        nxt = s.model_copy(
            update={
                "refused_edit": key,
                "last_error": error_at(o, Reason.INVALID_SPEC, msg, False),
            }
        )
        return settle(
            o, nxt, Rule.EDIT_REFUSED, events=(Event(Reason.INVALID_SPEC, msg, "Warning"),)
        )
    w = s.working_clip
    if derived is not None and derived.obj is not None:
        obj = derived.obj
        record = WorkingClipInfo(
            bucket=clip.bucket,
            key=key,
            size=obj.size,
            etag=obj.etag,
            sha256=obj.sha256,
            duration_seconds=round(derived.duration_seconds, 3),
            edit_hash=edit.hash,
            source_key=clip.key,
            verified_at=now_text(o),
        )
        nxt = _cleared(s, working_video_clip_s3_key=key, working_clip=record)
        msg = (
            f"working clip s3://{clip.bucket}/{key} derived from the original ({edit.describe()}):"
            f" {derived.duration_seconds:.2f} s, {obj.size} bytes; no provider job"
        )
        return settle(o, nxt, Rule.WORKING_DERIVED, events=(Event(Reason.CLIP_EDITED, msg),))
    intact = (
        w is not None
        and w.key == key
        and w.edit_hash == edit.hash
        and w.source_key == clip.key
        and s.working_video_clip_s3_key == key
        and not s.refused_edit
    )
    check = o.working_check
    if intact and check is not None and check.key == key:
        assert w is not None
        seen = check.obj
        if seen is None or not same_clip(w, seen):
            intact = False  # drift: missing or changed; derived again, for free
        elif seen.etag != w.etag:  # the same bytes under a new ETag
            record = w.model_copy(update={"etag": seen.etag, "verified_at": now_text(o)})
            return settle(
                o, s.model_copy(update={"working_clip": record}), Rule.WORKING_SAME_CONTENT
            )
    if intact:
        return None
    # Say that the working clip is being derived (Ready False) before doing it; a repair
    # of a working object drift found gone changes nothing visible until it is done.
    pending = settle(o, s, Rule.EDIT_PENDING)
    if pending.effect == Effect.WRITE:
        return pending
    return Decision(Effect.DERIVE_WORKING, pending.status, Rule.DERIVE_WORKING)
