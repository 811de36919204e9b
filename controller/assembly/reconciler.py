"""The final video at run time: observe (Scenes, S3), decide (plan.decide), act.

From the Project's pass: `reconcile` before its status write (reads S3 only when something
may have changed, starts an assembly), `apply` inside it (pure: Assembled, Ready, phase,
status.finalVideo), `drift` after the drift LIST. An assembly is a task whose work (build.py)
runs in a bounded child process; it holds no worker. After a restart the deterministic key
is HEADed first: a film uploaded before a crash is adopted, not rebuilt."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from controller.api import vocabulary as v
from controller.api.common import ConditionStatus
from controller.api.project import (
    AssemblyAttempts,
    FinalVideo,
    ProjectPhase,
    ProjectSpec,
    ProjectStatus,
)
from controller.api.scene import ScenePhase
from controller.assembly import scratch
from controller.assembly.attempts import failed, recorded_attempts, recorded_final, started
from controller.assembly.build import AssemblyStorage, Job, Stopped, build
from controller.assembly.plan import (
    AssemblyDecision,
    AssemblyObservation,
    AudioRef,
    ClipRef,
    Step,
    decide,
    final_key,
    inputs_hash,
    parse_resolution,
    refusal,
)
from controller.decide.conditions import get_condition, set_condition
from controller.decide.edit import working_record
from controller.decide.health import Health, project_health, with_health
from controller.decide.tenancy import audio_problem, audio_unreadable
from controller.decide.timeutil import rfc3339, utcnow
from controller.informer.cache import Body, Key, Store, key_of
from controller.media.engine import Refused
from controller.media.isolate import MediaRunner
from controller.observability import metrics as m
from controller.settings import Settings
from controller.storage.clips import ObjectFact

if TYPE_CHECKING:  # the runtime package imports this module
    from controller.controllers.events import Recorder
    from controller.controllers.ports import Threads

log = logging.getLogger("scene_operator")
Wake = Callable[[Key, float], None]


@dataclass
class Memory:
    """What the operator knows of one Project's final video between passes."""

    suspect: bool = False  # the drift LIST did not show the recorded object as recorded
    missing: bool = False  # a HEAD confirmed it: missing or changed
    bad_etag: str | None = None  # the changed object seen there: never adopted
    running: str | None = None  # inputs hash being assembled
    task: asyncio.Task[None] | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    result: FinalVideo | None = None  # verified in S3, not yet in status
    attempts: AssemblyAttempts | None = None  # this process's count (status has it too)
    audio_for: tuple[str, str] | None = None  # (bucket, key) that `audio` describes
    audio: AudioRef | None = None
    audio_error: str | None = None


