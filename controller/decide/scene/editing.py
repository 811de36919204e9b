"""Whether a Completed Scene's working clip matches its edit: read by the Ready condition
(controller/decide/scene/status.py) and the working-clip rules (working.py)."""

from __future__ import annotations

from controller.api.scene import SceneStatus
from controller.api.vocabulary import Reason
from controller.decide.scene.model import Observation


def refusal(s: SceneStatus) -> bool:
    """The current edit was refused (its trims leave nothing of the clip, or could not be
    applied within the media limits)."""
    return s.refused_edit is not None and (
        s.last_error is not None and s.last_error.reason == Reason.INVALID_SPEC
    )


def editing(o: Observation, s: SceneStatus) -> tuple[str, str] | None:
    """Ready=False (reason, message) of a Completed Scene whose working clip does not match
    the current edit; None when it does."""
    d, clip = o.desired, s.clip
    if d is None or clip is None:
        return None
    key = d.working_key(clip.spec_hash, clip.take)
    if refusal(s) and s.refused_edit == key:
        assert s.last_error is not None
        return Reason.INVALID_SPEC, s.last_error.message
    if s.working_video_clip_s3_key == key and (d.edit is None or s.working_clip is not None):
        return None
    what = d.edit.describe() if d.edit else "no edit"
    return Reason.EDITING, f"deriving the working clip ({what}) from the original"
