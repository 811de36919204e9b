"""Provider jobs of a Scene pass: start (pending marker, create, job id), the search
for a job whose id was never recorded, and finishing (download, upload, verify).

Never pay twice: the marker (attempt counted, resourceVersion precondition) is written
before the provider is called, and the job id the moment the provider returns it.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from controller import webhooks
from controller.api import naming
from controller.api import vocabulary as v
from controller.api.common import ErrorInfo
from controller.api.text import bound
from controller.decide import scene as sc
from controller.decide.timeutil import parse_rfc3339, rfc3339
from controller.informer.cache import Body, key_of, project_of_scene
from controller.media import output
from controller.media.probe import OutputRules
from controller.observability import metrics as m
from controller.providers.base import JobStatus, ProviderError
from controller.queue.state import TransientError

if TYPE_CHECKING:
    from controller.controllers.scene.actuator import Actuator

log = logging.getLogger("scene_operator")

START_ERROR_RECHECK_SECONDS = 1.0
# Downloads of a succeeded job's output before the attempt fails.
FETCH_ATTEMPTS = 5
FETCH_RETRY_STEP_SECONDS = 2.0  # 2, 4, 6, 8 s
# Uploads of a paid output are tried for as long as it takes (never Failed for S3):
UPLOAD_RETRY_INITIAL_SECONDS = 4.0  # doubling: 4, 8, ... 300 s
UPLOAD_RETRY_MAX_SECONDS = 300.0
UPLOAD_EVENT_EVERY = 10  # a Warning Event on the first failed upload, then every 10th


class JobIdNotRecorded(TransientError):
    """A started job's id could not be written yet (API server unreachable); it is kept in
    memory and written before the Scene is decided again."""


async def start(a: Actuator, o: sc.Observation, d: sc.Decision) -> float | None:
    s, key, body = a.scenes, a.key, a.body
    desired, request = o.desired, a.inputs.request
    assert desired is not None and request is not None and d.status.generation is not None
    project = project_of_scene(body)
    if key in s.capacity.reserved:
        m.DUPLICATE_GUARD.labels("reserved").inc()
        return None
    try:
        provider = s.providers.video(desired.provider)
    except ProviderError as e:  # e.g. no credentials: nothing can be started or paid
        err = ErrorInfo(reason=e.reason, message=e.message, retryable=False, at=rfc3339(s.now()))
        failed = sc.retry_or_fail(o, o.status, err, sc.Rule.PROVIDER_UNAVAILABLE)
        await a.write_status(body, failed.status)
        await s.recorder.post_all(body, failed.events)
        return None
    # Reserve synchronously (no await since the capacity check), then write the
    # pending marker; only a successful marker write lets the provider call happen.
    s.capacity.reserve(key, desired.provider, project)
    marked = False
    try:
        marked = await a.write_status(body, d.status)
        if not marked:
            m.DUPLICATE_GUARD.labels("stale-read").inc()
            return 0.0
    finally:
        s.capacity.release(key, started=marked)
    marker_body = s.store.scenes.get(key, body)
    await s.recorder.post_all(marker_body, d.events)
    limiter = s.limiter("creates", desired.provider)
    await limiter.acquire()
    started = time.perf_counter()
    try:
        try:
            job_id = await provider.start(request)
        except (ValueError, TypeError) as e:  # refused by the SDK before any request
            raise ProviderError(
                "InvalidRequest", str(e)[:1000], retryable=False, status_code=400
            ) from e
    except ProviderError as e:
        m.JOBS.labels(desired.provider, "start-error", e.reason).inc()
        if e.status_code == 429:
            limiter.slow_down(e.retry_after)
        err = ErrorInfo(
            reason=e.reason, message=e.message, retryable=e.retryable, at=rfc3339(s.now())
        )
        after = sc.after_start_error(o, d.status, err, ambiguous=e.status_code is None)
        await a.write_status(marker_body, after.status, precondition=False)
        await s.recorder.post_all(marker_body, after.events)
        return (
            after.requeue_after if after.requeue_after is not None else START_ERROR_RECHECK_SECONDS
        )
    finally:
        m.PROVIDER_SECONDS.labels(desired.provider, "start").observe(time.perf_counter() - started)
    # Record the job id before anything else: after a crash the operator resumes it.
    # If the write fails (API server down), the id is kept in memory and written
    # before this scene is decided again, so the job is never mistaken for an orphan.
    a.mem.unrecorded = sc.with_job_id(d.status, job_id)
    m.JOBS.labels(desired.provider, "started", "").inc()
    if not await record_job_id(a, marker_body):
        raise JobIdNotRecorded(f"job {job_id} started; its id is not recorded yet")
    g = d.status
    await s.recorder.post(
        marker_body,
        v.Reason.GENERATION_STARTED,
        f"{desired.provider} job {job_id} started (model {desired.model}, attempt {g.attempts}, take {g.take})",
    )
    a.mem.polls, a.mem.job_state = 0, None
    recorded = sc.with_job_id(d.status, job_id).generation
    return webhooks.poll_delay(s.settings, recorded, s.settings.poll_initial_seconds)


async def record_job_id(a: Actuator, body: Body) -> bool:
    """Write a started job's id; False if the API server could not be reached."""
    wanted = a.mem.unrecorded
    assert wanted is not None and wanted.generation is not None
    current = (body.get("status") or {}).get("generation") or {}
    if current.get("startedAt") != wanted.generation.started_at or current.get("jobId"):
        a.mem.unrecorded = None  # already recorded, or superseded
        return True
    try:
        await a.write_status(body, wanted, precondition=False)
    except Exception as e:
        log.warning(
            "job id not recorded yet; will retry",
            extra={"object": key_of(body)[1], "error": str(e)},
        )
        return False
    a.mem.unrecorded = None
    return True


