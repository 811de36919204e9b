"""Canceling abandoned jobs at the provider: best effort, bounded, logged, counted.

A job is abandoned when its output will not be used: its take was superseded, the spec
changed while it ran, the Scene was deleted, or its Project is gone or invalid. Status
stops recording it first (its job slot is free at once); then the provider is asked to
cancel it, so it costs no more where the provider can stop it (Replicate). Veo cannot:
such a job runs to its end and is paid for. A failed cancel is logged and counted, never
retried and never a reason to hold a Scene.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from controller.api.scene import GenerationInfo
from controller.controllers.ports import Body, Key, ProviderRegistry, RateLimits
from controller.controllers.scene.kept import KeptOutputs
from controller.kube.errors import NotLeaderError
from controller.observability import metrics as m
from controller.providers.base import ProviderError

log = logging.getLogger("scene_operator")

CANCEL_TIMEOUT_SECONDS = 10.0


def recorded_job(body: Body | None) -> tuple[str, str] | None:
    """(provider, job id) of the job a Scene's status records in flight, if any."""
    generation = ((body or {}).get("status") or {}).get("generation")
    if not isinstance(generation, dict) or not generation.get("jobId"):
        return None
    return str(generation.get("provider") or ""), str(generation["jobId"])


def abandoned(abandoned_jobs: dict[Key, tuple[str, str]], scene: Key, body: Body) -> None:
    """A Scene was deleted (a watch event): remember the job its last state recorded in
    flight, to cancel it when its key is processed (the leader's worker; no provider call
    from a watch)."""
    job = recorded_job(body)
    if job is not None:
        abandoned_jobs[scene] = job


class Canceler:
    def __init__(
        self,
        *,
        providers: ProviderRegistry,
        limits: RateLimits,
        kept: KeptOutputs,
        abandoned_jobs: dict[Key, tuple[str, str]],
    ) -> None:
        self.providers = providers
        self.limits = limits
        self.kept = kept  # a kept output of an abandoned job is dropped
        self.abandoned_jobs = abandoned_jobs  # deleted Scenes' jobs (see `abandoned`)

    async def cancel_job(self, scene: Key, provider_name: str, job_id: str, why: str) -> str:
        """Ask the provider to cancel `job_id`; the outcome: canceled, unsupported, failed."""
        extra: dict[str, Any] = {
            "namespace": scene[0],
            "object": scene[1],
            "provider": provider_name,
            "job": job_id,
        }
        try:
            provider = self.providers.video(provider_name)
            await self.limits.limiter("creates", provider_name).acquire()
            took = await asyncio.wait_for(provider.cancel(job_id), CANCEL_TIMEOUT_SECONDS)
            outcome = "canceled" if took else "unsupported"
        except (ProviderError, TimeoutError) as e:
            outcome = "failed"
            extra["error"] = e.message if isinstance(e, ProviderError) else "timed out"
        except NotLeaderError:
            raise  # not sent: the pass stops like any other call of a process that lost the Lease
        except Exception as e:  # best effort: never a reason to fail the pass
            outcome = "failed"
            extra["error"] = f"{type(e).__name__}: {e}"[:500]
        m.JOB_CANCELS.labels(provider_name, outcome).inc()
        if outcome == "canceled":
            log.info(f"abandoned job canceled at the provider ({why})", extra=extra)
        elif outcome == "unsupported":
            log.info(f"abandoned job runs on: {provider_name} cannot cancel ({why})", extra=extra)
        else:
            log.warning(f"abandoned job could not be canceled ({why})", extra=extra)
        return outcome

    async def deleted(self, scene: Key) -> None:
        """After a pass: the job of a Scene deleted meanwhile is canceled."""
        job = self.abandoned_jobs.pop(scene, None)
        if job is not None:
            await self.cancel_job(scene, job[0], job[1], "its Scene was deleted")

    async def after_write(self, scene: Key, job: GenerationInfo | None, why: str) -> None:
        """After the write that stopped recording `job` (sc.abandoned_job): cancel it."""
        if job is not None and job.job_id:
            self.kept.drop(scene)
            await self.cancel_job(scene, job.provider, job.job_id, why)
