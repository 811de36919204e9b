"""One final video, built: blocking work for the assembly threads (S3 and PyAV).

First a HEAD of the deterministic key (an object this operator uploaded for the same
inputs is adopted: a restart between upload and status write); else the clips are
downloaded and checked against their recorded SHA-256, joined by the engine under a
size cap, and uploaded with put_clip, which returns once S3 has shown it holds the bytes.
"""

from __future__ import annotations

import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from controller.api.project import FinalVideo
from controller.assembly.plan import AudioRef, ClipRef
from controller.decide.timeutil import rfc3339, utcnow
from controller.informer.cache import Key
from controller.media import engine
from controller.media.isolate import MediaRunner, MediaStopped
from controller.observability import metrics as m
from controller.storage.clips import ObjectFact, file_sha256

SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Stopped(Exception):
    """The Project went away during the build: nothing was uploaded."""


@dataclass(frozen=True)
class Job:
    project: Key
    bucket: str
    key: str
    inputs_hash: str
    clips: tuple[ClipRef, ...]
    audio: AudioRef | None
    resolution: tuple[int, int] | None
    avoid_etag: str | None  # an object seen changed at the key: rebuild, do not adopt
    max_pixels: int = 1920 * 1080  # SCENE_OPERATOR_MAX_ASSEMBLY_PIXELS
    max_seconds: float = 600.0  # SCENE_OPERATOR_MAX_FILM_SECONDS


class AssemblyStorage(Protocol):
    """The part of the S3 clip store assembly uses (blocking calls, run in threads)."""

    def head(self, bucket: str, key: str) -> ObjectFact | None: ...

    def download(self, bucket: str, key: str, dest: Path) -> None: ...

    def put_clip(
        self, bucket: str, key: str, path: Path, *, metadata: dict[str, str]
    ) -> ObjectFact: ...


def build(
    job: Job,
    clips: AssemblyStorage,
    cap: int,
    tmp_dir: str,
    stop: threading.Event,
    media: MediaRunner,
) -> tuple[FinalVideo, str]:
    """Blocking: adopt the object at the key, or download, assemble (in a limited child
    process, killed if `stop` is set), probe, upload (verified by put_clip). Returns
    the record and how it was made."""
    s3 = m.S3_OPS
    fact = clips.head(job.bucket, job.key)
    s3.labels("head", "ok").inc()
    if fact is not None and fact.etag != job.avoid_etag:
        adopted = adoptable(job, fact)
        if adopted is not None:
            return adopted, "adopted"
    inputs = sum(c.size for c in job.clips) + (job.audio.size if job.audio else 0)
    if inputs >= cap:
        raise engine.AssemblyError(f"the clips and audio ({inputs} bytes) exceed the cap of {cap}")
    with tempfile.TemporaryDirectory(prefix="assembly-", dir=tmp_dir) as d:
        folder = Path(d)
        paths = []
        for i, c in enumerate(job.clips):
            if stop.is_set():
                raise Stopped
            path = folder / f"clip-{i:03d}.mp4"
            clips.download(c.bucket, c.key, path)
            s3.labels("get", "ok").inc()
            if SHA256.match(c.sha256) and file_sha256(path)[0] != c.sha256:
                raise engine.AssemblyError(f"clip s3://{c.bucket}/{c.key} changed in S3")
            paths.append(path)
        audio = None
        if job.audio is not None:
            audio = folder / "audio"
            clips.download(job.audio.bucket, job.audio.key, audio)
            s3.labels("get", "ok").inc()
        out = folder / "final.mp4"
        try:
            made = media.run(
                engine.assemble,
                paths,
                out,
                audio=audio,
                resolution=job.resolution,
                max_bytes=cap - inputs,
                max_pixels=job.max_pixels,
                max_seconds=job.max_seconds,
                stop=stop,
            )
        except MediaStopped as e:
            raise Stopped from e
        if stop.is_set():
            raise Stopped
        metadata = {
            "inputs-hash": job.inputs_hash,
            "duration-seconds": f"{made.duration_seconds:.3f}",
            "clips": str(len(job.clips)),
            "project": f"{job.project[0]}/{job.project[1]}",
        }
        fact = clips.put_clip(job.bucket, job.key, out, metadata=metadata)  # verified
        s3.labels("put", "ok").inc()
    return record_of(job, fact, made.duration_seconds), made.mode


def record_of(job: Job, fact: ObjectFact, duration: float) -> FinalVideo:
    assert fact.sha256 is not None
    return FinalVideo(
        bucket=job.bucket,
        s3_key=job.key,
        size=fact.size,
        etag=fact.etag,
        sha256=fact.sha256,
        duration_seconds=round(duration, 3),
        inputs_hash=job.inputs_hash,
        assembled_at=rfc3339(utcnow()),
    )


def adoptable(job: Job, fact: ObjectFact) -> FinalVideo | None:
    """An object at the key that this operator uploaded for these inputs (a restart
    between its upload and the status write): taken as it is."""
    meta = fact.metadata
    if meta.get("inputs-hash") != job.inputs_hash or not fact.sha256:
        return None
    try:
        duration = float(meta.get("duration-seconds", ""))
    except ValueError:
        return None
    return record_of(job, fact, duration)
