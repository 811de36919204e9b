"""The operator at run time: the cache, the work queue, and the reconcilers.

kopf delivers watch events (controller/informer/handlers.py) to `Runtime.on_*_event`: the intake
updates the cache and queues keys. Workers take keys from the queue and run one pass
each: observe, decide (pure functions in controller/decide), act through an
actuator. Waiting is a delayed re-add. See docs/architecture.md for the picture.

Parts, by responsibility:
- worker.py     the generic worker loop (the only place that requeues)
- intake.py     watch events into the cache; which keys they make due
- capacity.py   job slots, reservations, parked Scenes, budget left, wake-ups
- scenes.py     the Scene pass; actuator.py and jobs.py its effects
- projects.py   Project status and finalizer; planning.py plans and creates Scenes
- drift.py      the periodic S3 listing per Project
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import tempfile
from collections.abc import Callable

from controller.api import vocabulary as v
from controller.assembly.reconciler import Assembler
from controller.controllers.buckets import BucketCheck
from controller.controllers.capacity import Capacity
from controller.controllers.drift.reconciler import Drift
from controller.controllers.events import Recorder
from controller.controllers.ports import ClipStorage, KubeClient, ProviderRegistry, Threads
from controller.controllers.project.planning import plan_hash, scene_name
from controller.controllers.project.reconciler import Projects
from controller.controllers.scene.actuator import SceneEffects
from controller.controllers.scene.cancel import Canceler, abandoned
from controller.controllers.scene.clip_look import ClipLooks
from controller.controllers.scene.finish import OutputFinisher
from controller.controllers.scene.inputs import InputReader, ProjectRecheck
from controller.controllers.scene.kept import KeptOutputs
from controller.controllers.scene.orphan_search import JobSearch
from controller.controllers.scene.provider_jobs import JobPoller, JobStarter
from controller.controllers.scene.ratelimit import Limiters
from controller.controllers.scene.reconciler import Scenes
from controller.controllers.scene.status_writer import StatusWriter
from controller.controllers.scene.working_clip import WorkingClips
from controller.controllers.uploads import GatedClips
from controller.decide.timeutil import utcnow
from controller.informer.cache import Body, Store, key_of
from controller.informer.intake import Intake
from controller.informer.resync import Resync
from controller.queue.liveness import Progress, stall
from controller.queue.state import Kind, Memory
from controller.queue.worker import Worker
from controller.queue.workqueue import WorkQueue
from controller.settings import Settings

__all__ = ["Runtime", "plan_hash", "scene_name"]


class Runtime:
    """Wires the parts together; the edges (API, clip store, providers) are passed in."""

    def __init__(
        self,
        *,
        settings: Settings,
        api: KubeClient,
        clips: ClipStorage,
        providers: ProviderRegistry,
        queue: WorkQueue | None = None,
        pool: concurrent.futures.ThreadPoolExecutor | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.api = api
        self.store = Store()
        self.queue = queue if queue is not None else WorkQueue()
        self.pool = (
            pool
            if pool is not None
            else concurrent.futures.ThreadPoolExecutor(
                max_workers=settings.io_threads, thread_name_prefix="io"
            )
        )
        threads = Threads(self.pool)
        self.memory = Memory()
        clips = GatedClips(clips, self.memory.uploads)  # type: ignore[assignment]
        self.capacity = Capacity(settings, self.store)
        self.intake = Intake(
            self.store,
            self.queue,
            self.capacity,
            self.memory,
            api,
            on_scene_deleted=lambda key, body: abandoned(self.memory.abandoned, key, body),
        )
        wake = lambda key, delay: self.intake.schedule(Kind.PROJECT, key, delay)  # noqa: E731
        recorder = Recorder(settings, api, wake=wake, clock=self.queue.clock)
        self._tmp = tempfile.TemporaryDirectory(prefix="scene-operator-")
        self.tmp_dir = self._tmp.name  # downloads, kept outputs, working clips, assembly
        self.bucket_check = BucketCheck(self.memory.buckets, clips, threads)
        self.scenes = scene_reconciler(
            settings=settings,
            api=api,
            clips=clips,
            providers=providers,
            threads=threads,
            store=self.store,
            intake=self.intake,
            capacity=self.capacity,
            memory=self.memory,
            recorder=recorder,
            bucket_check=self.bucket_check,
            tmp_dir=self.tmp_dir,
            clock=clock,
        )
        self.assembly = Assembler(
            settings=settings,
            store=self.store,
            clips=clips,  # type: ignore[arg-type]  # also downloads: ClipStore does
            threads=threads,
            recorder=recorder,
            wake=lambda key, delay: self.intake.schedule(Kind.PROJECT, key, delay),
            tmp_dir=self.tmp_dir,
        )
        self.projects = Projects(
            settings=settings,
            api=api,
            clips=clips,
            providers=providers,
            threads=threads,
            store=self.store,
            intake=self.intake,
            memory=self.memory,
            recorder=recorder,
            assembly=self.assembly,
            capacity=self.capacity,
        )
        self.drift = Drift(
            settings=settings,
            clips=clips,
            threads=threads,
            store=self.store,
            intake=self.intake,
            memory=self.memory,
            assembly=self.assembly,
        )
        self.resync = Resync(api, self.store, self.intake)  # ghosts leave the cache
        self.progress = Progress(self.queue.clock)  # for /healthz (liveness.py)
        self.worker = Worker(
            self.queue,
            {
                Kind.SCENE: self.progress.track(self.scenes.reconcile),
                Kind.PROJECT: self.progress.track(self.projects.reconcile),
                Kind.DRIFT: self.progress.track(self.drift.check),
            },
            after_each=self.intake.wake,
        )

    def on_scene_event(self, kind: str | None, body: Body) -> None:
        if kind is None and key_of(body) in self.store.scenes:  # kopf re-listed
            self.resync.relisted(key_of(body)[0])
        self.intake.on_scene_event(kind, body)

    def on_project_event(self, kind: str | None, body: Body) -> None:
        if kind is None and key_of(body) in self.store.projects:  # kopf re-listed
            self.resync.relisted(key_of(body)[0])
        self.intake.on_project_event(kind, body)

    def stalled(self) -> str | None:
        """Why the workers make no progress while work waits (liveness fails), or None."""
        return stall(
            queued=len(self.queue),
            busy=self.progress.busy,
            workers=self.settings.workers,
            last_progress=self.progress.last,
            now=self.queue.clock(),
            threshold=self.settings.liveness_stall_seconds,
        )

    async def run(self) -> None:
        # asyncio.to_thread (used by the local renderer) shares the same bounded pool.
        asyncio.get_running_loop().set_default_executor(self.pool)
        # Both loops' tasks are made here, synchronously, before kopf starts: kopf takes
        # tasks made after its start for its own and cancels them when it stops.
        resync = asyncio.create_task(self.resync.run(self.settings.resync_seconds))
        try:
            await self.worker.run(self.settings.workers)
        finally:
            resync.cancel()


def scene_reconciler(
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
    bucket_check: BucketCheck,
    tmp_dir: str,
    clock: Callable[[], dt.datetime],
) -> Scenes:
    """The Scene reconciler and the collaborators its passes act through."""
    limits = Limiters(settings)
    kept = KeptOutputs(tmp_dir, settings.kept_outputs_max_bytes)
    status = StatusWriter(api, intake)
    read = InputReader(
        settings=settings,
        projects=store.projects,
        specs=memory.specs,
        budget_left=capacity.budget_left,
    )

    async def get_project(namespace: str, name: str) -> Body | None:
        return await api.get(v.PROJECT_PLURAL, namespace, name)

    effects = SceneEffects(
        settings=settings,
        scenes=store.scenes,
        read=read,
        recheck=ProjectRecheck(
            get_project=get_project,
            observed=lambda body: intake.on_project_event(None, body),
            read=read,
        ),
        looks=ClipLooks(settings, clips, threads),
        working=WorkingClips(clips, threads, tmp_dir),
        poller=JobPoller(providers=providers, limits=limits, clock=clock),
        starter=JobStarter(
            settings=settings,
            providers=providers,
            slots=capacity,
            limits=limits,
            status=status,
            events=recorder,
            scenes=store.scenes,
            clock=clock,
        ),
        search=JobSearch(providers=providers, limits=limits, scenes=store.scenes, recovering={}),
        finisher=OutputFinisher(
            settings=settings,
            providers=providers,
            clips=clips,
            threads=threads,
            kept=kept,
            scenes=store.scenes,
            events=recorder,
            clock=clock,
            tmp_dir=tmp_dir,
        ),
        canceler=Canceler(
            providers=providers, limits=limits, kept=kept, abandoned_jobs=memory.abandoned
        ),
        status=status,
        events=recorder,
        check_bucket=bucket_check,
        limit_reached=capacity.limit_reached,
        waiting_since={},
        clock=clock,
    )
    return Scenes(effects=effects, memory=memory, parking=capacity, keys=intake, kept=kept)
