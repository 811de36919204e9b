"""The composition root: every collaborator is built here from `Settings` and the edges
(API, clip store, providers), and started here. Watch events (informer/handlers.py) reach
`Runtime.on_*_event`; workers (queue/worker.py) run one pass per key: observe, decide
(decide/, pure), act (controllers/). `run` is `scene-operator run`; unit tests drive
`Runtime` against fakes (tests/unit/harness.py). See docs/architecture.md."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from controller.api import vocabulary as v
from controller.assembly.reconciler import Assembler
from controller.controllers.buckets import BucketCheck
from controller.controllers.capacity import Capacity
from controller.controllers.drift.reconciler import Drift
from controller.controllers.events import Recorder
from controller.controllers.memory import Memory
from controller.controllers.ports import Body, ClipStorage, KubeClient, ProviderRegistry, Threads
from controller.controllers.project.cleanup import Finalizer
from controller.controllers.project.creation import SceneCreator
from controller.controllers.project.pacing import Pacer
from controller.controllers.project.planning import Planner
from controller.controllers.project.reconciler import BucketReport, Projects
from controller.controllers.project.status import ProjectStatusWriter
from controller.controllers.scene.actuator import SceneEffects
from controller.controllers.scene.cancel import Canceler, abandoned
from controller.controllers.scene.clip_look import ClipLooks
from controller.controllers.scene.duplicates import LateDuplicates
from controller.controllers.scene.finish import OutputFinisher
from controller.controllers.scene.inputs import InputReader, ProjectRecheck
from controller.controllers.scene.kept import KeptOutputs
from controller.controllers.scene.orphan_search import JobSearch
from controller.controllers.scene.poll_timing import PollTiming, Retimer
from controller.controllers.scene.provider_jobs import JobPoller, JobStarter
from controller.controllers.scene.ratelimit import Limiters
from controller.controllers.scene.reconciler import Scenes
from controller.controllers.scene.status_writer import StatusWriter
from controller.controllers.scene.working_clip import WorkingClips
from controller.controllers.uploads import GatedClips
from controller.decide.timeutil import utcnow
from controller.informer.cache import Key, Store, key_of
from controller.informer.intake import Intake
from controller.informer.resync import Resync
from controller.media.isolate import MediaRunner
from controller.queue.liveness import Progress, stall
from controller.queue.state import Kind
from controller.queue.worker import Worker
from controller.queue.workqueue import WorkQueue
from controller.settings import Settings

log = logging.getLogger("scene_operator")


@dataclass(frozen=True)
class Parts:
    """What the builders below share: the edges and the runtime's common state."""

    settings: Settings
    api: KubeClient
    clips: ClipStorage
    providers: ProviderRegistry
    threads: Threads
    store: Store
    intake: Intake
    capacity: Capacity
    memory: Memory
    recorder: Recorder
    bucket_check: BucketCheck
    tmp_dir: str
    clock: Callable[[], dt.datetime]
    media: MediaRunner  # assemblies and trims, in bounded child processes


