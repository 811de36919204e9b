"""Reads only when they can tell something: a Replicate job started by this process is
read after its webhook, or when the safety-net poll is due, and not on every other pass
of its Scene (a watch event, a Project change, a retry of a failed write).

`PushedJobs` wraps the provider and is what the runtime polls; a pass that is not due
gets "still running" without a request. A job this process did not start (recorded
before a restart, when its webhook may have been lost) is read at first sight.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from controller.api.request import VideoRequest
from controller.providers.base import JobState, JobStatus

FORGET_AFTER = 7200.0  # predictions time out after 30 minutes; entries older are dropped
RECORDING_WINDOW = 60.0  # a job started this recently may not be in its Scene's status yet


_OWN = frozenset(
    {"inner", "poll_seconds", "clock", "skipped", "_due", "_pushed", "_started", "_creating"}
)


class PushedJobs:
    def __init__(
        self,
        inner: Any,
        poll_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.poll_seconds = poll_seconds
        self.clock = clock
        self._due: dict[str, float] = {}  # job id -> when it may be read without a webhook
        self._pushed: set[str] = set()  # webhooks arrived since the job was last read
        self._started: dict[str, float] = {}  # job id -> when this process started it
        self._creating = 0  # creates sent and not answered yet
        self.skipped = 0

    def __getattr__(self, name: str) -> Any:  # name, default_model, fetch, find_job, ...
        return getattr(self.inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # The gate's own state stays here; anything else is the provider's (the leader
        # guard swaps the provider's thread pool through this wrapper).
        if name in _OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self.inner, name, value)

    async def start(self, request: VideoRequest) -> str:
        self._creating += 1
        try:
            job_id = str(await self.inner.start(request))
        finally:
            self._creating -= 1
        now = self.clock()
        self._due = {j: due for j, due in self._due.items() if due > now - FORGET_AFTER}
        self._started = {j: t for j, t in self._started.items() if t > now - RECORDING_WINDOW}
        self._due[job_id] = now + self.poll_seconds
        self._started[job_id] = now
        return job_id

    async def poll(self, job_id: str, request: VideoRequest) -> JobState:
        due = self._due.get(job_id)
        if job_id in self._pushed:
            # Taken before the read: a webhook arriving during it is read by the next pass.
            self._pushed.discard(job_id)
        elif due is not None and self.clock() < due:
            self.skipped += 1
            return JobState(status=JobStatus.RUNNING)  # its webhook, or the net, will tell
        state: JobState = await self.inner.poll(job_id, request)
        if state.status == JobStatus.RUNNING:
            self._due[job_id] = self.clock() + self.poll_seconds
        else:
            self._due.pop(job_id, None)
        return state

    def started_here(self, job_id: str) -> bool:
        """Started by this process a moment ago, or maybe by a create not answered yet:
        its id may be on its way to status."""
        started = self._started.get(job_id)
        recent = started is not None and self.clock() - started < RECORDING_WINDOW
        return recent or self._creating > 0

    def completed(self, job_id: str) -> None:
        """A verified webhook said the job is done: its next poll reads."""
        self._pushed.add(job_id)
