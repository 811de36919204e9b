"""Finishing a succeeded job: download its output, upload it to the deterministic key,
verify it. Never throw away a paid output: an upload S3 refuses is tried again, the
file kept on disk meanwhile (kept.py)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from controller.api import naming
from controller.api import vocabulary as v
from controller.api.common import ErrorInfo
from controller.api.text import bound
from controller.controllers.ports import (
    Body,
    ClipStorage,
    EventSink,
    Key,
    ProviderRegistry,
    Threads,
)
from controller.controllers.scene.inputs import ScenePass
from controller.controllers.scene.kept import KeptOutputs
from controller.decide import scene as sc
from controller.decide.timeutil import parse_rfc3339, rfc3339
from controller.media import output
from controller.media.probe import OutputRules
from controller.observability import metrics as m
from controller.providers.base import JobStatus, ProviderError
from controller.queue.state import TransientError
from controller.settings import Settings

Clock = Callable[[], dt.datetime]

# Downloads of a succeeded job's output before the attempt fails.
FETCH_ATTEMPTS = 5
FETCH_RETRY_STEP_SECONDS = 2.0  # 2, 4, 6, 8 s
# Uploads of a paid output are tried for as long as it takes (never Failed for S3):
UPLOAD_RETRY_INITIAL_SECONDS = 4.0  # doubling: 4, 8, ... 300 s
UPLOAD_RETRY_MAX_SECONDS = 300.0
UPLOAD_EVENT_EVERY = 10  # a Warning Event on the first failed upload, then every 10th


class OutputFinisher:
    """FINISH: download a succeeded job's output, upload it to the deterministic key and
    verify it. A paid output is never thrown away for an S3 failure: it is kept on disk
    (KeptOutputs) and the upload tried again."""

    def __init__(
        self,
        *,
        settings: Settings,
        providers: ProviderRegistry,
        clips: ClipStorage,
        threads: Threads,
        kept: KeptOutputs,
        scenes: Mapping[Key, Body],
        events: EventSink,
        clock: Clock,
        tmp_dir: str,
    ) -> None:
        self.settings = settings
        self.providers = providers
        self.clips = clips
        self.threads = threads
        self.kept = kept
        self.scenes = scenes  # the cache's Scenes: is a kept output's job still in flight
        self.events = events
        self.now = clock
        self.tmp_dir = tmp_dir

    async def finish(self, scene: ScenePass, o: sc.Observation) -> sc.ObjectSeen | sc.JobSeen:
        key, mem = scene.key, scene.mem
        status, desired, request = o.status, o.desired, scene.inputs.request
        g = status.generation
        assert g is not None and g.job_id is not None and desired is not None and request
        state = mem.job_state
        if state is None or state.status != JobStatus.SUCCEEDED:
            mem.job_state = None
            return sc.JobSeen("", sc.JobPhase.RUNNING)  # force a fresh poll
        s3_key = desired.key(status.take)
        path = Path(self.tmp_dir) / naming.download_file_name(key[0], key[1], g.job_id)
        self.kept.prune(lambda s, job_id: job_in_flight(self.scenes.get(s), job_id))
        kept = self.kept.entry(key, g.job_id, path)
        if not kept.size:  # nothing kept from an earlier try: download it
            failed = await self._download(scene, g.provider, g.job_id, path)
            if failed is not None:
                return failed
        metadata = {
            "spec-hash": desired.spec_hash,
            "take": str(status.take),
            "provider": g.provider,
            "job-id": g.job_id,
            "scene": f"{key[0]}/{key[1]}",
        }
        try:
            fact = await self.threads.run(
                self.clips.put_clip, desired.bucket, s3_key, path, metadata=metadata
            )
            m.S3_OPS.labels("put", "ok").inc()
        except Exception as e:
            # Never throw away a paid output: keep the file and try again, with backoff.
            m.S3_OPS.labels("put", "error").inc()
            url = f"s3://{desired.bucket}/{s3_key}"
            return await self._upload_failed(scene, g.job_id, url, e)
        self.kept.drop(key)
        since = parse_rfc3339(g.started_at)
        if since is not None:
            m.JOB_SECONDS.labels(g.provider).observe((self.now() - since).total_seconds())
        return sc.ObjectSeen(s3_key, sc.StoredObject(s3_key, fact.size, fact.etag, fact.sha256))

    async def _download(
        self, scene: ScenePass, provider_name: str, job_id: str, path: Path
    ) -> sc.JobSeen | None:
        """Fetch the output to `path`; a JobSeen FAILED once the tries are used up."""
        key, mem = scene.key, scene.mem
        request, state = scene.inputs.request, mem.job_state
        assert request is not None and state is not None
        try:
            started = time.perf_counter()
            rules = OutputRules.from_settings(self.settings)
            provider = self.providers.video(provider_name)
            mem.job_state = await output.fetch_clip(
                provider, job_id, state, request, path, rules, self.threads.run
            )
            elapsed = time.perf_counter() - started
            m.PROVIDER_SECONDS.labels(provider_name, "fetch").observe(elapsed)
        except ProviderError as e:
            self.kept.discard_file(key)
            mem.fetch_failures += 1
            at = rfc3339(self.now())
            err = output.failed_fetch(e, mem.fetch_failures, FETCH_ATTEMPTS, at)
            if err is not None:
                self.kept.drop(key)
                return sc.JobSeen(job_id, sc.JobPhase.FAILED, err)
            wait = FETCH_RETRY_STEP_SECONDS * mem.fetch_failures
            raise TransientError(f"output download failed: {e.message}", retry_after=wait) from e
        except BaseException:
            self.kept.discard_file(key)
            raise
        mem.fetch_failures = 0
        return None

    async def _upload_failed(
        self, scene: ScenePass, job_id: str, url: str, e: Exception
    ) -> sc.JobSeen:
        """The job succeeded and is paid for: its output is never dropped for an S3
        failure. The file is kept (if it fits) and the upload tried again with capped
        backoff; the Scene says so (UploadRetrying) and stays in flight."""
        key = scene.key
        kept = self.kept.entries[key]
        kept.failures += 1
        held = self.kept.keep(key)
        where = "kept on local disk" if held else "not kept (no room): downloaded again next time"
        msg = bound(f"upload to {url} failed: {e}", 1000)
        if kept.failures == 1 or kept.failures % UPLOAD_EVENT_EVERY == 0:
            note = f"{msg} (try {kept.failures}); output of job {job_id} {where}"
            await self.events.post(scene.body, v.Reason.UPLOAD_FAILED, note, "Warning")
        wait = min(
            UPLOAD_RETRY_INITIAL_SECONDS * 2 ** (kept.failures - 1), UPLOAD_RETRY_MAX_SECONDS
        )
        err = ErrorInfo(
            reason=v.Reason.UPLOAD_RETRYING,
            message=f"job {job_id} succeeded; {msg}; output {where}; trying again",
            retryable=True,
            at=rfc3339(self.now()),
        )
        return sc.JobSeen(job_id, sc.JobPhase.SUCCEEDED, err, retry_after=wait)


def job_in_flight(body: Body | None, job_id: str) -> bool:
    generation = ((body or {}).get("status") or {}).get("generation") or {}
    return isinstance(generation, dict) and generation.get("jobId") == job_id
