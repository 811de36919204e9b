"""The final video's run-time side against a real S3 server and real clips; the Runtime
around it is a small fake of the operator's own interface (settings, store, event)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import tempfile
import uuid
import wave
from pathlib import Path
from typing import Any

import pytest

from controller.api import vocabulary as v
from controller.api.common import Condition
from controller.api.project import ProjectSpec, ProjectStatus
from controller.assembly.reconciler import Assembler
from controller.controllers.ports import Threads
from controller.demo.s3server import S3Server
from controller.informer.cache import Store
from controller.providers.render import render_clip
from controller.settings import Settings
from controller.storage.clips import ClipStore

NS, NAME, UID = "ns", "film", "uid-123"
SPEC = ProjectSpec.model_validate({"prompt": "x", "generateVideos": True})


@pytest.fixture(scope="module")
def s3():
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture
def store(s3, monkeypatch, tmp_path) -> ClipStore:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    return ClipStore.from_env()


class FakeRuntime:
    """What the Runtime hands the Assembler; Events are recorded, not posted."""

    def __init__(self, clips: ClipStore, bucket: str) -> None:
        self.settings = Settings(bucket=bucket, s3_prefix="p")
        self.clips = clips
        self.store = Store()
        self.threads = Threads(concurrent.futures.ThreadPoolExecutor(2))
        self._tmp = tempfile.TemporaryDirectory()
        self.events: list[tuple[str, str]] = []
        self.woken: list[tuple[Any, float]] = []

    async def post(self, body: dict, reason: str, message: str, type_: str = "Normal") -> None:
        self.events.append((reason, message))


def project(status: dict | None = None) -> dict:
    meta = {"namespace": NS, "name": NAME, "uid": UID, "resourceVersion": "1", "generation": 1}
    return {"kind": "Project", "metadata": meta, "spec": {}, "status": status or {}}


def scene(seq: int, clip: dict | None) -> dict:
    status = {"phase": "Completed", "clip": clip} if clip else {"phase": "Pending"}
    return {
        "kind": "Scene",
        "metadata": {"namespace": NS, "name": f"{NAME}-scene-{seq:03d}", "resourceVersion": "1"},
        "spec": {"projectRef": {"name": NAME}, "sequence": seq, "prompt": f"p{seq}"},
        "status": status,
    }


@pytest.fixture
def world(store: ClipStore, tmp_path: Path) -> tuple[FakeRuntime, list[dict]]:
    bucket = f"b-{uuid.uuid4().hex[:10]}"
    store.ensure_bucket(bucket)
    rt = FakeRuntime(store, bucket)
    clips = []
    for seq in (1, 2):
        path = tmp_path / f"{seq}.mp4"
        render_clip(
            path, prompt=f"p{seq}", sequence=seq, duration_seconds=1, aspect_ratio="16:9", height=64
        )
        key = f"p/{NS}/{UID}/scenes/{seq:03d}/h-t0.mp4"
        fact = store.put_clip(bucket, key, path, metadata={})
        clip = {
            "bucket": bucket,
            "key": key,
            "size": fact.size,
            "etag": fact.etag,
            "sha256": fact.sha256,
        }
        clips.append(clip)
        rt.store.upsert_scene(scene(seq, clip))
    rt.store.upsert_project(project())
    return rt, clips


def assembler(rt: FakeRuntime) -> Assembler:
    return Assembler(
        settings=rt.settings,
        store=rt.store,
        clips=rt.clips,
        threads=rt.threads,
        recorder=rt,  # type: ignore[arg-type]
        wake=lambda key, delay: rt.woken.append((key, delay)),
        tmp_dir=rt._tmp.name,
    )


async def settle(a: Assembler, rt: FakeRuntime) -> ProjectStatus:
    """One reconcile, its assembly task to the end, and the status the Project then gets
    (written back to the cache, as the Runtime's status write does)."""
    body = rt.store.projects[(NS, NAME)]
    await a.reconcile(body, SPEC)
    mem = a.memory[(NS, NAME)]
    if mem.task is not None:
        await mem.task
    status = a.apply(body, SPEC, ProjectStatus(observed_generation=1))
    rt.store.upsert_project(project(status.wire()))
    return status


def assembled(status: ProjectStatus) -> tuple[str, str]:
    c = next(c for c in status.conditions if c.type == v.Cond.ASSEMBLED)
    return c.status, c.reason


def test_assembles_uploads_verified_and_records_it(world) -> None:
    rt, _ = world
    status = asyncio.run(settle(assembler(rt), rt))
    assert assembled(status) == ("True", v.Reason.VIDEO_ASSEMBLED)
    fv = status.final_video
    assert fv is not None and fv.s3_key == f"p/{NS}/{UID}/final/{fv.inputs_hash}.mp4"
    head = rt.clips.head(fv.bucket, fv.s3_key)
    assert head is not None and (head.size, head.sha256) == (fv.size, fv.sha256)
    assert head.metadata["inputs-hash"] == fv.inputs_hash
    assert abs(fv.duration_seconds - 2.0) < 0.1
    assert [r for r, _ in rt.events] == [v.Reason.VIDEO_ASSEMBLED]
    assert "stream copy" in rt.events[0][1]


def test_a_restart_adopts_the_object_at_the_key_without_assembling(world) -> None:
    rt, _ = world
    first = asyncio.run(settle(assembler(rt), rt)).final_video
    rt.store.upsert_project(project())  # the status write was lost in the crash
    rt.events.clear()
    again = asyncio.run(settle(assembler(rt), rt))  # a new process: empty memory
    assert assembled(again) == ("True", v.Reason.VIDEO_ASSEMBLED)
    assert again.final_video is not None and first is not None
    assert (again.final_video.s3_key, again.final_video.sha256) == (first.s3_key, first.sha256)
    assert [r for r, _ in rt.events] == [v.Reason.FINAL_VIDEO_ADOPTED]


def test_done_makes_no_s3_call(world, monkeypatch) -> None:
    rt, _ = world
    a = assembler(rt)
    asyncio.run(settle(a, rt))
    for name in ("head", "download", "put_clip", "list_prefix"):
        monkeypatch.setattr(rt.clips, name, lambda *a, **k: pytest.fail("S3 was called"))
    status = asyncio.run(settle(a, rt))
    assert assembled(status) == ("True", v.Reason.VIDEO_ASSEMBLED)


@pytest.mark.parametrize("how", ["deleted", "overwritten"])
def test_drift_finds_it_gone_and_it_is_rebuilt(world, how: str) -> None:
    rt, _ = world
    a = assembler(rt)
    fv = asyncio.run(settle(a, rt)).final_video
    assert fv is not None
    if how == "deleted":
        rt.clips.client.delete_object(Bucket=fv.bucket, Key=fv.s3_key)
    else:
        rt.clips.client.put_object(Bucket=fv.bucket, Key=fv.s3_key, Body=b"garbage")
    body = rt.store.projects[(NS, NAME)]
    prefix = f"p/{NS}/{UID}/"

    async def drift_then_settle() -> ProjectStatus:
        listing = await asyncio.to_thread(rt.clips.list_prefix, fv.bucket, prefix)
        await a.drift(body, SPEC, listing)
        return await settle(a, rt)

    status = asyncio.run(drift_then_settle())
    reasons = [r for r, _ in rt.events]
    assert reasons == [
        v.Reason.VIDEO_ASSEMBLED,
        v.Reason.FINAL_VIDEO_MISSING,
        v.Reason.VIDEO_ASSEMBLED,
    ]
    assert status.final_video is not None and status.final_video.sha256 == fv.sha256
    head = rt.clips.head(fv.bucket, fv.s3_key)
    assert head is not None and head.sha256 == fv.sha256


def test_a_healthy_listing_wakes_nothing(world) -> None:
    rt, _ = world
    a = assembler(rt)
    fv = asyncio.run(settle(a, rt)).final_video
    assert fv is not None
    rt.woken.clear()
    listing = rt.clips.list_prefix(fv.bucket, f"p/{NS}/{UID}/")
    asyncio.run(a.drift(rt.store.projects[(NS, NAME)], SPEC, listing))
    assert rt.woken == [] and not a.memory[(NS, NAME)].suspect


def test_a_clip_changed_in_s3_fails_the_assembly_and_says_so(world, tmp_path: Path) -> None:
    rt, clips = world
    other = tmp_path / "other.mp4"
    render_clip(
        other, prompt="other", sequence=9, duration_seconds=1, aspect_ratio="16:9", height=64
    )
    rt.clips.client.upload_file(str(other), clips[1]["bucket"], clips[1]["key"])
    status = asyncio.run(settle(assembler(rt), rt))
    assert assembled(status) == ("False", v.Reason.ASSEMBLY_FAILED)
    assert "changed in S3" in next(
        c.message for c in status.conditions if c.type == v.Cond.ASSEMBLED
    )
    assert status.final_video is None
    assert [r for r, _ in rt.events] == [v.Reason.ASSEMBLY_FAILED]


def test_waiting_for_a_scene_and_ready_held_back(world) -> None:
    rt, _ = world
    rt.store.upsert_scene(
        {**scene(3, None), "metadata": {**scene(3, None)["metadata"], "resourceVersion": "2"}}
    )
    a = assembler(rt)
    body = rt.store.projects[(NS, NAME)]
    asyncio.run(a.reconcile(body, SPEC))
    assert a.memory[(NS, NAME)].task is None
    ready = Condition(
        type="Ready", status="True", reason="Completed", message="ok",
        last_transition_time="2026-01-01T00:00:00Z",
    )  # fmt: skip
    status = a.apply(body, SPEC, ProjectStatus(phase="Completed", conditions=[ready]))
    assert assembled(status) == ("False", v.Reason.WAITING_FOR_SCENES)
    got = next(c for c in status.conditions if c.type == v.Cond.READY)
    assert (got.status, got.reason, status.phase) == (
        "False",
        v.Reason.WAITING_FOR_SCENES,
        "Processing",
    )
    # kstatus reads the Project as in progress, not as done
    reconciling = next(c for c in status.conditions if c.type == v.Cond.RECONCILING)
    assert (reconciling.status, reconciling.reason) == ("True", v.Reason.WAITING_FOR_SCENES)
    assert not [c for c in status.conditions if c.type == v.Cond.STALLED]


def test_off_when_generate_videos_is_false_or_assembly_disabled(world) -> None:
    rt, _ = world
    a = assembler(rt)
    body = rt.store.projects[(NS, NAME)]
    for raw in (
        {"prompt": "x"},
        {"prompt": "x", "generateVideos": True, "assembly": {"enabled": False}},
        {"prompt": "x", "assembly": {"enabled": True}},  # no clips without generateVideos
    ):
        spec = ProjectSpec.model_validate(raw)
        assert not spec.assembly_enabled()
        asyncio.run(a.reconcile(body, spec))
        status = a.apply(body, spec, ProjectStatus())
        assert assembled(status) == ("False", v.Reason.ASSEMBLY_NOT_REQUESTED)
    assert a.memory[(NS, NAME)].task is None and rt.events == []


def test_a_missing_audio_object_fails_until_it_is_uploaded(world, tmp_path: Path) -> None:
    rt, clips = world
    spec = ProjectSpec.model_validate(
        {"prompt": "x", "generateVideos": True, "assembly": {"audio": {"key": "song.wav"}}}
    )
    a = assembler(rt)
    again: list[float | None] = []  # when the Project's pass asks to run again

    async def settle_with_audio() -> ProjectStatus:
        body = rt.store.projects[(NS, NAME)]
        again.append(await a.reconcile(body, spec))
        mem = a.memory[(NS, NAME)]
        if mem.task is not None:
            await mem.task
        status = a.apply(body, spec, ProjectStatus(observed_generation=1))
        rt.store.upsert_project(project(status.wire()))
        return status

    status = asyncio.run(settle_with_audio())
    assert assembled(status) == ("False", v.Reason.ASSEMBLY_FAILED)
    assert "song.wav cannot be read: missing or not allowed" in next(
        c.message for c in status.conditions if c.type == "Assembled"
    )
    assert any(delay and delay > 0 for delay in again)  # looked at again without a drift check
    with wave.open(str(tmp_path / "song.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x10\x00" * 8000)
    rt.clips.client.upload_file(str(tmp_path / "song.wav"), clips[0]["bucket"], "song.wav")
    status = asyncio.run(settle_with_audio())
    assert assembled(status) == ("True", v.Reason.VIDEO_ASSEMBLED)
    assert "with audio" in rt.events[-1][1]


@pytest.mark.parametrize("where", ["other-tenant", "bucket-not-allowed"])
def test_an_audio_object_the_project_may_not_read_is_never_read(
    world, tmp_path: Path, where
) -> None:
    """Another tenant's film in the shared bucket, or an object in a bucket the allow-list
    refuses: it exists, yet the operator never sends S3 a request for it (its
    credentials are not lent), and the Project reads the same words as for a missing
    object (no existence oracle)."""
    rt, clips = world
    bucket = clips[0]["bucket"]
    if where == "other-tenant":
        audio_bucket, key = bucket, f"p/other-ns/{uuid.uuid4().hex}/final/film.mp4"
    else:
        audio_bucket, key = f"b-{uuid.uuid4().hex[:10]}", "song.wav"
        rt.clips.ensure_bucket(audio_bucket)
        rt.settings = Settings(bucket=bucket, s3_prefix="p", allowed_buckets=bucket)
    rt.clips.client.put_object(Bucket=audio_bucket, Key=key, Body=b"RIFF....WAVE")
    heads: list[str] = []
    rt.clips.client.meta.events.register(
        "before-call.s3.HeadObject", lambda params, **_: heads.append(params["url_path"])
    )
    spec = ProjectSpec.model_validate(
        {
            "prompt": "x",
            "generateVideos": True,
            "assembly": {"audio": {"bucket": audio_bucket, "key": key}},
        }
    )
    a = assembler(rt)

    async def one_pass() -> ProjectStatus:
        body = rt.store.projects[(NS, NAME)]
        await a.reconcile(body, spec)
        return a.apply(body, spec, ProjectStatus(observed_generation=1))

    status = asyncio.run(one_pass())
    assert assembled(status) == ("False", v.Reason.ASSEMBLY_FAILED)
    message = next(c.message for c in status.conditions if c.type == "Assembled")
    assert f"s3://{audio_bucket}/{key} cannot be read: missing or not allowed" in message
    assert not [h for h in heads if key in h]  # never asked S3 about it
    rt.clips.head(audio_bucket, key)
    assert [h for h in heads if key in h]  # the hook sees a HEAD when one is sent
