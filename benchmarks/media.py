"""Media work in its limited child: a 10 x 8 s film assembled at three sizes.

    .venv/bin/python benchmarks/media.py [--sizes 1280x720,1920x1080,3840x2160]

The ten clips come from the local renderer (H.264, 24 fps, 16:9 and 9:16 in turn, short
side 720), so every size is re-encoded (letterboxed). Each film is built by the
operator's own path (controller.assembly.build: downloads from a local fake store into
the scratch directory, the engine in a child under SCENE_OPERATOR_MEDIA_* limits, the
upload) and the script prints, per size: wall time, the peak RSS of this process (the
operator's side) and of the child, and the peak scratch disk used (sampled every 0.1 s).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

from controller.assembly.build import Job, build
from controller.assembly.plan import ClipRef
from controller.media.isolate import Limits, MediaRunner
from controller.providers.render import render_clip
from controller.storage.clips import ObjectFact

MiB = 1024 * 1024


class LocalStore:
    """S3 as a folder: what build() downloads from and uploads to."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def head(self, bucket: str, key: str) -> ObjectFact | None:
        return None

    def download(self, bucket: str, key: str, dest: Path) -> None:
        shutil.copyfile(self.root / key, dest)

    def put_clip(
        self, bucket: str, key: str, path: Path, *, metadata: dict[str, str]
    ) -> ObjectFact:
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        return ObjectFact(
            key=key, size=len(data), etag=sha[:32], sha256=sha, metadata=dict(metadata)
        )


def disk_used(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def own_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def one(size: str, clips: list[ClipRef], store: LocalStore, memory_mb: int) -> dict[str, object]:
    w, h = (int(x) for x in size.split("x"))
    job = Job(
        project=("bench", "film"), bucket="b", key=f"final-{size}.mp4", inputs_hash=size,
        clips=tuple(clips), audio=None, resolution=(w, h), avoid_etag=None,
        max_pixels=3840 * 2160, max_seconds=600.0,
    )  # fmt: skip
    runner = MediaRunner(Limits(memory_mb * MiB, 3600.0))
    scratch = Path(tempfile.mkdtemp(prefix="scene-operator-bench-"))
    peak, done = 0, threading.Event()

    rss = 0

    def sample() -> None:
        nonlocal peak, rss
        while not done.wait(0.1):
            peak = max(peak, disk_used(scratch))
            rss = max(rss, own_rss())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        record, how = build(job, store, 4096 * MiB, str(scratch), threading.Event(), runner)
    finally:
        done.set()
        sampler.join()
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "size": size,
        "mode": how,
        "seconds": round(time.perf_counter() - started, 1),
        "film_seconds": record.duration_seconds,
        "film_mib": round(record.size / MiB, 1),
        "operator_peak_rss_mib": round(rss / MiB),  # sampled during the build
        "child_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "scratch_peak_mib": round(peak / MiB, 1),
        "memory_limit_mib": memory_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1280x720,1920x1080,3840x2160")
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--memory-mb", type=int, default=1536, help="the child's RLIMIT_DATA")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scene-operator-bench-s3-") as root:
        store = LocalStore(Path(root))
        clips = []
        for i in range(args.clips):
            path = Path(root) / f"clip-{i:03d}.mp4"
            ratio = "16:9" if i % 2 == 0 else "9:16"
            render_clip(path, prompt=f"scene {i + 1}", sequence=i + 1,
                        duration_seconds=args.seconds, aspect_ratio=ratio, fps=24, height=720)  # fmt: skip
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            clips.append(ClipRef(i + 1, "b", path.name, sha, path.stat().st_size))
        for size in args.sizes.split(","):
            print(json.dumps(one(size, clips, store, args.memory_mb)), flush=True)


if __name__ == "__main__":
    main()