class Runtime:
    """The cache, the work queue, the reconcilers and their collaborators (edges given)."""

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
        self.providers = providers
        self.store = Store()
        self.queue = queue if queue is not None else WorkQueue()
        self.pool = pool or concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.io_threads, thread_name_prefix="io"
        )
        threads = Threads(self.pool)
        self.memory = Memory()
        clips = GatedClips(clips, self.memory.uploads)
        self.capacity = Capacity(settings, self.store)
        self.intake = Intake(
            self.store,
            self.queue,
            self.capacity,
            self.memory,
            api,
            on_scene_deleted=lambda key, body: abandoned(self.memory.abandoned, key, body),
            clock=clock,
        )
        recorder = Recorder(settings, api, wake=self.wake_project, clock=self.queue.clock)
        self._tmp = tempfile.TemporaryDirectory(prefix="scene-operator-")
        self.tmp_dir = self._tmp.name  # downloads, kept outputs, working clips, assembly
        parts = Parts(
            settings, api, clips, providers, threads, self.store, self.intake, self.capacity,
            self.memory, recorder, BucketCheck(self.memory.buckets, clips, threads),
            self.tmp_dir, clock, MediaRunner.from_settings(settings),
        )  # fmt: skip
        self.scenes = scene_reconciler(parts)
        self.assembly = Assembler(
            settings=settings,
            store=self.store,
            clips=clips,  # also downloads: ClipStore does
            threads=threads,
            recorder=recorder,
            wake=self.wake_project,
            tmp_dir=self.tmp_dir,
            media=parts.media,
        )
        self.projects = project_reconciler(parts, self.assembly)
        self.drift = Drift(
            settings=settings,
            clips=clips,
            threads=threads,
            store=self.store,
            enqueue_scene=self.intake.enqueue_scene,
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

    def wake_project(self, key: Key, delay: float) -> None:
        """A Project made due from outside its own pass (its Scenes' Events are due, its
        final video was built): another key, not the one a pass is running."""
        self.intake.schedule(Kind.PROJECT, key, delay)

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


def scene_reconciler(p: Parts) -> Scenes:
    """The Scene reconciler and the collaborators its passes act through."""
    limits = Limiters(p.settings)
    kept = KeptOutputs(p.tmp_dir, p.settings.kept_outputs_max_bytes)
    read = InputReader(settings=p.settings, projects=p.store.projects, specs=p.memory.specs,
                       budget_left=p.capacity.budget_left)  # fmt: skip
    search = JobSearch(providers=p.providers, limits=limits, scenes=p.store.scenes,
                       recovering={}, clock_skew_seconds=p.settings.clock_skew_seconds)  # fmt: skip
    canceler = Canceler(
        providers=p.providers, limits=limits, kept=kept, abandoned_jobs=p.memory.abandoned
    )
    duplicates = LateDuplicates(  # this process's monotonic clock: the queue's
        settings=p.settings, memory=p.memory, scenes=p.store.scenes, read=read,
        providers=p.providers, limits=limits, cancel_job=canceler.cancel_job, events=p.recorder,
        recovering=search.recovering, monotonic=p.intake.queue.clock)  # fmt: skip
    status = StatusWriter(p.api, p.intake, written=duplicates.written)
    timing = PollTiming(settings=p.settings, durations=p.memory.durations,
                        monotonic=p.intake.queue.clock, clock=p.clock)  # fmt: skip
    timing.on_learned = Retimer(timing=timing, scenes=p.store.scenes, memory=p.memory.scene,
                                enqueue=p.intake.enqueue_scene)  # fmt: skip
    starter = JobStarter(providers=p.providers, slots=p.capacity, limits=limits, status=status,
                         events=p.recorder, scenes=p.store.scenes, timing=timing,
                         clock=p.clock)  # fmt: skip

    effects = SceneEffects(
        settings=p.settings,
        scenes=p.store.scenes,
        read=read,
        recheck=ProjectRecheck(
            get_project=lambda ns, name: p.api.get(v.PROJECT_PLURAL, ns, name),
            observed=lambda body: p.intake.on_project_event(None, body),
            read=read,
        ),
        looks=ClipLooks(p.settings, p.clips, p.threads, p.tmp_dir),
        working=WorkingClips(p.clips, p.threads, p.tmp_dir, p.media),
        poller=JobPoller(providers=p.providers, limits=limits, timing=timing, clock=p.clock),
        timing=timing,
        starter=starter,
        search=search,
        finisher=OutputFinisher(
            settings=p.settings,
            providers=p.providers,
            clips=p.clips,
            threads=p.threads,
            kept=kept,
            scenes=p.store.scenes,
            events=p.recorder,
            clock=p.clock,
            tmp_dir=p.tmp_dir,
        ),
        canceler=canceler,
        duplicates=duplicates,
        status=status,
        events=p.recorder,
        check_bucket=p.bucket_check,
        limit_reached=p.capacity.limit_reached,
        waiting_since=p.memory.waiting_since,
        clock=p.clock,
    )
    return Scenes(effects=effects, memory=p.memory, parking=p.capacity, keys=p.intake, kept=kept)


def project_reconciler(p: Parts, assembly: Assembler) -> Projects:
    """The Project reconciler and the collaborators of its passes."""
    status = ProjectStatusWriter(
        settings=p.settings,
        api=p.api,
        store=p.store,
        generations=p.capacity,
        final_video=assembly.apply,
        events=p.recorder,
        pacer=Pacer(p.intake.queue.clock),
    )
    creator = SceneCreator(
        api=p.api,
        scene_names=p.store.scene_names_of,
        observed=p.intake.scene_planned,
        events=p.recorder,
        default_provider=p.settings.default_video_provider,
    )
    return Projects(
        settings=p.settings,
        store=p.store,
        memory=p.memory,
        finalizer=Finalizer(
            settings=p.settings,
            api=p.api,
            store=p.store,
            clips=p.clips,
            threads=p.threads,
            uploads=p.memory.uploads,
            events=p.recorder,
        ),
        planner=Planner(
            settings=p.settings,
            api=p.api,
            store=p.store,
            providers=p.providers,
            list_namespace_once=p.intake.list_namespace_once,
            creator=creator,
            write_status=status.write,
            events=p.recorder,
        ),
        creator=creator,
        bucket=BucketReport(settings=p.settings, check=p.bucket_check, events=p.recorder),
        final_videos=assembly,
        status=status,
        series=p.recorder,
        forget_deleted=lambda key: p.capacity.deleted_settled.pop(key, None),
        enqueue=p.intake.schedule,
    )


@dataclass(frozen=True)
class RunOptions:
    """`scene-operator run`'s flags (controller/__main__.py)."""

    namespaces: list[str]  # empty: every namespace
    leader_elect: bool | None = None  # None: SCENE_OPERATOR_LEADER_ELECT, else in a cluster
    log_format: str | None = None  # None: SCENE_OPERATOR_LOG_FORMAT, else by the terminal


def run(options: RunOptions) -> int:
    """The operator process: logs, metrics, the clip store, then `serve` until stopped."""
    from controller.configuration import load_settings
    from controller.observability import metrics
    from controller.storage.clips import ClipStore

    # Logs set up; invalid settings, or caps over the scratch disk, exit 78.
    settings = load_settings(options.log_format)
    metrics.serve(settings.metrics_port)
    clips = ClipStore.from_env(max_pool_connections=settings.io_threads * 2)
    if settings.create_bucket:
        clips.ensure_bucket(settings.bucket)
    asyncio.run(serve(settings, clips, options))
    return 0


async def serve(settings: Settings, clips: ClipStorage, options: RunOptions) -> None:
    """Leader election, the Runtime on guarded edges, webhooks, and kopf's watches."""
    from controller import webhooks
    from controller.informer import handlers
    from controller.kube.client import KubeApi
    from controller.leaderelection import leadership
    from controller.leaderelection.elector import AlwaysLeader, LeaderElector
    from controller.leaderelection.guard import LeaderGatedQueue, guarded_edges
    from controller.observability import fleet_metrics

    elect = leadership.election_enabled(options.leader_elect, settings)
    api = KubeApi.from_environment()
    lease_api = KubeApi.from_environment() if elect else None
    elector: LeaderElector | AlwaysLeader = AlwaysLeader()
    route = None  # webhooks with election: the leader's Pod label, and forwarding
    if lease_api is not None:
        config = leadership.election_config(settings, options.namespaces)
        route = webhooks.leader_routing(settings, lease_api, config)
        elector = leadership.elector(lease_api, config, route and route.elected)
        lease = f"{config.namespace}/{config.name}"
        log.info("leader election on", extra={"lease": lease, "identity": config.identity})
    # Every provider call, S3 call and API write of the work checks leadership first;
    # provider creates and S3 PUTs the fence too (the lease's time left: guard.py).
    api.write_guard = elector.is_leader
    guarded_clips, providers = guarded_edges(settings, elector, clips)
    runtime = Runtime(
        settings=settings,
        api=api,
        clips=guarded_clips,
        providers=providers,
        queue=LeaderGatedQueue(elector.wait_leading),
    )
    fleet_metrics.register(runtime.store)  # gauges counted from the cache at each scrape
    # Replicate webhooks (None unless SCENE_OPERATOR_WEBHOOK_URL): a standby forwards.
    receiver = await webhooks.start(
        settings,
        provider=providers.video(webhooks.PROVIDER),
        scenes=lambda: runtime.store.scenes,
        wake_scene=runtime.intake.enqueue_scene,
        elector=elector if lease_api else None,
        route=route,
    )
    where = {"bucket": settings.bucket, "prefix": settings.s3_prefix}
    log.info("starting", extra={"namespaces": options.namespaces or "*", **where})
    port = settings.liveness_port
    election = asyncio.create_task(elector.run()) if isinstance(elector, LeaderElector) else None
    if election is not None:
        election.add_done_callback(leadership.election_ended)
    try:
        await handlers.run(
            runtime,
            namespaces=options.namespaces,
            clusterwide=not options.namespaces,
            standalone=True,  # the Lease is the one HA mechanism: no kopf peering
            peering_name=None,
            liveness_endpoint=f"http://0.0.0.0:{port}/healthz" if port else None,
        )
    finally:
        if receiver is not None:
            await receiver.stop()
        if election is not None and isinstance(elector, LeaderElector):
            election.remove_done_callback(leadership.election_ended)
            election.cancel()
            await elector.release()  # the workers are stopped: hand over at once
        await api.close()
        if lease_api is not None:
            await lease_api.close()
