"""The search for a job whose pending marker was written but whose id was never
recorded (a kill between the provider's create and the job id write): a provider that
lists its jobs (base.JobFinder) is asked for it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

from controller.api.common import ErrorInfo
from controller.controllers.ports import Body, Key, ProviderRegistry, RateLimits
from controller.controllers.scene.inputs import ScenePass
from controller.decide import scene as sc
from controller.decide.timeutil import parse_rfc3339
from controller.providers.base import ProviderError

log = logging.getLogger("scene_operator")


class JobSearch:
    """FIND_JOB: ask the provider for the job a pending marker started but never
    recorded. A job found is held for its Scene (`recovering`) until its pass ends, so a
    second Scene searching at the same time never takes it."""

    def __init__(
        self,
        *,
        providers: ProviderRegistry,
        limits: RateLimits,
        scenes: Mapping[Key, Body],
        recovering: dict[str, Key],
        clock_skew_seconds: float,
    ) -> None:
        self.providers = providers
        self.limits = limits
        self.scenes = scenes  # the cache's Scenes: the job ids they record
        self.recovering = recovering  # job id -> the Scene that found it
        self.clock_skew = timedelta(seconds=clock_skew_seconds)

    async def find_job(self, scene: ScenePass, o: sc.Observation) -> sc.OrphanSearch:
        key = scene.key
        g, request = o.status.generation, scene.inputs.request
        assert g is not None and request is not None
        try:
            provider = self.providers.video(g.provider)
        except ProviderError:
            return sc.OrphanSearch(None, searched=False)
        find = getattr(provider, "find_job", None)  # see base.JobFinder
        since = parse_rfc3339(g.started_at)
        if find is None or since is None:
            return sc.OrphanSearch(None, searched=False)
        # startedAt is another node's wall clock, created_at the provider's: allow for skew.
        since -= self.clock_skew
        # Jobs other Scenes own (recorded, or being recorded) are never taken.
        exclude = frozenset(self.recorded_job_ids(g.provider) | self.recovering.keys())
        await self.limits.limiter("reads", g.provider).acquire()
        try:
            job_id = await find(request, since, exclude)
        except ProviderError as e:
            log.warning(
                "could not search the provider for an unrecorded job",
                extra={"namespace": key[0], "object": key[1], "error": e.message},
            )
            err = ErrorInfo(reason=e.reason, message=e.message, retryable=e.retryable)
            return sc.OrphanSearch(None, error=err)
        if job_id is not None:
            self.recovering[job_id] = key
        return sc.OrphanSearch(job_id)

    def recorded_job_ids(self, provider: str) -> set[str]:
        ids: set[str | None] = set()
        for body in self.scenes.values():
            status = body.get("status") or {}
            for record in (status.get("generation"), status.get("clip")):
                if isinstance(record, dict) and record.get("provider") == provider:
                    ids.add(record.get("jobId"))
        return {i for i in ids if i}

    def release(self, scene: Key) -> None:
        """The pass of `scene` ended: the jobs it found are recorded now, or not taken."""
        for job_id in [j for j, owner in self.recovering.items() if owner == scene]:
            del self.recovering[job_id]
