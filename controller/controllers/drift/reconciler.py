"""Drift: one LIST of a Project's prefix per interval, compared with its Scenes by size
and ETag. No HEAD per Scene and no API write unless something disagrees; a Scene that
disagrees is queued with a note to look (the Scene pass decides the repair). No LIST
when it could change nothing (`listing_needed`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from controller.api.keys import project_prefix
from controller.api.project import ProjectSpec
from controller.api.scene import ScenePhase
from controller.api.vocabulary import Cond, Reason
from controller.assembly.reconciler import Assembler
from controller.controllers.memory import Memory
from controller.controllers.ports import ClipStorage, Threads
from controller.controllers.project.reconciler import drift_interval
from controller.controllers.project.status import reported_missing
from controller.controllers.scene.working_clip import working_drifted
from controller.informer.cache import Key, Store, key_of
from controller.observability import metrics as m
from controller.queue.state import Result
from controller.settings import Settings

log = logging.getLogger("scene_operator")

# Ready reasons of a Scene without a job that is looked at again by itself and HEADs its
# clip's key before any start: waiting for a slot, backing off, held for its bucket.
LOOKS_AGAIN = frozenset({Reason.WAITING, Reason.RETRY_SCHEDULED, Reason.BUCKET_UNAVAILABLE})


def listing_needed(
    scenes: Iterable[Mapping[str, Any]], *, generate_videos: bool, final_video: bool
) -> bool:
    """Whether a LIST of the Project's prefix could change anything. It is for: a Completed
    Scene's clip (or working clip) gone or changed, the recorded final video, and an object
    for a Scene without a job that will not look by itself (Paused, Failed, out of budget:
    adopted from the listing). A Scene with a job in flight finds its clip through its own
    passes; one never passed, waiting for a slot, backing off or held for its bucket HEADs
    its key before it could start. Unknown shapes count as needing the LIST."""
    if final_video:
        return True
    for scene in scenes:
        status = scene.get("status") or {}
        if status.get("phase") == ScenePhase.COMPLETED:
            return True
        if generate_videos and not status.get("generation") and not _looks_again(status):
            return True
    return False


def _looks_again(status: Mapping[str, Any]) -> bool:
    if not status:
        return True  # never passed: its first pass looks
    if status.get("phase") == ScenePhase.FAILED:
        return False  # settled: it looks again only when told to
    ready = [c for c in status.get("conditions") or [] if c.get("type") == Cond.READY]
    return bool(ready) and ready[0].get("reason") in LOOKS_AGAIN


class Drift:
    def __init__(
        self,
        *,
        settings: Settings,
        clips: ClipStorage,
        threads: Threads,
        store: Store,
        enqueue_scene: Callable[[Key], None],
        memory: Memory,
        assembly: Assembler,
    ) -> None:
        self.settings = settings
        self.clips = clips
        self.threads = threads
        self.store = store
        self.enqueue_scene = enqueue_scene  # a Scene that disagrees, with a note to look
        self.memory = memory
        self.assembly = assembly

    async def check(self, key: Key) -> Result:
        mem = self.memory.project(key)
        mem.drift_scheduled = False
        project = self.store.projects.get(key)
        if project is None:
            return Result()
        try:
            spec = ProjectSpec.model_validate(project.get("spec") or {})
        except ValidationError:
            return Result()
        scenes = self.store.scenes_of(key)
        mem.drift_scheduled = True
        again = Result(drift_interval(spec, self.settings.drift_interval_scale))
        final_video = spec.assembly_enabled() and bool(
            (project.get("status") or {}).get("finalVideo")
        )
        if not listing_needed(
            scenes, generate_videos=spec.generate_videos, final_video=final_video
        ):
            return again
        bucket = spec.storage.bucket or self.settings.bucket
        prefix = spec.storage.prefix if spec.storage.prefix is not None else self.settings.s3_prefix
        folder = project_prefix(prefix, key[0], project["metadata"]["uid"])
        try:
            listing = await self.threads.run(self.clips.list_prefix, bucket, folder)
        except Exception as e:
            m.S3_OPS.labels("list", "error").inc()
            log.warning(
                "drift check could not list S3",
                extra={"namespace": key[0], "object": key[1], "error": str(e)},
            )
            return again
        m.S3_OPS.labels("list", "ok").inc()
        for scene in scenes:
            status = scene.get("status") or {}
            clip = status.get("clip") or {}
            skey = key_of(scene)
            if status.get("phase") == ScenePhase.COMPLETED:
                obj = listing.get(clip.get("key", ""))
                if (
                    not clip
                    or obj is None
                    or obj.size != clip.get("size")
                    or obj.etag != clip.get("etag")
                    or reported_missing(status)  # is the ignored missing clip back?
                    or working_drifted(status, listing)
                ):
                    self.memory.scene(skey).verify_clip = True
                    self.enqueue_scene(skey)
            elif not status.get("generation") and spec.generate_videos:
                # an object for this scene exists but status never said so: adopt it
                seq = (scene.get("spec") or {}).get("sequence")
                if isinstance(seq, int) and any(
                    k.startswith(f"{folder}scenes/{seq:03d}/") for k in listing
                ):
                    self.memory.scene(skey).look_first = True
                    self.enqueue_scene(skey)
        await self.assembly.drift(project, spec, listing)  # the final video, same LIST
        return again
