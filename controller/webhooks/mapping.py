"""From a prediction id to the Scene of this process that waits for it, if any.

Only a Scene in this process's cache (its namespaces) whose status records that very job
of that provider as in flight counts: a completed Scene, a Scene of another operator or
a prediction made by someone else sharing the account maps to nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from controller.informer.cache import Body, Key
from controller.webhooks.verify import Outcome


def recorded_job(body: Body | None, provider: str) -> str | None:
    """The job id a Scene records as in flight at `provider`, or None."""
    generation = ((body or {}).get("status") or {}).get("generation")
    if not isinstance(generation, dict) or generation.get("provider") != provider:
        return None
    job = generation.get("jobId")
    return job if isinstance(job, str) and job else None


class JobIndex:
    """job id -> Scene key over the live cache. An entry is trusted only after checking
    the cached Scene still records that job; a miss rebuilds the index once, so a burst
    of webhooks costs about one scan of the cache, not one each."""

    def __init__(self, scenes: Callable[[], Mapping[Key, Body]], provider: str) -> None:
        self._scenes = scenes
        self.provider = provider
        self._index: dict[str, Key] = {}
        self.rebuilds = 0

    def find(self, job_id: str) -> Key | None:
        if not job_id:
            return None
        scenes = self._scenes()
        key = self._index.get(job_id)
        if key is not None and recorded_job(scenes.get(key), self.provider) == job_id:
            return key
        self._index = {
            job: k for k, body in scenes.items() if (job := recorded_job(body, self.provider))
        }
        self.rebuilds += 1
        return self._index.get(job_id)


class Waker:
    """What a verified completion does: the Scene waiting for that job is woken in the
    urgent lane, and its next poll reads (`jobs` is the gate, see gate.PushedJobs). A job
    started here a moment ago whose id is not in status yet is answered PENDING (503):
    Replicate retries, and by then it is recorded."""

    def __init__(self, index: JobIndex, jobs: Any, wake_scene: Callable[[Key], None]) -> None:
        self.index = index
        self.jobs = jobs
        self.wake_scene = wake_scene

    def __call__(self, prediction_id: str) -> Outcome:
        key = self.index.find(prediction_id)
        if key is None:
            return Outcome.PENDING if self.jobs.started_here(prediction_id) else Outcome.UNKNOWN
        self.jobs.completed(prediction_id)
        self.wake_scene(key)
        return Outcome.ACCEPTED
