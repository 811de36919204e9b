"""Late duplicates: a second job for one pending marker, found after the first was taken.

A create can land at the provider after the search for it: sent by a leader frozen
right after its fence check, or slowed on the wire past the search window. After a
marker's job was searched for (found, or not found and started again: see
`late_duplicates` in controller/decide/scene/jobs.py), this process looks again, every
search window on its own monotonic clock, until the Scene is Completed or Failed. A job
of exactly the Scene's request created since the marker (less the clock-skew tolerance)
that no Scene records is a duplicate: canceled at the provider, reported with a Warning
Event `DuplicateCanceled`, counted in `scene_operator_duplicate_jobs_canceled_total`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from controller.api import vocabulary as v
from controller.api.scene import GenerationInfo, ScenePhase, SceneStatus
from controller.controllers.events import Recorder
from controller.decide.timeutil import parse_rfc3339
from controller.informer.cache import Body, Key, Store
from controller.observability import metrics as m
from controller.providers.base import ProviderError, VideoRequest
from controller.queue.state import LateJobs, Memory, SceneMemory
from controller.settings import Settings

log = logging.getLogger("scene_operator")

# cancel.cancel_job: (scenes, scene, provider, job id, why) -> outcome
CancelJob = Callable[[Any, Key, str, str, str], Awaitable[str]]


class Scenes(Protocol):
    """What this module reads of controller.controllers.scene.reconciler.Scenes."""

    settings: Settings
    memory: Memory
    store: Store
    providers: Any
    recorder: Recorder
    recovering: dict[str, Key]
    monotonic: Callable[[], float]

    def limiter(self, op: str, provider: str) -> Any: ...
    def inputs(self, body: Body) -> Any: ...

MAX_CANCELS = 5  # per look: more would be a bug elsewhere, not late creates


def watch(scenes: Scenes, key: Key, marker: GenerationInfo) -> None:
    """Look for late jobs of `marker` one search window from now."""
    due = scenes.monotonic() + scenes.settings.orphan_search_after_seconds
    scenes.memory.scene(key).duplicates = LateJobs(marker.provider, marker.started_at, due)


def recorded(mem: SceneMemory, status: SceneStatus) -> None:
    """A status this Scene wrote: a job it records is its own, never a duplicate (even
    once it failed and is recorded no more)."""
    g = status.generation
    if mem.duplicates is not None and g is not None and g.job_id:
        mem.duplicates.known.add(g.job_id)


async def look(scenes: Scenes, key: Key, cancel_job: CancelJob) -> float | None:
    """After a pass: look for late jobs once the window has passed. Seconds until the
    next look, or None when there is nothing more to watch."""
    mem = scenes.memory.scenes.get(key)
    if mem is None or mem.duplicates is None:
        return None
    late = mem.duplicates
    window = scenes.settings.orphan_search_after_seconds
    now = scenes.monotonic()
    if now < late.due:
        return late.due - now
    late.due = now + window
    provider = late.provider
    body = scenes.store.scenes.get(key)
    since = parse_rfc3339(late.started_at)
    request = scenes.inputs(body).request if body is not None else None
    if body is None or since is None or request is None:
        mem.duplicates = None
        return None
    recorded, pending = _jobs(scenes, provider)
    if pending or mem.unrecorded is not None:
        # A marker without a job id (this Scene's or another's): its job is not ours to
        # cancel. Look again later.
        return window
    exclude = recorded | set(scenes.recovering) | late.known
    since -= timedelta(seconds=scenes.settings.clock_skew_seconds)
    try:
        found = _Found(body, provider, request, since, exclude, late.known)
        await _cancel_found(scenes, key, found, cancel_job)
    except ProviderError as e:
        log.warning(
            "could not look for late duplicate jobs",
            extra={"namespace": key[0], "object": key[1], "error": e.message},
        )
    phase = (body.get("status") or {}).get("phase")
    if phase in (ScenePhase.COMPLETED, ScenePhase.FAILED):
        mem.duplicates = None
        return None
    return window


@dataclass(frozen=True)
class _Found:
    body: Body
    provider: str
    request: VideoRequest
    since: datetime
    exclude: set[str]
    known: set[str]


async def _cancel_found(scenes: Scenes, key: Key, f: _Found, cancel_job: CancelJob) -> None:
    provider = f.provider
    find = getattr(scenes.providers.video(provider), "find_job", None)
    if find is None:
        return
    for _ in range(MAX_CANCELS):
        await scenes.limiter("reads", provider).acquire()
        job_id = await find(f.request, f.since, frozenset(f.exclude))
        if job_id is None:
            return
        f.exclude.add(job_id)
        f.known.add(job_id)
        why = "a second job for one pending marker"
        outcome = await cancel_job(scenes, key, provider, job_id, why)
        m.DUPLICATES_CANCELED.labels(provider, outcome).inc()
        message = (
            f"{provider} job {job_id} is a second job for this Scene's take (a create "
            f"that reached the provider late): {outcome} at the provider, not used"
        )
        await scenes.recorder.post(f.body, v.Reason.DUPLICATE_CANCELED, message, "Warning")


def _jobs(scenes: Scenes, provider: str) -> tuple[set[str], bool]:
    """(job ids every Scene records for `provider`, whether any Scene has a marker of
    it without a job id)."""
    ids: set[str] = set()
    pending = False
    for body in scenes.store.scenes.values():
        status = body.get("status") or {}
        for record in (status.get("generation"), status.get("clip")):
            if isinstance(record, dict) and record.get("provider") == provider:
                if record.get("jobId"):
                    ids.add(str(record["jobId"]))
                elif record is status.get("generation"):
                    pending = True
    return ids, pending
