"""From a succeeded job to a local file that is surely the clip asked for (or an error).

The runtime calls `fetch_clip` between a job's success and the upload, and
`failed_fetch` to decide what a failure of it means for the attempt.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from controller.api.common import ErrorInfo
from controller.api.request import VideoRequest
from controller.api.vocabulary import Reason
from controller.media.probe import OutputRules, check_video, expected_seconds
from controller.providers.base import JobState, ProviderError, VideoProvider


async def fetch_clip(
    provider: VideoProvider,
    job_id: str,
    state: JobState,
    request: VideoRequest,
    dest: Path,
    rules: OutputRules,
    in_thread: Callable[..., Awaitable[Any]],
) -> JobState:
    """Write the job's output to `dest` and check it is a video of the length asked for
    (InvalidOutput otherwise). Returns the job state to remember: inline output (Veo's
    bytes) is on disk now and is not kept in memory; a later fetch asks again."""
    await provider.fetch(job_id, state, request, dest)
    await in_thread(check_video, dest, expected_seconds(request), rules)
    return dataclasses.replace(state, output_bytes=None)


def failed_fetch(e: ProviderError, failures: int, attempts: int, at: str) -> ErrorInfo | None:
    """None: fetch the same output again (it failed in transit; no new job). Otherwise the
    error that fails the attempt: output that is not the clip asked for, a permanent
    error, or `attempts` failed downloads. Its `retryable` is the error's own."""
    if e.reason != Reason.INVALID_OUTPUT and e.retryable and failures < attempts:
        return None
    message = (
        e.message if e.reason == Reason.INVALID_OUTPUT else f"output download failed: {e.message}"
    )
    return ErrorInfo(reason=e.reason, message=message, retryable=e.retryable, at=at)