async def find_job(a: Actuator, o: sc.Observation) -> sc.OrphanSearch:
    """Ask the provider for the job a pending marker started but never recorded."""
    s, key = a.scenes, a.key
    g, request = o.status.generation, a.inputs.request
    assert g is not None and request is not None
    try:
        provider = s.providers.video(g.provider)
    except ProviderError:
        return sc.OrphanSearch(None, searched=False)
    find = getattr(provider, "find_job", None)  # see base.JobFinder
    since = parse_rfc3339(g.started_at)
    if find is None or since is None:
        return sc.OrphanSearch(None, searched=False)
    # startedAt is another node's wall clock, created_at the provider's: allow for skew.
    since -= timedelta(seconds=s.settings.clock_skew_seconds)
    # Jobs other Scenes own (recorded, or being recorded) are never taken.
    exclude = frozenset(recorded_job_ids(a, g.provider) | s.recovering.keys())
    await s.limiter("reads", g.provider).acquire()
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
        s.recovering[job_id] = key
    return sc.OrphanSearch(job_id)


def recorded_job_ids(a: Actuator, provider: str) -> set[str]:
    ids: set[str | None] = set()
    for body in a.scenes.store.scenes.values():
        status = body.get("status") or {}
        for record in (status.get("generation"), status.get("clip")):
            if isinstance(record, dict) and record.get("provider") == provider:
                ids.add(record.get("jobId"))
    return {i for i in ids if i}


