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
from typing import TYPE_CHECKING, Any

from controller.api import vocabulary as v
from controller.api.scene import GenerationInfo
from controller.informer.cache import Body, Key, project_of_scene
from controller.kube.errors import NotLeaderError
from controller.observability import metrics as m
from controller.providers.base import ProviderError

if TYPE_CHECKING:
    from controller.controllers.scene.actuator import SceneInputs
    from controller.controllers.scene.reconciler import Scenes
    from controller.queue.state import Memory

log = logging.getLogger("scene_operator")

CANCEL_TIMEOUT_SECONDS = 10.0


def recorded_job(body: Body | None) -> tuple[str, str] | None:
    """(provider, job id) of the job a Scene's status records in flight, if any."""
    generation = ((body or {}).get("status") or {}).get("generation")
    if not isinstance(generation, dict) or not generation.get("jobId"):
        return None
    return str(generation.get("provider") or ""), str(generation["jobId"])


async def cancel_job(scenes: Scenes, scene: Key, provider_name: str, job_id: str, why: str) -> str:
    """Ask the provider to cancel `job_id`; the outcome: canceled, unsupported, failed."""
    extra: dict[str, Any] = {
        "namespace": scene[0],
        "object": scene[1],
        "provider": provider_name,
        "job": job_id,
    }
    try:
        provider = scenes.providers.video(provider_name)
        await scenes.limiter("creates", provider_name).acquire()
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


def abandoned(memory: Memory, scene: Key, body: Body) -> None:
    """A Scene was deleted: remember the job its last state recorded in flight, to cancel
    it when its key is processed (the leader's worker; no provider call from a watch)."""
    job = recorded_job(body)
    if job is not None:
        memory.abandoned[scene] = job


async def deleted(scenes: Scenes, scene: Key) -> None:
    job = scenes.memory.abandoned.pop(scene, None)
    if job is not None:
        await cancel_job(scenes, scene, job[0], job[1], "its Scene was deleted")


async def after_write(scenes: Scenes, scene: Key, job: GenerationInfo | None, why: str) -> None:
    """After the write that stopped recording `job` (sc.abandoned_job): cancel it."""
    if job is not None and job.job_id:
        scenes.kept.drop(scene)
        await cancel_job(scenes, scene, job.provider, job.job_id, why)


async def confirm_blocked(scenes: Scenes, body: Body, inputs: SceneInputs) -> SceneInputs:
    """A Scene with a job in flight whose Project is not in the cache: the cache may only
    be behind (a restart, a watch event not delivered yet). Read the Project from the API
    before its job is abandoned; found, it is cached and the Scene goes on."""
    blocked, status = inputs.blocked, body.get("status") or {}
    if (
        blocked is None
        or blocked.reason != v.Reason.PROJECT_NOT_FOUND
        or inputs.project is not None  # there, and being deleted: no doubt
        or not status.get("generation")
    ):
        return inputs
    ns, name = project_of_scene(body)
    fresh = await scenes.api.get(v.PROJECT_PLURAL, ns, name)
    if fresh is None:
        return inputs
    scenes.intake.on_project_event(None, fresh)
    return scenes.inputs(body)
