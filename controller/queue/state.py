"""The work queue's vocabulary: what an item asks to reconcile, what a pass returns, and
the error that asks for a retry without counting a failure."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """What a queue item asks to reconcile (also the `kind` label of the metrics)."""

    SCENE = "scene"
    PROJECT = "project"
    DRIFT = "drift"


Item = tuple[Kind, str, str]  # (kind, namespace, name)


class TransientError(Exception):
    """An expected, temporary failure (an upload failed, the API server did not answer):
    the worker re-adds the key with backoff and logs one warning, no traceback."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Result:
    """What a reconciler asks of the worker loop: look again after `requeue_after`
    seconds (None: only when an event says so). Errors are raised, not returned."""

    requeue_after: float | None = None
    urgent: bool = False


def sooner(*delays: float | None) -> float | None:
    """The earliest of the delays a pass's steps asked for (None: none asked)."""
    asked = [d for d in delays if d is not None]
    return min(asked) if asked else None