async def finish(a: Actuator, o: sc.Observation) -> sc.ObjectSeen | sc.JobSeen:
    s, key, mem = a.scenes, a.key, a.mem
    status, desired, request = o.status, o.desired, a.inputs.request
    g = status.generation
    assert g is not None and g.job_id is not None and desired is not None and request
    state = mem.job_state
    if state is None or state.status != JobStatus.SUCCEEDED:
        mem.job_state = None
        return sc.JobSeen("", sc.JobPhase.RUNNING)  # force a fresh poll
    s3_key = desired.key(status.take)
    path = Path(s.tmp_dir) / naming.download_file_name(key[0], key[1], g.job_id)
    s.kept.prune(lambda scene, job_id: job_in_flight(s.store.scenes.get(scene), job_id))
    kept = s.kept.entry(key, g.job_id, path)
    if not kept.size:  # nothing kept from an earlier try: download it
        try:
            started = time.perf_counter()
            rules = OutputRules.from_settings(s.settings)
            provider = s.providers.video(g.provider)
            mem.job_state = await output.fetch_clip(
                provider, g.job_id, state, request, path, rules, s.threads.run
            )
            m.PROVIDER_SECONDS.labels(g.provider, "fetch").observe(time.perf_counter() - started)
        except ProviderError as e:
            s.kept.discard_file(key)
            mem.fetch_failures += 1
            err = output.failed_fetch(e, mem.fetch_failures, FETCH_ATTEMPTS, rfc3339(s.now()))
            if err is not None:
                s.kept.drop(key)
                return sc.JobSeen(g.job_id, sc.JobPhase.FAILED, err)
            wait = FETCH_RETRY_STEP_SECONDS * mem.fetch_failures
            raise TransientError(f"output download failed: {e.message}", retry_after=wait) from e
        except BaseException:
            s.kept.discard_file(key)
            raise
        mem.fetch_failures = 0
    metadata = {
        "spec-hash": desired.spec_hash,
        "take": str(status.take),
        "provider": g.provider,
        "job-id": g.job_id,
        "scene": f"{key[0]}/{key[1]}",
    }
    try:
        fact = await s.threads.run(
            s.clips.put_clip, desired.bucket, s3_key, path, metadata=metadata
        )
        m.S3_OPS.labels("put", "ok").inc()
    except Exception as e:
        # Never throw away a paid output: keep the file and try again, with backoff.
        m.S3_OPS.labels("put", "error").inc()
        return await _upload_failed(a, g.job_id, f"s3://{desired.bucket}/{s3_key}", e)
    s.kept.drop(key)
    since = parse_rfc3339(g.started_at)
    if since is not None:
        m.JOB_SECONDS.labels(g.provider).observe((s.now() - since).total_seconds())
    return sc.ObjectSeen(s3_key, sc.StoredObject(s3_key, fact.size, fact.etag, fact.sha256))


async def _upload_failed(a: Actuator, job_id: str, url: str, e: Exception) -> sc.JobSeen:
    """The job succeeded and is paid for: its output is never dropped for an S3 failure.
    The file is kept (if it fits) and the upload tried again with capped backoff; the
    Scene says so (UploadRetrying) and stays in flight."""
    s, key = a.scenes, a.key
    kept = s.kept.entries[key]
    kept.failures += 1
    held = s.kept.keep(key)
    where = "kept on local disk" if held else "not kept (no room): downloaded again next time"
    msg = bound(f"upload to {url} failed: {e}", 1000)
    if kept.failures == 1 or kept.failures % UPLOAD_EVENT_EVERY == 0:
        note = f"{msg} (try {kept.failures}); output of job {job_id} {where}"
        await s.recorder.post(a.body, v.Reason.UPLOAD_FAILED, note, "Warning")
    wait = min(UPLOAD_RETRY_INITIAL_SECONDS * 2 ** (kept.failures - 1), UPLOAD_RETRY_MAX_SECONDS)
    err = ErrorInfo(
        reason=v.Reason.UPLOAD_RETRYING,
        message=f"job {job_id} succeeded; {msg}; output {where}; trying again",
        retryable=True,
        at=rfc3339(s.now()),
    )
    return sc.JobSeen(job_id, sc.JobPhase.SUCCEEDED, err, retry_after=wait)


def job_in_flight(body: Body | None, job_id: str) -> bool:
    generation = ((body or {}).get("status") or {}).get("generation") or {}
    return isinstance(generation, dict) and generation.get("jobId") == job_id
