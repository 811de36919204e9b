"""The final video's records in status: the object (finalVideo) and the builds tried
for its current inputs (assemblyAttempts), read back after a restart."""

from __future__ import annotations

import datetime as dt
import random

from pydantic import ValidationError

from controller.api.project import AssemblyAttempts, FinalVideo
from controller.assembly.plan import retry_delay
from controller.decide.timeutil import rfc3339, utcnow
from controller.informer.cache import Body


def started(
    tried: AssemblyAttempts | None, inputs: str, generation: int | None
) -> AssemblyAttempts:
    """The record of a build starting now (the count goes on from `tried`)."""
    return AssemblyAttempts(
        inputs_hash=inputs,
        generation=generation,
        attempts=(tried.attempts if tried else 0) + 1,
        started_at=rfc3339(utcnow()),
    )


def failed(
    tried: AssemblyAttempts | None, message: str, limit: int, *, refused: bool
) -> AssemblyAttempts | None:
    """The record once the build failed: the next try's time, or none (a refusal, or the
    last attempt allowed) until the spec or a clip changes."""
    if tried is None:
        return None
    count = max(tried.attempts, limit) if refused else tried.attempts
    delay = retry_delay(count, random.random())
    retry_at = None if count >= limit else rfc3339(utcnow() + dt.timedelta(seconds=delay))
    return tried.model_copy(update={"attempts": count, "last_error": message, "retry_at": retry_at})


def recorded_attempts(body: Body) -> AssemblyAttempts | None:
    raw = (body.get("status") or {}).get("assemblyAttempts")
    if not raw:
        return None
    try:
        return AssemblyAttempts.model_validate(raw)
    except ValidationError:
        return None


def recorded_final(body: Body) -> FinalVideo | None:
    raw = (body.get("status") or {}).get("finalVideo")
    if not raw:
        return None
    try:
        return FinalVideo.model_validate(raw)
    except ValidationError:
        return None
