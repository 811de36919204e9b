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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from controller.api import vocabulary as v
from controller.api.request import VideoRequest
from controller.api.scene import GenerationInfo, ScenePhase, SceneStatus
from controller.controllers.memory import LateJobs, Memory, SceneMemory
from controller.controllers.ports import Body, EventSink, Key, ProviderRegistry, RateLimits
from controller.controllers.scene.inputs import SceneInputs
from controller.decide import scene as sc
from controller.decide.timeutil import parse_rfc3339
from controller.observability import metrics as m
from controller.providers.base import ProviderError
from controller.settings import Settings

log = logging.getLogger("scene_operator")

# Canceler.cancel_job: (scene, provider, job id, why) -> outcome
CancelJob = Callable[[Key, str, str, str], Awaitable[str]]

MAX_CANCELS = 5  # per look: more would be a bug elsewhere, not late creates


@dataclass(frozen=True)
class _Found:
    body: Body
    provider: str
    request: VideoRequest
    since: datetime
    exclude: set[str]
    known: set[str]


class LateDuplicates:
    """Watches the pending markers of Scenes (how long this process has seen each, on
    its monotonic clock) and, once a marker's job was searched for, looks for and
    cancels the late second jobs of it."""

    def __init__(
        self,
        *,
        settings: Settings,
        memory: Memory,
        scenes: Mapping[Key, Body],
        read: Callable[[Body], SceneInputs],
        providers: ProviderRegistry,
        limits: RateLimits,
        cancel_job: CancelJob,
        events: EventSink,
        recovering: Mapping[str, Key],
        monotonic: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.memory = memory  # per-Scene memory between passes
        self.scenes = scenes  # the cache's Scenes
        self.read = read  # a Scene's inputs: its request
        self.providers = providers
        self.limits = limits
        self.cancel_job = cancel_job
        self.events = events
        self.recovering = recovering  # job ids found by a search, held for their Scene
        self.monotonic = monotonic  # this process's own timings (the queue's clock)

    def watched(self, mem: SceneMemory, status: SceneStatus) -> float:
        """Seconds this process has seen `status`'s pending marker unchanged."""
        return mem.watch_marker(sc.marker_key(status), self.monotonic())

    def written(self, key: Key, status: SceneStatus) -> None:
        """A status a pass wrote (status_writer.py): its marker is watched from now, and a
        job it records is its own, never a duplicate (even once it failed and is recorded
        no more)."""
        mem = self.memory.scene(key)
        mem.watch_marker(sc.marker_key(status), self.monotonic())
        g = status.generation
        if mem.duplicates is not None and g is not None and g.job_id:
            mem.duplicates.known.add(g.job_id)

    def watch(self, mem: SceneMemory, marker: GenerationInfo) -> None:
        """Look for late jobs of `marker` one search window from now."""
        due = self.monotonic() + self.settings.orphan_search_after_seconds
        mem.duplicates = LateJobs(marker.provider, marker.started_at, due)

    async def look(self, key: Key) -> float | None:
        """After a pass: look for late jobs once the window has passed. Seconds until the
        next look, or None when there is nothing more to watch."""
        mem = self.memory.scenes.get(key)
        if mem is None or mem.duplicates is None:
            return None
        late = mem.duplicates
        window = self.settings.orphan_search_after_seconds
        now = self.monotonic()
        if now < late.due:
            return late.due - now
        late.due = now + window
        provider = late.provider
        body = self.scenes.get(key)
        since = parse_rfc3339(late.started_at)
        request = self.read(body).request if body is not None else None
        if body is None or since is None or request is None:
            mem.duplicates = None
            return None
        recorded, pending = self._jobs(provider)
        if pending or mem.unrecorded is not None:
            # A marker without a job id (this Scene's or another's): its job is not ours to
            # cancel. Look again later.
            return window
        exclude = recorded | set(self.recovering) | late.known
        since -= timedelta(seconds=self.settings.clock_skew_seconds)
        try:
            found = _Found(body, provider, request, since, exclude, late.known)
            await self._cancel_found(key, found)
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

    async def _cancel_found(self, key: Key, f: _Found) -> None:
        provider = f.provider
        find = getattr(self.providers.video(provider), "find_job", None)
        if find is None:
            return
        for _ in range(MAX_CANCELS):
            await self.limits.limiter("reads", provider).acquire()
            job_id = await find(f.request, f.since, frozenset(f.exclude))
            if job_id is None:
                return
            f.exclude.add(job_id)
            f.known.add(job_id)
            why = "a second job for one pending marker"
            outcome = await self.cancel_job(key, provider, job_id, why)
            m.DUPLICATES_CANCELED.labels(provider, outcome).inc()
            message = (
                f"{provider} job {job_id} is a second job for this Scene's take (a create "
                f"that reached the provider late): {outcome} at the provider, not used"
            )
            await self.events.post(f.body, v.Reason.DUPLICATE_CANCELED, message, "Warning")

    def _jobs(self, provider: str) -> tuple[set[str], bool]:
        """(job ids every Scene records for `provider`, whether any Scene has a marker of
        it without a job id)."""
        ids: set[str] = set()
        pending = False
        for body in self.scenes.values():
            status = body.get("status") or {}
            for record in (status.get("generation"), status.get("clip")):
                if isinstance(record, dict) and record.get("provider") == provider:
                    if record.get("jobId"):
                        ids.add(str(record["jobId"]))
                    elif record is status.get("generation"):
                        pending = True
        return ids, pending
