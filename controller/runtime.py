"""The operator at run time: caches, the work queue, and the reconcilers.

kopf delivers watch events (handlers.py); they update the Store and enqueue keys.
Workers take keys from the queue and run one reconcile pass each: observe, decide
(pure functions in controller/reconcile), act. Waiting is a delayed re-add.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from controller import metrics as m
from controller import vocabulary as v
from controller.api.common import ErrorInfo
from controller.api.project import PlanInfo, PlannedSceneRecord, ProjectSpec, ProjectStatus
from controller.api.scene import ScenePhase, SceneSpec, SceneStatus
from controller.assembly.reconciler import Assembler
from controller.desired import desired_for
from controller.kube import ApiError, KubeApi
from controller.providers.base import (
    JobLostError,
    JobState,
    JobStatus,
    PlanRequest,
    ProviderError,
    VideoRequest,
)
from controller.providers.registry import Providers
from controller.ratelimit import TokenBucket
from controller.reconcile import scene as sc
from controller.reconcile.hashing import spec_hash
from controller.reconcile.patching import merge_patch
from controller.reconcile.project import ProjectObservation, SceneView, project_status
from controller.reconcile.timeutil import parse_rfc3339, rfc3339, utcnow
from controller.settings import Settings
from controller.storage.clips import project_prefix
from controller.store import (
    Body,
    Key,
    Store,
    is_owned_by,
    key_of,
    project_of_scene,
    resource_version,
)
from controller.waiting import Waiters

log = logging.getLogger("scene_operator")

SCENE, PROJECT, DRIFT = "scene", "project", "drift"
MAX_STEPS = 12
PROJECT_RECOUNT_DELAY = 0.5  # coalesce bursts of scene events into one project recount


@dataclass
class SceneMemory:
    """What the operator remembers of a scene between passes (lost on restart, by design)."""

    polls: int = 0
    job_state: JobState | None = None
    verify_clip: bool = False  # drift polling asked for a HEAD of the recorded clip
    fetch_failures: int = 0
    unrecorded: SceneStatus | None = None  # a started job whose id write failed: retry it
    look_first: bool = False  # drift saw an object for this scene: HEAD it before deciding


@dataclass
class ProjectMemory:
    planning: bool = False
    planning_error: ErrorInfo | None = None
    plan_failures: int = 0
    drift_scheduled: bool = False


@dataclass
class Runtime:
    settings: Settings
    api: KubeApi
    clips: Any  # storage.clips.ClipStore
    providers: Providers
    store: Store = field(default_factory=Store)
    queue: Any = None
    scene_memory: dict[Key, SceneMemory] = field(default_factory=dict)
    project_memory: dict[Key, ProjectMemory] = field(default_factory=dict)
    reserved: dict[Key, tuple[str, Key]] = field(
        default_factory=dict
    )  # scene -> (provider, project)
    poll_limits: dict[str, TokenBucket] = field(default_factory=dict)
    create_limits: dict[str, TokenBucket] = field(default_factory=dict)
    pool: concurrent.futures.ThreadPoolExecutor | None = None
    waiters: Waiters = field(default_factory=Waiters)
    # Jobs found for a marker without a job id, until that Scene's next pass: never
    # handed to a second Scene searching at the same time.
    recovering: dict[str, Key] = field(default_factory=dict)
    # One LIST of Scenes per namespace before its first planning (see _plan).
    namespace_lists: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    assembly: Any = None  # the final videos (controller/assembly)

    def __post_init__(self) -> None:
        from controller.workqueue import WorkQueue

        self.queue = self.queue or WorkQueue()
        self.pool = self.pool or concurrent.futures.ThreadPoolExecutor(
            max_workers=self.settings.io_threads, thread_name_prefix="io"
        )
        self._tmp = tempfile.TemporaryDirectory(prefix="scene-operator-")
        self.assembly = Assembler(self, lambda k, d: self.queue.add_after((PROJECT, *k), d))

    # ------------------------------------------------------------------ event intake
    def on_scene_event(self, kind: str | None, body: Body) -> None:
        key = key_of(body)
        if kind == "DELETED":
            self.store.delete_scene(key)
            self.scene_memory.pop(key, None)
            self.waiters.discard(key)
        else:
            if _same_version(self.store.scenes.get(key), body):
                return  # the echo of our own write (cached from its response) or a re-list
            if not self.store.upsert_scene(body):
                return
        self._enqueue_scene(key)
        self._recount(project_of_scene(body))
        self._wake_waiters()

    def on_project_event(self, kind: str | None, body: Body) -> None:
        key = key_of(body)
        old = self.store.projects.get(key)
        if kind == "DELETED":
            self.store.delete_project(key)
            self.project_memory.pop(key, None)
        else:
            if _same_version(old, body):
                return  # the echo of our own write, or a re-list
            if not self.store.upsert_project(body):
                return
        self.queue.add((PROJECT, *key))
        # Scenes read only these from their Project; its status writes concern no Scene.
        if kind == "DELETED" or old is None or _what_scenes_read(old) != _what_scenes_read(body):
            for name in self.store.scene_names_of(key):
                self._enqueue_scene((key[0], name))

    def _enqueue_scene(self, key: Key, delay: float = 0.0) -> None:
        """Scenes with a paid job in flight go in the urgent lane: finishing work that is
        paid for never waits behind new or idle Scenes."""
        body = self.store.scenes.get(key)
        urgent = bool(body and (body.get("status") or {}).get("generation"))
        self.queue.add_after((SCENE, *key), delay, urgent=urgent)

    def _cache_scene(self, body: Body) -> None:
        """Cache a Scene we wrote or read; its watch echo will be skipped, so schedule the
        Project recount here."""
        if self.store.upsert_scene(body):
            self._recount(project_of_scene(body))

    def _recount(self, project: Key) -> None:
        """A Project recount after its Scenes changed: coalesced, and urgent, since it is
        what turns finished work into a Ready Project."""
        self.queue.add_after((PROJECT, *project), PROJECT_RECOUNT_DELAY, urgent=True)

    def _reserved(self) -> tuple[collections.Counter[str], collections.Counter[Key]]:
        by_provider: collections.Counter[str] = collections.Counter()
        by_project: collections.Counter[Key] = collections.Counter()
        for provider, project in self.reserved.values():
            by_provider[provider] += 1
            by_project[project] += 1
        return by_provider, by_project

    def _free_slots(self) -> tuple[Callable[[str], int], Callable[[Key], int]]:
        """Free job slots per provider and per Project, net of jobs in flight, marker
        writes under way, and Scenes woken for a slot but not yet reconciled."""
        res_p, res_q = self._reserved()
        s, store, w = self.settings, self.store, self.waiters

        def provider_free(p: str) -> int:
            inflight = store.inflight_by_provider[p] + res_p[p] + w.woken_by_provider[p]
            return s.concurrency(p) - inflight

        def project_free(q: Key) -> int:
            inflight = store.inflight_by_project[q] + res_q[q] + w.woken_by_project[q]
            return s.project_concurrency - inflight

        return provider_free, project_free

    def _wake_waiters(self) -> None:
        """Wake as many parked Scenes as there are free job slots, and every Scene that
        may have been held back by a budget that was given back."""
        self._wake_budget_waiters()
        freed, self.store.freed = self.store.freed, []
        for provider, count in self.store.inflight_by_provider.items():
            m.IN_FLIGHT.labels(provider).set(count)
        m.WAITING.set(len(self.waiters))
        if not len(self.waiters):
            return
        provider_free, project_free = self._free_slots()
        for key in self.waiters.pick(provider_free, project_free, freed):
            self.queue.add((SCENE, *key))

    def _wake_budget_waiters(self) -> None:
        """A budget-exhausted decision counts pending starts; when one is given back
        (refused by the provider, or its marker never written) nothing else would decide
        those Scenes again. Rare, so every Scene of the Project that is neither done nor
        in flight is queued: one still being decided is re-run after (the queue's dirty
        mark), so a decision racing the give-back is not lost."""
        if not self.store.budget_freed:
            return
        projects, self.store.budget_freed = set(self.store.budget_freed), []
        for project in projects:
            for name in self.store.scene_names_of(project):
                status = (self.store.scenes.get((project[0], name)) or {}).get("status") or {}
                if status.get("phase") != ScenePhase.COMPLETED and not status.get("generation"):
                    self.queue.add((SCENE, project[0], name))

    # ------------------------------------------------------------------ workers
    async def run(self) -> None:
        # asyncio.to_thread (used by the local renderer) shares the same bounded pool.
        asyncio.get_running_loop().set_default_executor(self.pool)
        workers = [asyncio.create_task(self._worker(i)) for i in range(self.settings.workers)]
        timer = asyncio.create_task(self.queue.run_timer())
        try:
            await asyncio.gather(timer, *workers)
        finally:
            self.queue.shutting_down = True
            for t in (timer, *workers):
                t.cancel()

    async def _worker(self, n: int) -> None:
        while True:
            item = await self.queue.get()
            kind, ns, name = item
            started = time.perf_counter()
            result = "ok"
            try:
                if kind == SCENE:
                    await self.reconcile_scene((ns, name))
                elif kind == PROJECT:
                    await self.reconcile_project((ns, name))
                else:
                    await self.check_drift((ns, name))
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a bug or an outage: log, back off, never crash the loop
                result = "error"
                log.exception(
                    "reconcile failed",
                    extra={"kind": kind, "namespace": ns, "object": name, "error": str(e)},
                )
                self.queue.add_after(item, 5.0 + random.random() * 5)
            finally:
                self.queue.done(item)
                self._wake_waiters()
                m.RECONCILES.labels(kind, result).inc()
                m.RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - started)
                m.QUEUE_DEPTH.set(len(self.queue))

    async def in_thread(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, lambda: fn(*args, **kwargs))

    def _limiter(self, table: dict[str, TokenBucket], provider: str, op: str) -> TokenBucket:
        if provider not in table:
            rate = getattr(self.settings, f"{op}_per_second_{provider}", 1000.0)
            table[provider] = TokenBucket(rate)
        return table[provider]

    async def event(self, body: Body, reason: str, message: str, type_: str = "Normal") -> None:
        m.EVENTS.labels(reason).inc()
        meta = body.get("metadata", {})
        log.log(
            logging.WARNING if type_ == "Warning" else logging.INFO,
            message,
            extra={
                "namespace": meta.get("namespace"),
                "object": meta.get("name"),
                "kind": body.get("kind"),
                "reason": reason,
            },
        )
        if (
            type_ == "Normal"
            and body.get("kind") == v.SCENE_KIND
            and self.settings.scene_events == "warnings"
        ):
            return
        try:
            await self.api.post_event(body, reason=reason, message=message, type_=type_)
        except Exception as e:  # Events are best effort
            log.warning("event not posted", extra={"reason": reason, "error": str(e)})

    # ================================================================== scenes
    def _scene_inputs(
        self, body: Body
    ) -> tuple[sc.Desired | None, VideoRequest | None, ErrorInfo | None, sc.Controls, Body | None]:
        ns, _ = key_of(body)
        project = self.store.projects.get(project_of_scene(body))
        try:
            spec = SceneSpec.model_validate(body.get("spec") or {})
        except ValidationError as e:
            return (
                None,
                None,
                ErrorInfo(reason=v.Reason.INVALID_SPEC, message=_short(e)),
                sc.Controls(),
                project,
            )
        if project is None or project.get("metadata", {}).get("deletionTimestamp"):
            msg = f"project {spec.project_ref.name!r} not found in namespace {ns}"
            return (
                None,
                None,
                ErrorInfo(reason=v.Reason.PROJECT_NOT_FOUND, message=msg),
                sc.Controls(),
                project,
            )
        try:
            pspec = ProjectSpec.model_validate(project.get("spec") or {})
        except ValidationError as e:
            return (
                None,
                None,
                ErrorInfo(reason=v.Reason.INVALID_SPEC, message=f"project: {_short(e)}"),
                sc.Controls(),
                project,
            )
        desired, request = desired_for(spec, pspec, ns, project["metadata"]["uid"], self.settings)
        annotations = project.get("metadata", {}).get("annotations") or {}
        pkey = key_of(project)
        cap = pspec.budget.max_generations
        budget_left = None
        if cap is not None:
            pending = sum(1 for p in self.reserved.values() if p[1] == pkey)
            budget_left = cap - self.store.started_by_project[pkey] - pending
        controls = sc.Controls(
            generate_videos=pspec.generate_videos,
            paused=pspec.paused,
            retry_limit=pspec.retry.limit,
            backoff=pspec.retry.backoff,
            missing_clip=pspec.repair.missing_clip,
            budget_left=budget_left,
            regenerate_token=annotations.get(v.ANNOTATION_REGENERATE),
            retry_token=annotations.get(v.ANNOTATION_RETRY),
        )
        return desired, request, None, controls, project

    def _capacity(self, provider: str, project: Key) -> str | None:
        """None if a job may start now, else which limit is reached (for the condition)."""
        provider_free, project_free = self._free_slots()  # a woken Scene's slot is kept for it
        if provider_free(provider) <= 0:
            limit = self.settings.concurrency(provider)
            return f"{provider} has {limit} jobs in flight (SCENE_OPERATOR_CONCURRENCY_{provider.upper()})"
        if project_free(project) <= 0:
            limit = self.settings.project_concurrency
            return f"the Project has {limit} jobs in flight (SCENE_OPERATOR_PROJECT_CONCURRENCY)"
        return None

    def _poll_delay(self, mem: SceneMemory) -> float:
        s = self.settings
        return min(
            s.poll_initial_seconds * s.poll_factor ** max(mem.polls - 1, 0), s.poll_max_seconds
        )

    async def reconcile_scene(self, key: Key) -> None:
        self.waiters.reconciled(key)  # release the slot held for it, if it was woken
        parked: list[tuple[str, Key]] = []
        try:
            await self._reconcile_scene(key, parked)
        finally:
            if parked:
                self.waiters.wait(key, *parked[-1])
            else:
                self.waiters.discard(key)
            for job_id in [j for j, owner in self.recovering.items() if owner == key]:
                del self.recovering[job_id]  # recorded in status now, or not taken

    async def _reconcile_scene(self, key: Key, parked: list[tuple[str, Key]]) -> None:
        mem = self.scene_memory.setdefault(key, SceneMemory())
        facts: dict[str, Any] = {}
        body = self.store.scenes.get(key)
        for _ in range(MAX_STEPS):
            body = self.store.scenes.get(key)
            if body is None:
                self.scene_memory.pop(key, None)
                return
            if mem.unrecorded is not None and not await self._record_job_id(body, mem):
                self._enqueue_scene(key, 2.0)
                return
            desired, request, blocked, controls, _ = self._scene_inputs(body)
            if mem.look_first and desired is not None and "expected" not in facts:
                # drift saw an object for this scene: look before any capacity wait
                facts["expected"] = await self._look(desired.bucket, desired.key(status_take(body)))
            mem.look_first = False
            try:
                status = SceneStatus.model_validate(body.get("status") or {})
            except ValidationError:
                status = SceneStatus()
            annotations = body.get("metadata", {}).get("annotations") or {}
            if (
                mem.verify_clip
                and status.clip
                and status.phase == ScenePhase.COMPLETED
                and "clip_check" not in facts
            ):
                facts["clip_check"] = await self._look(status.clip.bucket, status.clip.key)
            mem.verify_clip = False
            # No await between this check and a START: _start reserves the slot at once.
            full = desired and self._capacity(desired.provider, project_of_scene(body))
            obs = sc.Observation(
                now=utcnow(),
                generation=int(body["metadata"].get("generation", 1)),
                status=status,
                desired=desired,
                blocked=blocked,
                controls=controls,
                regenerate_token=annotations.get(v.ANNOTATION_REGENERATE),
                retry_token=annotations.get(v.ANNOTATION_RETRY),
                expected=facts.get("expected"),
                clip_check=facts.get("clip_check"),
                job=facts.get("job"),
                finished=facts.get("finished"),
                orphan=facts.get("orphan"),
                orphan_search_after=self.settings.orphan_search_after_seconds,
                capacity=desired is not None and not full,
                capacity_limit=full or "",
                poll_delay=self._poll_delay(mem),
                jitter=random.random(),
            )
            d = sc.decide(obs)
            m.DECISIONS.labels(d.rule).inc()
            parked[:] = (
                [(desired.provider, project_of_scene(body))]
                if d.rule == "waiting-capacity" and desired is not None
                else []
            )
            if d.rule in ("orphan-window", "orphan-recovered"):
                m.ORPHAN_WINDOW.labels(
                    "recovered" if d.rule == "orphan-recovered" else "again"
                ).inc()
            if d.rule.startswith(("clip-missing", "completed-without-clip", "adopt")):
                m.DRIFT_REPAIRS.labels(d.rule).inc()
            if d.effect == sc.Effect.NONE:
                if d.requeue_after is not None:
                    self._enqueue_scene(key, d.requeue_after)
                return
            if d.effect == sc.Effect.WRITE:
                if not await self._write_scene(body, d.status):
                    continue  # conflict: re-read and decide again
                await self._post_events(body, d.events)
                if d.rule == "clip-uploaded" and status.generation:
                    m.JOBS.labels(desired.provider if desired else "", "succeeded", "").inc()
                if d.requeue_after is not None:
                    self._enqueue_scene(key, d.requeue_after)
                if d.status.phase in (ScenePhase.COMPLETED, ScenePhase.FAILED):
                    mem.polls, mem.job_state, mem.fetch_failures = 0, None, 0
                continue
            assert desired is not None and request is not None
            if d.effect == sc.Effect.LOOK_EXPECTED:
                facts["expected"] = await self._look(desired.bucket, desired.key(status.take))
            elif d.effect == sc.Effect.POLL:
                facts["job"] = await self._poll(status, request, mem)
            elif d.effect == sc.Effect.FIND_JOB:
                facts["orphan"] = await self._find_orphan(key, status, request)
            elif d.effect == sc.Effect.START:
                await self._start(key, body, obs, d, request)
                return
            elif d.effect == sc.Effect.FINISH:
                seen = await self._finish(body, status, desired, request, mem)
                if seen is None:
                    return  # requeued inside
                if isinstance(seen, sc.JobSeen):
                    facts["job"] = seen
                else:
                    facts["finished"] = seen
        log.warning("scene reconcile did not settle", extra={"namespace": key[0], "object": key[1]})
        self._enqueue_scene(key, 1.0)

    async def _write_scene(
        self, body: Body, new: SceneStatus, *, precondition: bool = True
    ) -> bool:
        old = body.get("status") or {}
        patch = merge_patch(old, new.wire())
        if not patch:
            return True
        ns, name = key_of(body)
        rv = body["metadata"].get("resourceVersion") if precondition else None
        try:
            updated = await self.api.patch_status(
                v.SCENE_PLURAL, ns, name, patch, resource_version=rv
            )
        except ApiError as e:
            if e.conflict or e.not_found:
                fresh = await self.api.get(v.SCENE_PLURAL, ns, name)
                if fresh is None:
                    self.store.delete_scene((ns, name))
                else:
                    self._cache_scene(fresh)
                return False
            raise
        self._cache_scene(updated)
        return True

    async def _post_events(self, body: Body, events: tuple[sc.Event, ...]) -> None:
        for ev in events:
            await self.event(body, ev.reason, ev.message, ev.type)

    async def _look(self, bucket: str, key: str) -> sc.ObjectSeen:
        try:
            fact = await self.in_thread(self.clips.head, bucket, key)
            m.S3_OPS.labels("head", "ok").inc()
        except Exception:
            m.S3_OPS.labels("head", "error").inc()
            raise
        if fact is None:
            return sc.ObjectSeen(key, None)
        return sc.ObjectSeen(key, sc.StoredObject(key, fact.size, fact.etag, fact.sha256))

    async def _poll(
        self, status: SceneStatus, request: VideoRequest, mem: SceneMemory
    ) -> sc.JobSeen:
        g = status.generation
        assert g is not None and g.job_id is not None
        provider = self.providers.video(g.provider)
        await self._limiter(self.poll_limits, g.provider, "reads").acquire()
        mem.polls += 1
        started = time.perf_counter()
        try:
            state = await provider.poll(g.job_id, request)
        except JobLostError as e:
            m.JOBS.labels(g.provider, "lost", e.reason).inc()
            err = ErrorInfo(
                reason=v.Reason.JOB_LOST, message=e.message, retryable=True, at=rfc3339(utcnow())
            )
            return sc.JobSeen(g.job_id, sc.JobPhase.LOST, err)
        except ProviderError as e:
            if e.status_code == 429:
                self._limiter(self.poll_limits, g.provider, "reads").slow_down(e.retry_after)
            return sc.JobSeen(g.job_id, sc.JobPhase.UNREACHABLE, retry_after=e.retry_after)
        finally:
            m.PROVIDER_SECONDS.labels(g.provider, "poll").observe(time.perf_counter() - started)
        mem.job_state = state
        if state.status == JobStatus.RUNNING:
            return sc.JobSeen(g.job_id, sc.JobPhase.RUNNING)
        if state.status == JobStatus.SUCCEEDED:
            return sc.JobSeen(g.job_id, sc.JobPhase.SUCCEEDED)
        e = state.error
        m.JOBS.labels(g.provider, "failed", e.reason if e else "").inc()
        err = ErrorInfo(
            reason=e.reason if e else v.Reason.GENERATION_FAILED,
            message=e.message if e else "the job failed",
            retryable=e.retryable if e else False,
            at=rfc3339(utcnow()),
        )
        return sc.JobSeen(g.job_id, sc.JobPhase.FAILED, err)

    async def _start(
        self, key: Key, body: Body, obs: sc.Observation, d: sc.Decision, request: VideoRequest
    ) -> None:
        desired = obs.desired
        assert desired is not None and d.status.generation is not None
        project = project_of_scene(body)
        if key in self.reserved:
            m.DUPLICATE_GUARD.labels("reserved").inc()
            return
        try:
            provider = self.providers.video(desired.provider)
        except ProviderError as e:  # e.g. no credentials: nothing can be started or paid
            err = ErrorInfo(
                reason=e.reason, message=e.message, retryable=False, at=rfc3339(utcnow())
            )
            failed = sc.retry_or_fail(obs, obs.status, err, "provider-unavailable")
            await self._write_scene(body, failed.status)
            await self._post_events(body, failed.events)
            return
        # Reserve synchronously (no await since the capacity check), then write the
        # pending marker; only a successful marker write lets the provider call happen.
        self.reserved[key] = (desired.provider, project)
        marked = False
        try:
            marked = await self._write_scene(body, d.status)
            if not marked:
                m.DUPLICATE_GUARD.labels("stale-read").inc()
                self._enqueue_scene(key)
                return
        finally:
            self.reserved.pop(key, None)
            if not marked:  # the pending start counted against the budget: give it back
                self.store.budget_freed.append(project)
        marker_body = self.store.scenes.get(key, body)
        await self._limiter(self.create_limits, desired.provider, "creates").acquire()
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
                self._limiter(self.create_limits, desired.provider, "creates").slow_down(
                    e.retry_after
                )
            err = ErrorInfo(
                reason=e.reason, message=e.message, retryable=e.retryable, at=rfc3339(utcnow())
            )
            after = sc.after_start_error(obs, d.status, err, ambiguous=e.status_code is None)
            await self._write_scene(marker_body, after.status, precondition=False)
            await self._post_events(marker_body, after.events)
            self._enqueue_scene(
                key, after.requeue_after if after.requeue_after is not None else 1.0
            )
            return
        finally:
            m.PROVIDER_SECONDS.labels(desired.provider, "start").observe(
                time.perf_counter() - started
            )
        # Record the job id before anything else: after a crash the operator resumes it.
        # If the write fails (API server down), the id is kept in memory and written
        # before this scene is decided again, so the job is never mistaken for an orphan.
        mem = self.scene_memory.setdefault(key, SceneMemory())
        mem.unrecorded = sc.with_job_id(d.status, job_id)
        m.JOBS.labels(desired.provider, "started", "").inc()
        if not await self._record_job_id(marker_body, mem):
            self._enqueue_scene(key, 2.0)
            return
        await self.event(
            marker_body,
            v.Reason.GENERATION_STARTED,
            f"{desired.provider} job {job_id} started (model {desired.model}, attempt {d.status.attempts}, take {d.status.take})",
        )
        mem.polls, mem.job_state = 0, None
        self._enqueue_scene(key, self.settings.poll_initial_seconds)

    async def _find_orphan(
        self, key: Key, status: SceneStatus, request: VideoRequest
    ) -> sc.OrphanSearch:
        """Ask the provider for the job a pending marker started but never recorded."""
        g = status.generation
        assert g is not None
        try:
            provider = self.providers.video(g.provider)
        except ProviderError:
            return sc.OrphanSearch(None, searched=False)
        find = getattr(provider, "find_job", None)  # see base.JobFinder
        since = parse_rfc3339(g.started_at)
        if find is None or since is None:
            return sc.OrphanSearch(None, searched=False)
        # Jobs other Scenes own (recorded, or being recorded) are never taken.
        exclude = frozenset(self._recorded_job_ids(g.provider) | self.recovering.keys())
        await self._limiter(self.poll_limits, g.provider, "reads").acquire()
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

    def _recorded_job_ids(self, provider: str) -> set[str]:
        ids: set[str | None] = set()
        for body in self.store.scenes.values():
            status = body.get("status") or {}
            for record in (status.get("generation"), status.get("clip")):
                if isinstance(record, dict) and record.get("provider") == provider:
                    ids.add(record.get("jobId"))
        return {i for i in ids if i}

    async def _record_job_id(self, body: Body, mem: SceneMemory) -> bool:
        """Write a started job's id; False if the API server could not be reached."""
        wanted = mem.unrecorded
        assert wanted is not None and wanted.generation is not None
        current = (body.get("status") or {}).get("generation") or {}
        if current.get("startedAt") != wanted.generation.started_at or current.get("jobId"):
            mem.unrecorded = None  # already recorded, or superseded
            return True
        try:
            await self._write_scene(body, wanted, precondition=False)
        except Exception as e:
            log.warning(
                "job id not recorded yet; will retry",
                extra={"object": key_of(body)[1], "error": str(e)},
            )
            return False
        mem.unrecorded = None
        return True

    async def _finish(
        self,
        body: Body,
        status: SceneStatus,
        desired: sc.Desired,
        request: VideoRequest,
        mem: SceneMemory,
    ) -> sc.ObjectSeen | sc.JobSeen | None:
        g = status.generation
        assert g is not None and g.job_id is not None
        key = key_of(body)
        state = mem.job_state
        if state is None or state.status != JobStatus.SUCCEEDED:
            mem.job_state = None
            return sc.JobSeen("", sc.JobPhase.RUNNING)  # force a fresh poll
        provider = self.providers.video(g.provider)
        s3_key = desired.key(status.take)
        path = Path(self._tmp.name) / f"{key[0]}-{key[1]}-{g.job_id[-12:]}.mp4"
        try:
            started = time.perf_counter()
            await provider.fetch(g.job_id, state, request, path)
            m.PROVIDER_SECONDS.labels(g.provider, "fetch").observe(time.perf_counter() - started)
            metadata = {
                "spec-hash": desired.spec_hash,
                "take": str(status.take),
                "provider": g.provider,
                "job-id": g.job_id,
                "scene": f"{key[0]}/{key[1]}",
            }
            fact = await self.in_thread(
                self.clips.put_clip, desired.bucket, s3_key, path, metadata=metadata
            )
            m.S3_OPS.labels("put", "ok").inc()
        except ProviderError as e:
            mem.fetch_failures += 1
            if not e.retryable or mem.fetch_failures >= 5:
                err = ErrorInfo(
                    reason=e.reason,
                    message=f"output download failed: {e.message}",
                    retryable=True,
                    at=rfc3339(utcnow()),
                )
                return sc.JobSeen(g.job_id, sc.JobPhase.FAILED, err)
            self._enqueue_scene(key, 2.0 * mem.fetch_failures)
            return None
        except Exception as e:
            m.S3_OPS.labels("put", "error").inc()
            mem.fetch_failures += 1
            if getattr(e, "retryable", True) is False or mem.fetch_failures >= 8:
                msg = f"upload to s3://{desired.bucket}/{s3_key} failed: {e}"
                err = ErrorInfo(
                    reason=v.Reason.UPLOAD_FAILED,
                    message=msg[:1000],
                    retryable=False,
                    at=rfc3339(utcnow()),
                )
                await self.event(body, v.Reason.UPLOAD_FAILED, msg, "Warning")
                return sc.JobSeen(g.job_id, sc.JobPhase.FAILED, err)
            await self.event(
                body,
                v.Reason.UPLOAD_FAILED,
                f"upload to s3://{desired.bucket}/{s3_key} failed: {e}",
                "Warning",
            )
            self._enqueue_scene(key, min(2.0 * 2**mem.fetch_failures, 60.0))
            return None
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        mem.fetch_failures = 0
        with contextlib.suppress(Exception):
            started_at = g.started_at
            m.JOB_SECONDS.labels(g.provider).observe(
                (utcnow() - _parse(started_at)).total_seconds()
            )
        return sc.ObjectSeen(s3_key, sc.StoredObject(s3_key, fact.size, fact.etag, fact.sha256))

    # ================================================================== projects
    def _scene_views(self, project: Body) -> list[SceneView]:
        views = []
        for body in self.store.scenes_of(key_of(project)):
            status = body.get("status") or {}
            spec = body.get("spec") or {}
            phase = status.get("phase") or "Pending"
            try:
                phase = ScenePhase(phase)
            except ValueError:
                phase = ScenePhase.PENDING
            clip = status.get("clip") or {}
            provider = (
                (status.get("generation") or {}).get("provider") or clip.get("provider") or ""
            )
            duration = spec.get("durationSeconds") or 0
            if not duration:
                with contextlib.suppress(ValidationError):
                    duration = ProjectSpec.model_validate(
                        project.get("spec") or {}
                    ).duration_seconds()
            views.append(
                SceneView(
                    name=body["metadata"]["name"],
                    sequence=int(spec.get("sequence") or 0),
                    phase=phase
                    if not (phase == ScenePhase.COMPLETED and not clip)
                    else ScenePhase.PENDING,
                    owned=is_owned_by(body, project),
                    generations_started=int(status.get("generationsStarted") or 0),
                    clip_missing=phase == ScenePhase.COMPLETED and _reported_missing(status),
                    clip_seconds=duration if phase == ScenePhase.COMPLETED and clip else 0,
                    cost_per_second=self.settings.cost_per_second(provider) if provider else 0.0,
                    duration_seconds=duration,
                )
            )
        return views

    async def reconcile_project(self, key: Key) -> None:
        body = self.store.projects.get(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            await self.assembly.stop(key)  # no final video is uploaded after this
        if body is None:
            self.project_memory.pop(key, None)
            return
        mem = self.project_memory.setdefault(key, ProjectMemory())
        meta = body["metadata"]
        if meta.get("deletionTimestamp"):
            await self._finalize(body)
            return
        try:
            spec: ProjectSpec | None = ProjectSpec.model_validate(body.get("spec") or {})
            spec_error = None
        except ValidationError as e:
            spec, spec_error = None, _short(e)
        if spec is not None:
            await self._ensure_finalizer(body, spec)
            body = self.store.projects.get(key, body)
            status = _project_status(body)
            if not self.store.scene_names_of(key):
                await self._plan(body, spec, status, mem)
            elif status.plan is not None:
                await self._create_missing(body, status.plan)
            await self.assembly.reconcile(self.store.projects.get(key, body), spec)
        await self._write_project_status(body, spec, spec_error, mem)
        if spec is not None and not mem.drift_scheduled:
            mem.drift_scheduled = True
            interval = spec.repair.interval_seconds
            self.queue.add_after((DRIFT, *key), interval * (0.9 + 0.2 * random.random()))

    async def _write_project_status(
        self, body: Body, spec: ProjectSpec | None, spec_error: str | None, mem: ProjectMemory
    ) -> None:
        key = key_of(body)
        body = self.store.projects.get(key, body)
        old = _project_status(body)
        obs = ProjectObservation(
            now=utcnow(),
            generation=int(body["metadata"].get("generation", 1)),
            status=old,
            spec=spec,
            spec_error=spec_error,
            scenes=tuple(self._scene_views(body)),
            planning=mem.planning,
            planning_error=mem.planning_error,
            budget_used=self.store.started_by_project[key],
        )
        new = self.assembly.apply(body, spec, project_status(obs))
        patch = merge_patch(body.get("status") or {}, new.wire())
        if not patch:
            return
        try:
            updated = await self.api.patch_status(v.PROJECT_PLURAL, key[0], key[1], patch)
        except ApiError as e:
            if e.not_found:  # deleted meanwhile
                return
            raise
        self.store.upsert_project(updated)
        if spec is None and old.observed_generation != obs.generation:
            await self.event(body, v.Reason.INVALID_SPEC, spec_error or "invalid spec", "Warning")

    async def _plan(
        self, body: Body, spec: ProjectSpec, status: ProjectStatus, mem: ProjectMemory
    ) -> None:
        key = key_of(body)
        gen = int(body["metadata"].get("generation", 1))
        phash = plan_hash(spec)
        if status.plan is not None and status.plan.spec_hash == phash:
            await self._create_missing(body, status.plan)
            return
        # Right after start-up the watch may not have delivered every Scene yet: before
        # the first planning in a namespace, LIST its Scenes once, so Scenes the user
        # declared are never planned over. Later the watch-fed cache is trusted (a LIST
        # per Project was O(projects x scenes): 15 % of CPU at 10,000 Scenes).
        await self._list_namespace_once(key[0])
        if self.store.scene_names_of(key):
            return
        err = status.last_error
        failed_here = any(
            c.type == v.Cond.SCENES_PLANNED
            and c.reason == v.Reason.PLANNING_FAILED
            and c.observed_generation == gen
            for c in status.conditions
        )
        if failed_here and err is not None and not err.retryable:
            mem.planning_error = err
            return  # a permanent failure at this generation: wait for a spec change
        planner_name = str(spec.planner.provider or self.settings.default_planner)
        planner = self.providers.planner(planner_name)
        model = spec.planner.model or planner.default_model
        request = PlanRequest(
            prompt=spec.prompt,
            mode=str(spec.mode),
            count=spec.scene_count(),
            duration_seconds=spec.duration_seconds(),
            aspect_ratio=str(spec.scenes.aspect_ratio),
            style=spec.style,
            character_description=spec.character_description,
            product_description=spec.product_description,
            model=model,
        )
        mem.planning = True
        await self._write_project_status(body, spec, None, mem)
        started = time.perf_counter()
        try:
            planned = await planner.plan(request)
        except ProviderError as e:
            mem.planning = False
            mem.plan_failures += 1
            mem.planning_error = ErrorInfo(
                reason=e.reason, message=e.message, retryable=e.retryable, at=rfc3339(utcnow())
            )
            await self.event(
                body,
                v.Reason.PLANNING_FAILED,
                f"{planner_name}: {e.reason}: {e.message}",
                "Warning",
            )
            if e.retryable:
                delay = min(5.0 * 2 ** (mem.plan_failures - 1), 300.0) * (
                    0.75 + random.random() / 2
                )
                self.queue.add_after((PROJECT, *key), max(delay, e.retry_after or 0))
            return
        finally:
            m.PROVIDER_SECONDS.labels(planner_name, "plan").observe(time.perf_counter() - started)
        mem.planning = False
        mem.planning_error = None
        mem.plan_failures = 0
        plan = PlanInfo(
            provider=planner_name,
            model=model,
            planned_at=rfc3339(utcnow()),
            spec_hash=phash,
            scenes=[
                PlannedSceneRecord(
                    prompt=p.prompt[:5000], negative_prompt=p.negative_prompt[:1000] or None
                )
                for p in planned[: request.count]
            ],
        )
        # The plan is recorded before any Scene exists, so a restart finishes it exactly.
        updated = await self.api.patch_status(
            v.PROJECT_PLURAL, key[0], key[1], {"plan": plan.wire(), "lastError": None}
        )
        self.store.upsert_project(updated)
        await self._create_missing(updated, plan)
        await self.event(
            updated,
            v.Reason.SCENES_PLANNED,
            f"{len(plan.scenes)} scenes planned by {planner_name} ({model})",
        )

    async def _list_namespace_once(self, namespace: str) -> None:
        """One LIST of a namespace's Scenes into the cache, shared by concurrent callers."""
        listing = self.namespace_lists.get(namespace)
        if listing is None:
            listing = asyncio.ensure_future(self._list_namespace(namespace))
            self.namespace_lists[namespace] = listing
        await asyncio.shield(listing)

    async def _list_namespace(self, namespace: str) -> None:
        try:
            scenes = await self.api.list(v.SCENE_PLURAL, namespace)
        except BaseException:
            self.namespace_lists.pop(namespace, None)  # the next planning lists again
            raise
        for scene in scenes:
            self.on_scene_event(None, scene)

    async def _create_missing(self, project: Body, plan: PlanInfo) -> None:
        key = key_of(project)
        meta = project["metadata"]
        existing = set(self.store.scene_names_of(key))
        try:
            pspec = ProjectSpec.model_validate(project.get("spec") or {})
        except ValidationError:
            return
        for i, planned in enumerate(plan.scenes, start=1):
            name = scene_name(key[1], i)
            if name in existing:
                continue
            scene = {
                "apiVersion": v.API_VERSION,
                "kind": v.SCENE_KIND,
                "metadata": {
                    "name": name,
                    "namespace": key[0],
                    "labels": {v.LABEL_PROJECT: key[1], v.LABEL_MANAGED_BY: v.MANAGER},
                    "ownerReferences": [
                        {
                            "apiVersion": v.API_VERSION,
                            "kind": v.PROJECT_KIND,
                            "name": key[1],
                            "uid": meta["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": SceneSpec(
                    project_ref={"name": key[1]},  # type: ignore[arg-type]
                    sequence=i,
                    prompt=planned.prompt,
                    negative_prompt=planned.negative_prompt,
                    duration_seconds=pspec.duration_seconds(),
                    aspect_ratio=pspec.scenes.aspect_ratio,
                ).wire(),
            }
            try:
                created = await self.api.create(v.SCENE_PLURAL, key[0], scene)
            except ApiError as e:
                if e.conflict:
                    continue  # created before a restart: deterministic names make this safe
                raise
            self.on_scene_event(None, created)

    async def _ensure_finalizer(self, body: Body, spec: ProjectSpec) -> None:
        finalizers = list(body["metadata"].get("finalizers") or [])
        want = spec.deletion_policy == "Delete"
        has = v.FINALIZER_CLIPS in finalizers
        if want == has:
            return
        new = (
            [*finalizers, v.FINALIZER_CLIPS]
            if want
            else [f for f in finalizers if f != v.FINALIZER_CLIPS]
        )
        ns, name = key_of(body)
        updated = await self.api.patch_metadata(
            v.PROJECT_PLURAL,
            ns,
            name,
            {"finalizers": new, "resourceVersion": body["metadata"]["resourceVersion"]},
        )
        self.store.upsert_project(updated)

    async def _finalize(self, body: Body) -> None:
        finalizers = list(body["metadata"].get("finalizers") or [])
        if v.FINALIZER_CLIPS not in finalizers:
            return
        ns, name = key_of(body)
        try:
            spec = ProjectSpec.model_validate(body.get("spec") or {})
            bucket = spec.storage.bucket or self.settings.bucket
            prefix = (
                spec.storage.prefix if spec.storage.prefix is not None else self.settings.s3_prefix
            )
        except ValidationError:
            bucket, prefix = self.settings.bucket, self.settings.s3_prefix
        folder = project_prefix(prefix, ns, body["metadata"]["uid"])
        deleted = await self.in_thread(self.clips.delete_prefix, bucket, folder)
        m.S3_OPS.labels("delete", "ok").inc()
        await self.event(
            body, v.Reason.CLIPS_DELETED, f"deleted {deleted} objects under s3://{bucket}/{folder}"
        )
        updated = await self.api.patch_metadata(
            v.PROJECT_PLURAL,
            ns,
            name,
            {
                "finalizers": [f for f in finalizers if f != v.FINALIZER_CLIPS],
                "resourceVersion": body["metadata"]["resourceVersion"],
            },
        )
        self.store.upsert_project(updated)

    # ================================================================== drift
    async def check_drift(self, key: Key) -> None:
        """One LIST of the project's prefix, compared with its Scenes: no HEAD per scene,
        no API write unless something disagrees."""
        mem = self.project_memory.setdefault(key, ProjectMemory())
        mem.drift_scheduled = False
        project = self.store.projects.get(key)
        if project is None:
            return
        try:
            spec = ProjectSpec.model_validate(project.get("spec") or {})
        except ValidationError:
            return
        scenes = self.store.scenes_of(key)
        mem.drift_scheduled = True
        self.queue.add_after(
            (DRIFT, *key), spec.repair.interval_seconds * (0.9 + 0.2 * random.random())
        )
        tracked = [
            s for s in scenes if (s.get("status") or {}).get("phase") == ScenePhase.COMPLETED
        ]
        if not tracked and not spec.generate_videos:
            return
        bucket = spec.storage.bucket or self.settings.bucket
        prefix = spec.storage.prefix if spec.storage.prefix is not None else self.settings.s3_prefix
        folder = project_prefix(prefix, key[0], project["metadata"]["uid"])
        try:
            listing = await self.in_thread(self.clips.list_prefix, bucket, folder)
        except Exception as e:
            m.S3_OPS.labels("list", "error").inc()
            log.warning(
                "drift check could not list S3",
                extra={"namespace": key[0], "object": key[1], "error": str(e)},
            )
            return
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
                    or _reported_missing(status)  # is the ignored missing clip back?
                ):
                    self.scene_memory.setdefault(skey, SceneMemory()).verify_clip = True
                    self._enqueue_scene(skey)
            elif not status.get("generation") and spec.generate_videos:
                # an object for this scene exists but status never said so: adopt it
                seq = (scene.get("spec") or {}).get("sequence")
                if isinstance(seq, int) and any(
                    k.startswith(f"{folder}scenes/{seq:03d}/") for k in listing
                ):
                    self.scene_memory.setdefault(skey, SceneMemory()).look_first = True
                    self._enqueue_scene(skey)
        await self.assembly.drift(project, spec, listing)


PLAN_FIELDS = {
    "prompt",
    "mode",
    "character_description",
    "product_description",
    "style",
    "scenes",
    "planner",
}


def plan_hash(spec: ProjectSpec) -> str:
    """Hash of the inputs of planning only (toggling generateVideos does not re-plan)."""
    return spec_hash(spec.model_dump(mode="json", include=PLAN_FIELDS))


def scene_name(project: str, sequence: int) -> str:
    return f"{project}-scene-{sequence:03d}"


def _project_status(body: Body) -> ProjectStatus:
    try:
        return ProjectStatus.model_validate(body.get("status") or {})
    except ValidationError:
        return ProjectStatus()


def _reported_missing(status: dict[str, Any]) -> bool:
    return (status.get("lastError") or {}).get("reason") == v.Reason.CLIP_MISSING


def _same_version(cached: Body | None, body: Body) -> bool:
    rv = resource_version(body)
    return cached is not None and rv != 0 and rv == resource_version(cached)


def _what_scenes_read(project: Body) -> tuple[Any, ...]:
    """What a Scene's decision reads from its Project: identity, spec (its generation
    moves with every spec change), deletion and the tokens."""
    meta = project.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return (
        meta.get("uid"),
        meta.get("generation"),
        meta.get("deletionTimestamp"),
        annotations.get(v.ANNOTATION_REGENERATE),
        annotations.get(v.ANNOTATION_RETRY),
    )


def status_take(body: Body) -> int:
    take = (body.get("status") or {}).get("take") or 0
    return take if isinstance(take, int) else 0


def _short(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def _parse(s: str) -> Any:
    from controller.reconcile.timeutil import parse_rfc3339

    return parse_rfc3339(s)
