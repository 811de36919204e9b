"""Real MP4 bytes for the protocol servers, rendered from what the provider was asked."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from controller.providers.render import probe_clip, render_clip


def mp4(prompt: str, duration: int, aspect: str, sequence: int = 1) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "clip.mp4"
        render_clip(
            path, prompt=prompt, sequence=sequence, duration_seconds=duration, aspect_ratio=aspect
        )
        return path.read_bytes()


def replicate_video(job: dict[str, Any]) -> bytes:
    inp = job.get("input") or {}
    return mp4(
        str(inp.get("prompt", "?")),
        int(inp.get("duration", 1)),
        str(inp.get("aspect_ratio", "16:9")),
    )


def veo_video(op: dict[str, Any]) -> bytes:
    params = op.get("parameters") or {}
    prompt = (op.get("instances") or [{}])[0].get("prompt", "?")
    return mp4(
        str(prompt), int(params.get("durationSeconds", 1)), str(params.get("aspectRatio", "16:9"))
    )


def probe_s3_clip(s3: Any, key: str) -> Any:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "clip.mp4"
        s3.client.download_file(s3.bucket, key, str(path))
        return probe_clip(path)
