"""Routine progress of a Project's Scenes as one Event per reason, with a count.

Two Normal Events per Scene (GenerationStarted, ClipUploaded) were two of ~7 API writes
per Scene. Like client-go's event series (one Event whose count grows), with
`SCENE_OPERATOR_SCENE_EVENTS=project` they are gathered per Project and reason and
posted on the Project as one Event per batch: when SERIES_SECONDS have passed since the
batch's first occurrence, or at once when the Project has no work left. Warning Events,
and the rare Normal ones (ClipAdopted, JobRecovered, ...), stay on their Scene.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from controller.api import vocabulary as v
from controller.informer.cache import Key

SERIES_SECONDS = 60.0
ROUTINE = frozenset({v.Reason.GENERATION_STARTED, v.Reason.CLIP_UPLOADED})
NAMES_SHOWN = 3


@dataclass
class Batch:
    """Occurrences of one reason on the Scenes of one Project, not posted yet."""

    first: dt.datetime
    opened: float  # queue clock
    scenes: list[str] = field(default_factory=list)
    latest: str = ""  # the latest Scene's own message

    def message(self, reason: str) -> str:
        n = len(self.scenes)
        names = ", ".join(self.scenes[:NAMES_SHOWN])
        if n > NAMES_SHOWN:
            names += f" and {n - NAMES_SHOWN} more"
        what = "scene" if n == 1 else "scenes"
        return f"{reason} on {n} {what} ({names}); latest, {self.scenes[-1]}: {self.latest}"


class Series:
    """Open batches per (Project, reason)."""

    def __init__(self) -> None:
        self.batches: dict[tuple[Key, str], Batch] = {}

    def add(
        self, project: Key, reason: str, scene: str, message: str, now: dt.datetime, clock: float
    ) -> bool:
        """Count one occurrence; True if it opened a batch (the caller wakes the Project
        when it is due)."""
        batch = self.batches.get((project, reason))
        opened = batch is None
        if batch is None:
            batch = self.batches[(project, reason)] = Batch(first=now, opened=clock)
        batch.scenes.append(scene)
        batch.latest = message
        return opened

    def due(self, project: Key, clock: float, *, everything: bool) -> list[tuple[str, Batch]]:
        """The batches of `project` to post now, removed from the open ones."""
        out = []
        for (key, reason), batch in list(self.batches.items()):
            if key == project and (everything or clock - batch.opened >= SERIES_SECONDS):
                out.append((reason, self.batches.pop((key, reason))))
        return out

    def forget(self, project: Key) -> None:
        for k in [k for k in self.batches if k[0] == project]:
            del self.batches[k]
