"""The provider's side of a run: jobs created against Scenes (duplicates), and the
figures of a rate-limited run: 429s, GETs per job, and how long a finished job waited
before its Scene was Completed."""

from __future__ import annotations

from typing import Any

from benchmarks.limits import delay_stats, reads_per_job
from benchmarks.measure import duplicate_jobs
from controller.api import vocabulary as v


def jobs_against_scenes(api: Any, replicate: Any, scenes: int) -> dict[str, Any]:
    """Provider jobs against Scenes: one paginated LIST of Scenes, kept small."""
    scene_prompts: list[str] = []
    started = 0
    clip_jobs: set[str] = set()
    cont = ""
    path = f"/apis/{v.GROUP}/{v.VERSION}/{v.SCENE_PLURAL}"
    while True:
        params = {"limit": "500", **({"continue": cont} if cont else {})}
        page = api.list(path, v.SCENE_PLURAL, **params)
        for s in page.get("items") or []:
            scene_prompts.append((s.get("spec") or {}).get("prompt", ""))
            status = s.get("status") or {}
            started += int(status.get("generationsStarted") or 0)
            job = (status.get("clip") or {}).get("jobId")
            if job:
                clip_jobs.add(job)
        cont = (page.get("metadata") or {}).get("continue") or ""
        if not cont:
            break
    with replicate.lock:
        created = [
            (j["id"], str((j.get("input") or {}).get("prompt", ""))) for j in replicate.created
        ]
    out = duplicate_jobs((p for _, p in created), scene_prompts)
    ids = {i for i, _ in created}
    out.update(
        {
            "scene_objects": len(scene_prompts),
            "distinct_scene_prompts": len(set(scene_prompts)),
            "generations_started_sum": started,
            "clips_from_created_jobs": len(clip_jobs & ids),
            "jobs_equal_scenes": len(created) == len(scene_prompts) == scenes,
        }
    )
    return out


def completion_figures(
    replicate: Any, completed: dict[str, float], first_wave: int = 0
) -> dict[str, Any]:
    """Completion → Completed delay, GETs per job and 429s, from the fake provider's own
    records and the times the harness's watch saw each Scene Completed; the same figures
    for the jobs created after the first `first_wave`, which the operator polls knowing
    how long the first ones took (the first wave is polled on the fixed schedule)."""
    with replicate.lock:
        ids = [j["id"] for j in replicate.created]
        gets = [path.rsplit("/", 1)[-1] for route, _, path in replicate.requests if route == "get"]
        throttled = dict(replicate.throttled)
    with replicate.webhooks.lock:
        deliveries = list(replicate.webhooks.deliveries)
    finished = replicate.finished_at()
    later = set(ids[first_wave:]) if 0 < first_wave < len(ids) else set()
    return {
        "completion_to_completed_seconds": delay_stats(finished, completed),
        "gets_per_job": reads_per_job(gets, ids),
        "after_first_wave": {
            "jobs": len(later),
            "completion_to_completed_seconds": delay_stats(
                {j: t for j, t in finished.items() if j in later}, completed
            ),
            "gets_per_job": reads_per_job((g for g in gets if g in later), later),
        },
        "http_429s": {"total": sum(throttled.values()), **throttled},
        "webhooks": {
            "delivered": len(deliveries),
            "accepted": sum(1 for d in deliveries if d.accepted),
            "attempts": sum(len(d.answers) for d in deliveries),
        },
    }