class Assembler:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        clips: AssemblyStorage,
        threads: Threads,
        recorder: Recorder,
        wake: Wake,
        tmp_dir: str,
        media: MediaRunner | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clips = clips
        self.threads = threads  # the shared I/O pool, for HEADs
        self.recorder = recorder
        self.wake = wake  # make the Project due after a delay
        self.tmp_dir = tmp_dir
        self.media = media or MediaRunner.from_settings(settings)
        self._alive = scratch.claim(tmp_dir)
        for name in scratch.sweep(tmp_dir):
            log.info("removed the scratch space of a stopped operator", extra={"path": name})
        self.memory: dict[Key, Memory] = {}
        # CPU work gets its own threads: an assembly never takes an I/O thread for long.
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.assembly_concurrency, thread_name_prefix="assembly"
        )

    def _storage(self, spec: ProjectSpec) -> tuple[str, str]:
        s = self.settings
        prefix = spec.storage.prefix if spec.storage.prefix is not None else s.s3_prefix
        return spec.storage.bucket or s.bucket, prefix

    def _clips(self, key: Key) -> tuple[int, tuple[ClipRef, ...]]:
        """(Scenes of the Project, verified clips in sequence order)."""
        scenes = self.store.scenes_of(key)
        refs = []
        for scene in scenes:
            status = scene.get("status") or {}
            clip = working_record(scene) or {}  # the working clip: the original, edited
            missing = (status.get("lastError") or {}).get("reason") == v.Reason.CLIP_MISSING
            if status.get("phase") != ScenePhase.COMPLETED or not clip.get("key") or missing:
                continue
            seq = (scene.get("spec") or {}).get("sequence") or 0
            version = clip.get("sha256") or clip.get("etag") or ""
            refs.append(ClipRef(seq, clip["bucket"], clip["key"], version, clip.get("size") or 0))
        return len(scenes), tuple(sorted(refs, key=lambda c: (c.sequence, c.key)))

    def _observe(
        self, body: Body, spec: ProjectSpec, mem: Memory
    ) -> tuple[AssemblyObservation, AudioRef | None]:
        key = key_of(body)
        count, clips = self._clips(key)
        recorded = mem.result or recorded_final(body)
        audio, h = None, None
        if spec.assembly.audio is None:
            ready = True
        else:
            ready = mem.audio_for == self._audio_location(spec) and mem.audio is not None
            audio = mem.audio if ready else None
        if ready and count and len(clips) == count:
            h = inputs_hash(clips, audio, spec.assembly.resolution)
        obs = AssemblyObservation(
            now=utcnow(),
            enabled=spec.assembly_enabled(),
            scene_count=count,
            clips=clips,
            inputs_hash=h,
            recorded=recorded,
            suspect=mem.suspect,
            missing=mem.missing,
            running=mem.running,
            attempts=mem.attempts or recorded_attempts(body),
            audio_error=mem.audio_error if spec.assembly.audio else None,
            paused=spec.paused,
            generation=body["metadata"].get("generation"),
            max_attempts=self.settings.assembly_max_attempts,
            refused=refusal(spec.assembly.resolution, self.settings.max_assembly_pixels),
        )
        return obs, audio

    def _audio_location(self, spec: ProjectSpec) -> tuple[str, str] | None:
        a = spec.assembly.audio
        return (a.bucket or self._storage(spec)[0], a.key) if a else None

    async def reconcile(self, body: Body, spec: ProjectSpec) -> float | None:
        """Before the Project's status write: the I/O the decision asks for. Returns when
        the Project's pass should run again (a failed assembly's retry), or None."""
        key = key_of(body)
        mem = self.memory.setdefault(key, Memory())
        if mem.result is not None and recorded_final(body) == mem.result:
            mem.result = None  # written: status is the record now
        if not spec.assembly_enabled():
            return None
        where = self._audio_location(spec)
        if where is not None and mem.audio_for != where:
            await self._read_audio(mem, where, spec, key[0])
        for _ in range(3):
            obs, audio = self._observe(body, spec, mem)
            d = decide(obs)
            if d.step == Step.VERIFY:
                await self._verify(body, mem, d)
                continue
            if d.step == Step.ASSEMBLE and obs.inputs_hash is not None and mem.task is None:
                if mem.attempts is not None and recorded_attempts(body) != mem.attempts:
                    return 1.0  # the last failure goes to status before a new try
                self._start(body, spec, mem, obs, audio, d.attempts)
            elif d.step == Step.FAILED and d.requeue_after is not None:
                return d.requeue_after
            return None
        return None

    async def _read_audio(
        self, mem: Memory, where: tuple[str, str], spec: ProjectSpec, namespace: str
    ) -> bool:
        """HEAD the audio object unless the Project may not read it; True if what is known
        of it changed. Missing, refused and unreadable say the same (no existence oracle)."""
        before = (mem.audio_for, mem.audio, mem.audio_error)
        (bucket, prefix), s, fact = self._storage(spec), self.settings, None
        refused = audio_problem(*where, namespace, {bucket, s.bucket}, {prefix, s.s3_prefix}, s)
        if refused is None:
            try:
                fact = await self._head(*where)
            except Exception as e:  # the next pass or drift check reads again
                why = {"object": where[1], "reason": str(e)[:200]}
                log.info("audio object not read", extra=why)
        if fact is None:  # read again on the next pass (AUDIO_RECHECK)
            mem.audio_for, mem.audio = None, None
            mem.audio_error = audio_unreadable(*where)
        else:
            mem.audio_for = where
            version = fact.sha256 or fact.etag
            mem.audio, mem.audio_error = AudioRef(*where, version, fact.size), None
        return before != (mem.audio_for, mem.audio, mem.audio_error)

    async def _head(self, bucket: str, key: str) -> ObjectFact | None:
        try:
            fact = await self.threads.run(self.clips.head, bucket, key)
        except Exception:
            m.S3_OPS.labels("head", "error").inc()
            raise
        m.S3_OPS.labels("head", "ok").inc()
        return fact

    async def _verify(self, body: Body, mem: Memory, d: AssemblyDecision) -> None:
        rec = d.final_video
        assert rec is not None
        try:
            fact = await self._head(rec.bucket, rec.s3_key)
        except Exception as e:  # S3 unreachable: the next drift check looks again
            key = key_of(body)
            log.warning(
                "final video not verified",
                extra={"namespace": key[0], "object": key[1], "error": str(e)},
            )
            mem.suspect = False
            return
        mem.suspect = False
        if fact is not None and fact.size == rec.size and fact.etag == rec.etag:
            return  # the listing was behind: nothing to repair
        mem.missing, mem.bad_etag = True, fact.etag if fact else None
        what = "changed" if fact else "missing"
        await self.recorder.post(
            body,
            v.Reason.FINAL_VIDEO_MISSING,
            f"final video s3://{rec.bucket}/{rec.s3_key} is {what} in S3: rebuilding it from the clips",
            "Warning",
        )

    def _start(
        self,
        body: Body,
        spec: ProjectSpec,
        mem: Memory,
        obs: AssemblyObservation,
        audio: AudioRef | None,
        tried: AssemblyAttempts | None,
    ) -> None:
        assert obs.inputs_hash is not None
        key = key_of(body)
        bucket, prefix = self._storage(spec)
        job = Job(
            project=key,
            bucket=bucket,
            key=final_key(prefix, key[0], body["metadata"]["uid"], obs.inputs_hash),
            inputs_hash=obs.inputs_hash,
            clips=obs.clips,
            audio=audio,
            resolution=parse_resolution(spec.assembly.resolution),
            avoid_etag=mem.bad_etag,
            max_pixels=self.settings.max_assembly_pixels,
            max_seconds=self.settings.max_film_seconds,
        )
        # written by this pass's status write, before the build can get far
        mem.attempts = started(tried, obs.inputs_hash, obs.generation)
        mem.running = obs.inputs_hash
        mem.task = asyncio.create_task(self._run(job, mem))

    async def _run(self, job: Job, mem: Memory) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            record, how = await loop.run_in_executor(
                self.pool,
                build,
                job,
                self.clips,
                self.settings.assembly_max_bytes,
                self.tmp_dir,
                mem.stop,
                self.media,
            )
        except Stopped:
            return
        except Exception as e:  # bad input, S3 trouble, a limit reached: retried with backoff
            m.ASSEMBLIES.labels("failed").inc()
            mem.running, mem.task = None, None
            message = str(e)[:500] or type(e).__name__
            limit = self.settings.assembly_max_attempts
            mem.attempts = failed(mem.attempts, message, limit, refused=isinstance(e, Refused))
            self.wake(job.project, 0.0)  # to say so in status; the retry is due at retry_at
            log.warning(
                "assembly failed",
                extra={"namespace": job.project[0], "object": job.project[1], "error": message},
            )
            await self._event(job, v.Reason.ASSEMBLY_FAILED, message, "Warning")
            return
        m.ASSEMBLIES.labels(how).inc()
        m.ASSEMBLY_SECONDS.observe(time.perf_counter() - started)
        mem.running, mem.task = None, None
        mem.result, mem.attempts = record, None
        mem.suspect = mem.missing = False
        mem.bad_etag = None
        self.wake(job.project, 0.0)
        reason = v.Reason.FINAL_VIDEO_ADOPTED if how == "adopted" else v.Reason.VIDEO_ASSEMBLED
        done = {"adopted": "found at its key: not assembled again", "copy": "stream copy"}
        message = (
            f"final video s3://{record.bucket}/{record.s3_key}: {len(job.clips)} clips, "
            f"{record.duration_seconds:.2f} s"
            + (" with audio" if job.audio else "")
            + f" ({done.get(how, 're-encoded')})"
        )
        await self._event(job, reason, message)

    async def _event(self, job: Job, reason: str, message: str, type_: str = "Normal") -> None:
        body = self.store.projects.get(job.project)
        if body is not None:
            await self.recorder.post(body, reason, message, type_)

    def apply(self, body: Body, spec: ProjectSpec | None, new: ProjectStatus) -> ProjectStatus:
        """The status the Project should have, with its final video (pure, from memory)."""
        if spec is None:
            return new
        mem = self.memory.get(key_of(body)) or Memory()
        d = decide(self._observe(body, spec, mem)[0])
        gen = new.observed_generation
        now = rfc3339(utcnow())
        ok: ConditionStatus = "True" if d.assembled else "False"
        conds = set_condition(
            new.conditions, v.Cond.ASSEMBLED, ok, d.reason, d.message, generation=gen, now=now
        )
        phase = new.phase
        ready = get_condition(conds, v.Cond.READY)
        if spec.assembly_enabled() and ready is not None and ready.status == "True":
            if d.assembled:
                message = ready.message + ", final video assembled"
                conds = set_condition(
                    conds, v.Cond.READY, "True", ready.reason, message, generation=gen, now=now
                )
            else:
                conds = set_condition(
                    conds, v.Cond.READY, "False", d.reason, d.message, generation=gen, now=now
                )
                if phase == ProjectPhase.COMPLETED:
                    phase = ProjectPhase.PROCESSING
                # kstatus: Ready turned False here, so Reconciling follows it (the clips
                # are all done: nothing pending, nothing in flight, no budget question)
                health = project_health(
                    phase,
                    get_condition(conds, v.Cond.READY),
                    pending=new.pending_scenes,
                    processing=new.processing_scenes,
                    paused=spec.paused,
                    budget=None,
                )
                conds = with_health(conds, health, generation=gen, now=now)
        if d.stalled and spec.assembly_enabled():  # nothing more until the spec or a clip changes
            stalled = Health(stalled=(d.reason, d.message))
            conds = with_health(conds, stalled, generation=gen, now=now)
        update = {"conditions": conds, "final_video": d.final_video, "phase": phase}
        return new.model_copy(update={**update, "assembly_attempts": d.attempts})

    async def drift(self, project: Body, spec: ProjectSpec, listing: dict[str, Any]) -> None:
        """After the drift LIST: a recorded final video not listed as recorded is verified
        (and rebuilt if gone); the audio object is re-read (HEAD) when there is one."""
        if not spec.assembly_enabled():
            return
        key = key_of(project)
        mem = self.memory.setdefault(key, Memory())
        rec = recorded_final(project)
        if rec is not None and mem.running is None:
            obj = listing.get(rec.s3_key)
            if obj is None or obj.size != rec.size or obj.etag != rec.etag:
                mem.suspect = True
                self.wake(key, 0.0)
        where = self._audio_location(spec)
        if where is not None and await self._read_audio(mem, where, spec, key[0]):
            self.wake(key, 0.0)

    async def stop(self, key: Key) -> None:
        """The Project is gone or going: no upload after this returns (the finalizer
        deletes the prefix next)."""
        mem = self.memory.pop(key, None)
        if mem is not None and mem.task is not None:
            mem.stop.set()
            await asyncio.wait({mem.task})
