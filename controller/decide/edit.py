"""The edit of a Scene's clip, as the state machine sees it, and its hash (part of the
working clip's key, in the style of the spec hash)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.api.scene import ClipEdit
from controller.api.vocabulary import Reason
from controller.decide.hashing import spec_hash

# Trims are compared and hashed in milliseconds: 1.0 and 1.0000001 are the same edit.
_MS = 1000
# Bumped when the trim's output for the same edit would change (encoder, cut rule).
TRIM_VERSION = 1


@dataclass(frozen=True)
class Edit:
    """What the working clip must be, relative to the original."""

    trim_start: float = 0.0
    trim_end: float = 0.0
    mute_audio: bool = False

    @property
    def hash(self) -> str:
        return edit_hash(self)

    def leaves_nothing(self, seconds: float) -> bool:
        """Whether the trims remove all of a clip of `seconds`."""
        return self.trim_start + self.trim_end >= seconds - 1e-6

    def describe(self) -> str:
        parts = []
        if self.trim_start:
            parts.append(f"trim {self.trim_start:g} s from the start")
        if self.trim_end:
            parts.append(f"trim {self.trim_end:g} s from the end")
        if self.mute_audio:
            parts.append("mute")
        return ", ".join(parts)


def edit_hash(edit: Edit) -> str:
    fields = {
        "trimStartMs": round(edit.trim_start * _MS),
        "trimEndMs": round(edit.trim_end * _MS),
        "muteAudio": edit.mute_audio,
        "version": TRIM_VERSION,
    }
    return spec_hash(fields)


def edit_of(spec: ClipEdit | None) -> Edit | None:
    """The spec's edit, or None when it changes nothing (the working clip is the original)."""
    if spec is None:
        return None
    edit = Edit(
        round((spec.trim_start_seconds or 0.0) * _MS) / _MS,
        round((spec.trim_end_seconds or 0.0) * _MS) / _MS,
        bool(spec.mute_audio),
    )
    return None if edit == Edit() else edit


def working_record(scene: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The verified object downstream uses for a Scene (wire form): the original's record
    without an edit; with one, the working clip's record once it matches the edit (or the
    last one, when the edit was refused). None while it is being derived: nothing
    downstream may use the Scene yet."""
    status = scene.get("status") or {}
    clip, working = status.get("clip") or {}, status.get("workingClip") or {}
    try:
        edit = edit_of(ClipEdit.model_validate((scene.get("spec") or {}).get("edit") or {}))
    except ValueError:
        return None
    if edit is None:
        return clip or None
    key = status.get("workingVideoClipS3Key")
    if (
        status.get("refusedEdit")
        and (status.get("lastError") or {}).get("reason") == Reason.INVALID_SPEC
    ):
        # an edit that leaves nothing changed nothing: the last working clip stays in use
        return next((r for r in (working, clip) if key and r.get("key") == key), None)
    fits = working.get("editHash") == edit.hash and working.get("sourceKey") == clip.get("key")
    return working if key and working.get("key") == key and fits else None
