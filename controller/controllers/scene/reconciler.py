"""The Scene pass: what a Scene's decision reads (its spec, its Project, capacity and
budget), and one run of the effect loop (controller/decide/effects.py) with the real
actuator (controller/controllers/scene/actuator.py)."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable

from pydantic import ValidationError

from controller.api import vocabulary as v
from controller.api.common import ErrorInfo
from controller.api.scene import SceneSpec
from controller.controllers.capacity import Capacity
from controller.controllers.events import Recorder
from controller.controllers.ports import ClipStorage, KubeClient, ProviderRegistry, Threads
from controller.controllers.scene import cancel, duplicates
from controller.controllers.scene.actuator import Actuator, SceneInputs
from controller.controllers.scene.kept import KeptOutputs
from controller.controllers.scene.ratelimit import TokenBucket
from controller.decide import scene as sc
from controller.decide import tenancy
from controller.decide.desired import desired_for
from controller.decide.effects import Facts, run_pass
from controller.decide.timeutil import utcnow
from controller.informer.cache import Body, Key, Store, key_of, project_of_scene
from controller.informer.intake import Intake
from controller.queue.state import Memory, Result
from controller.settings import Settings


class Scenes:
    """Long-lived parts of Scene passes: the edges, rate limiters, and the jobs found for
    markers without a job id (never handed to a second Scene searching at the same
    time)."""

    def __init__(
        self,
        *,
        settings: Settings,
        api: KubeClient,
        clips: ClipStorage,
        providers: ProviderRegistry,
        threads: Threads,
        store: Store,
        intake: Intake,
        capacity: Capacity,
        memory: Memory,
        recorder: Recorder,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.api = api
        self.clips = clips
        self.providers = providers
        self.threads = threads
        self.store = store
        self.intake = intake
        self.capacity = capacity
        self.memory = memory
        self.recorder = recorder
        self.now = clock  # the decisions' `now` (a test passes a fake clock)
        self.monotonic = intake.queue.clock  # this process's own timings (the queue's)
        self.poll_limits: dict[str, TokenBucket] = {}
        self.create_limits: dict[str, TokenBucket] = {}
        self.recovering: dict[str, Key] = {}  # job id -> the Scene that found it
        self.waiting_since: dict[Key, dt.datetime] = {}  # parked for a slot since
        self._tmp = tempfile.TemporaryDirectory(prefix="scene-operator-")
        self.tmp_dir = self._tmp.name
        self.kept = KeptOutputs(self.tmp_dir, settings.kept_outputs_max_bytes)

    async def check_bucket(self, bucket: str) -> sc.BucketSeen:
        """HeadBucket before a job is paid for: shared and cached (controller/storage/buckets.py)."""
        return await self.memory.buckets.check(
            bucket, lambda b: self.threads.run(self.clips.bucket_problem, b)
        )

    def limiter(self, op: str, provider: str) -> TokenBucket:
        """One token bucket per provider for polls (`reads`) and for creates (`creates`)."""
        table = self.poll_limits if op == "reads" else self.create_limits
        if provider not in table:
            rate = getattr(self.settings, f"{op}_per_second_{provider}", 1000.0)
            table[provider] = TokenBucket(rate)
        return table[provider]

    async def reconcile(self, key: Key) -> Result:
        actuator = Actuator(self, key)
        try:
            result = await run_pass(actuator, Facts())
        finally:
            # A woken Scene's slot was held for it through the pass (so Scenes looking
            # meanwhile do not take it, HEAD S3 and park again): its start reserved it,
            # or it is given up now and the next wake offers it to another.
            self.capacity.reconciled(key)
            if actuator.parked is not None:
                if key not in self.capacity.waiters:  # its Project counts the waiting
                    self.intake.recount(actuator.parked[1])
                self.capacity.park(key, *actuator.parked)
            else:
                self.capacity.unpark(key)
                self.waiting_since.pop(key, None)
            for job_id in [j for j, owner in self.recovering.items() if owner == key]:
                del self.recovering[job_id]  # recorded in status now, or not taken
        if actuator.gone:
            self.memory.scenes.pop(key, None)
            self.kept.drop(key)
        later = await duplicates.look(self, key, cancel.cancel_job)
        self.memory.settle_scene(key)
        await cancel.deleted(self, key)
        requeue = result.requeue_after
        if later is not None:
            requeue = later if requeue is None else min(requeue, later)
        return Result(requeue, urgent=self.intake.scene_is_urgent(key))

    def inputs(self, body: Body) -> SceneInputs:
        ns, _ = key_of(body)
        project = self.store.projects.get(project_of_scene(body))

        def blocked(reason: str, message: str) -> SceneInputs:
            err = ErrorInfo(reason=reason, message=message)
            return SceneInputs(None, None, err, sc.Controls(), project)

        try:
            spec = SceneSpec.model_validate(body.get("spec") or {})
        except ValidationError as e:
            return blocked(v.Reason.INVALID_SPEC, short(e))
        if project is None or project.get("metadata", {}).get("deletionTimestamp"):
            msg = f"project {spec.project_ref.name!r} not found in namespace {ns}"
            return blocked(v.Reason.PROJECT_NOT_FOUND, msg)
        # The operator's limits stop new jobs; a paid job in flight is still finished.
        limits = not (body.get("status") or {}).get("generation")
        pspec, problem = self.memory.specs.of(project, self.settings, limits)
        if pspec is None:
            return blocked(v.Reason.INVALID_SPEC, f"project: {problem}")
        desired, request = desired_for(spec, pspec, ns, project["metadata"]["uid"], self.settings)
        problem = tenancy.scene_problem(desired, self.settings) if limits else None
        if problem:
            return blocked(v.Reason.INVALID_SPEC, problem)
        annotations = project.get("metadata", {}).get("annotations") or {}
        controls = sc.Controls(
            generate_videos=pspec.generate_videos,
            paused=pspec.paused,
            retry_limit=pspec.retry.limit,
            backoff=pspec.retry.backoff,
            missing_clip=pspec.repair.missing_clip,
            budget_left=self.capacity.budget_left(key_of(project), pspec.budget.max_generations),
            regenerate_token=annotations.get(v.ANNOTATION_REGENERATE),
            retry_token=annotations.get(v.ANNOTATION_RETRY),
        )
        return SceneInputs(desired, request, None, controls, project)


def short(e: ValidationError) -> str:
    return tenancy.short_error(e)
