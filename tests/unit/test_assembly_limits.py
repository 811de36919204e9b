"""A build that fails or runs away: recorded in status before the next try, backed off
after a restart, stopped for good after SCENE_OPERATOR_ASSEMBLY_MAX_ATTEMPTS, killed
when its Project goes; a resolution over the operator's cap is refused up front."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from controller.api import vocabulary as v
from controller.api.project import ProjectSpec, ProjectStatus
from controller.assembly.reconciler import Assembler, Memory
from controller.media.isolate import Limits, MediaRunner
from controller.settings import Settings
from tests.unit import test_assembly_reconciler as base
from tests.unit.test_assembly_reconciler import NAME, NS, FakeRuntime, assembled, project

s3, store, world = base.s3, base.store, base.world  # the fixtures: a real S3 server, clips

MiB = 1024 * 1024
BIG = ProjectSpec.model_validate(
    {"prompt": "x", "generateVideos": True, "assembly": {"resolution": "1920x1080"}}
)


def assembler(rt: FakeRuntime, media: MediaRunner | None = None, **settings: Any) -> Assembler:
    rt.settings = Settings(bucket=rt.settings.bucket, s3_prefix="p", **settings)
    return Assembler(
        settings=rt.settings,
        store=rt.store,
        clips=rt.clips,
        threads=rt.threads,
        recorder=rt,  # type: ignore[arg-type]
        wake=lambda key, delay: rt.woken.append((key, delay)),
        tmp_dir=rt._tmp.name,
        media=media,
    )


async def settle(a: Assembler, rt: FakeRuntime, spec: ProjectSpec) -> ProjectStatus:
    body = rt.store.projects[(NS, NAME)]
    await a.reconcile(body, spec)
    mem = a.memory[(NS, NAME)]
    if mem.task is not None:
        await mem.task
    status = a.apply(body, spec, ProjectStatus(observed_generation=1))
    rt.store.upsert_project(project(status.wire()))
    return status


def condition(status: ProjectStatus, type_: str) -> Any:
    return next((c for c in status.conditions if c.type == type_), None)


def test_a_build_over_its_memory_limit_fails_is_recorded_and_a_restart_backs_off(world) -> None:
    rt, _ = world
    a = assembler(rt, media_memory_mb=64)  # far too little for 1920x1080 frames
    status = asyncio.run(settle(a, rt, BIG))
    assert assembled(status) == ("False", v.Reason.ASSEMBLY_FAILED)
    assert "SCENE_OPERATOR_MEDIA_MEMORY_MB" in condition(status, v.Cond.ASSEMBLED).message
    tried = status.assembly_attempts
    assert tried is not None and tried.attempts == 1 and tried.retry_at and tried.last_error
    # a new process (empty memory) reads the attempt from status: no build before retry_at
    a._alive.close()
    again = assembler(rt, media_memory_mb=64)
    status = asyncio.run(settle(again, rt, BIG))
    assert again.memory[(NS, NAME)].task is None
    assert assembled(status) == ("False", v.Reason.ASSEMBLY_FAILED)
    assert status.assembly_attempts == tried


def test_a_build_that_died_with_its_operator_is_not_started_again_at_once(world) -> None:
    rt, _ = world
    started = {"attempts": 2, "generation": 1, "startedAt": "2999-01-01T00:00:00Z"}
    a = assembler(rt)
    body = rt.store.projects[(NS, NAME)]
    h = a._observe(body, BIG, Memory())[0].inputs_hash  # nothing started
    rt.store.upsert_project(project({"assemblyAttempts": {**started, "inputsHash": h}}))
    a._alive.close()
    fresh = assembler(rt)
    status = asyncio.run(settle(fresh, rt, BIG))
    assert assembled(status) == ("False", v.Reason.ASSEMBLY_FAILED)
    assert "stopped with its operator" in condition(status, v.Cond.ASSEMBLED).message
    assert rt.events == []  # nothing built


def test_after_the_last_attempt_it_stalls_until_the_inputs_change(world) -> None:
    rt, _ = world
    a = assembler(rt, media_memory_mb=64, assembly_max_attempts=1)
    status = asyncio.run(settle(a, rt, BIG))
    assert status.assembly_attempts is not None and status.assembly_attempts.retry_at is None
    stalled = condition(status, v.Cond.STALLED)
    assert stalled is not None and stalled.reason == v.Reason.ASSEMBLY_FAILED
    assert "gave up after 1 attempts" in stalled.message
    status = asyncio.run(settle(a, rt, BIG))  # nothing more, however often it is looked at
    assert a.memory[(NS, NAME)].task is None and condition(status, v.Cond.STALLED)
    # another resolution is another film: built
    small = ProjectSpec.model_validate(
        {"prompt": "x", "generateVideos": True, "assembly": {"resolution": "320x180"}}
    )
    a.media = MediaRunner.from_settings(Settings())  # with memory enough
    status = asyncio.run(settle(a, rt, small))
    assert assembled(status) == ("True", v.Reason.VIDEO_ASSEMBLED)
    assert status.assembly_attempts is None and condition(status, v.Cond.STALLED) is None


def test_a_resolution_over_the_operators_cap_is_refused_without_work(world) -> None:
    rt, _ = world
    a = assembler(rt, max_assembly_pixels=1280 * 720)
    status = asyncio.run(settle(a, rt, BIG))
    assert assembled(status) == ("False", v.Reason.INVALID_SPEC)
    assert "SCENE_OPERATOR_MAX_ASSEMBLY_PIXELS" in condition(status, v.Cond.ASSEMBLED).message
    assert a.memory[(NS, NAME)].task is None and rt.events == []


class Endless(MediaRunner):
    """A build whose media work never ends (a child sleeping)."""

    def run(self, fn: Any, *args: Any, stop: threading.Event | None = None, **kw: Any) -> Any:
        return super().run(time.sleep, 3600, stop=stop)


def test_deleting_the_project_stops_its_build_within_ten_seconds(world) -> None:
    rt, _ = world
    a = assembler(rt, media=Endless(Limits(256 * MiB, 3600.0)))

    async def start_then_stop() -> float:
        body = rt.store.projects[(NS, NAME)]
        await a.reconcile(body, BIG)
        assert a.memory[(NS, NAME)].task is not None
        await asyncio.sleep(2.0)  # the child is running
        began = time.monotonic()
        await a.stop((NS, NAME))
        return time.monotonic() - began

    assert asyncio.run(start_then_stop()) < 10
    bucket = rt.settings.bucket
    assert not [k for k in rt.clips.list_prefix(bucket, f"p/{NS}/") if "/final/" in k]
