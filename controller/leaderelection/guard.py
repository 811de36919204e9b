"""Work only while leading: a check right before every provider call, S3 call and API
write of the work queue, so a process that lost its Lease (e.g. frozen past its renew
deadline, then resumed) does nothing more, even in the instant before it exits.

The runtime is handed guarded edges (providers, clip store, and a KubeApi whose writes
are guarded) and a work queue that hands out no key before this process leads, so the
reconcile code itself does not change.
"""

from __future__ import annotations

import concurrent.futures
import functools
import inspect
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from controller.controllers.provider_registry import Providers
from controller.kube.errors import NotLeaderError
from controller.queue.workqueue import WorkQueue
from controller.settings import Settings


class Guarded:
    """A provider or the clip store whose methods first check `is_leader`. Sync methods
    (the clip store's, run in I/O threads) check inside the thread, right before the call."""

    def __init__(self, inner: Any, is_leader: Callable[[], bool], what: str) -> None:
        self._inner = inner
        self._is_leader = is_leader
        self._what = what

    def _check(self, method: str) -> None:
        if not self._is_leader():
            raise NotLeaderError(f"{self._what}.{method}: this process is not the leader")

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr
        if inspect.iscoroutinefunction(attr):

            @functools.wraps(attr)
            async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                self._check(name)
                return await attr(*args, **kwargs)

            return guarded_async

        @functools.wraps(attr)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            self._check(name)
            return attr(*args, **kwargs)

        return guarded


class ThreadGuard(concurrent.futures.Executor):
    """A provider's own thread pool, checking leadership in the thread right before each
    call: a call queued behind busy threads (or handed over just before the process was
    frozen) is not sent once the process no longer leads."""

    def __init__(self, inner: concurrent.futures.Executor, check: Callable[[], None]) -> None:
        self._inner = inner
        self._check = check

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        def guarded() -> Any:
            self._check()
            return fn(*args, **kwargs)

        return self._inner.submit(guarded)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._inner.shutdown(wait=wait, cancel_futures=cancel_futures)


class GuardedProviders(Providers):
    def __init__(self, settings: Settings, is_leader: Callable[[], bool]) -> None:
        super().__init__(settings)
        self._is_leader = is_leader

    def video(self, name: str) -> Any:
        guarded = Guarded(super().video(name), self._is_leader, f"video provider {name}")
        # Replicate's SDK is synchronous and runs in the provider's own thread pool.
        pool = getattr(guarded._inner, "_executor", None)
        if isinstance(pool, concurrent.futures.Executor) and not isinstance(pool, ThreadGuard):
            guarded._inner._executor = ThreadGuard(pool, lambda: guarded._check("(in thread)"))
        return guarded

    def planner(self, name: str) -> Any:
        return Guarded(super().planner(name), self._is_leader, f"planner {name}")


class LeaderGatedQueue(WorkQueue):
    """The work queue of a standby: watch events keep adding keys (deduplicated, so a
    take-over finds them all queued), but no worker gets one until this process leads.
    The workers themselves start with the process, as without leader election (kopf
    treats tasks created after its start as its own and cancels them when it stops)."""

    def __init__(self, wait_leading: Callable[[], Awaitable[None]]) -> None:
        super().__init__()
        self._wait_leading = wait_leading

    async def get(self) -> Hashable:
        await self._wait_leading()
        return await super().get()
