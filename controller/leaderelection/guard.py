"""Work only while leading: a check right before every provider call, S3 call and API
write of the work queue, so a process that lost its Lease (e.g. frozen past its renew
deadline, then resumed) does nothing more, even in the instant before it exits.

The runtime is handed guarded edges (providers, clip store, and a KubeApi whose writes
are guarded) and a work queue that hands out no key before this process leads, so the
reconcile code itself does not change.

The fence: the calls that spend money or write objects (a provider create, an S3 PUT)
are sent only while this process's lease has at least `fence_seconds` left on its
monotonic clock (SCENE_OPERATOR_LEADER_ELECT_FENCE_SECONDS). A leader whose renewals are
failing stops sending them before its deadline, so one frozen or stalled near the end of
its lease does not create a job after its successor searched for it, or PUT an object
after its successor purged the prefix.
"""

from __future__ import annotations

import concurrent.futures
import functools
import inspect
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from controller.controllers.provider_registry import Providers
from controller.kube.errors import NotLeaderError
from controller.providers.base import ProviderError
from controller.queue.workqueue import WorkQueue
from controller.settings import Settings

# The calls behind the fence: a provider's create, the clip store's upload.
FENCED_PROVIDER = frozenset({"start"})
FENCED_STORE = frozenset({"put_clip"})


class Fence:
    """Does this process's lease have at least `seconds` left (monotonic)?"""

    def __init__(self, lease_left: Callable[[], float], seconds: float) -> None:
        self.lease_left = lease_left
        self.seconds = seconds

    def refusal(self, what: str) -> str | None:
        left = self.lease_left()
        if left >= self.seconds:
            return None
        return (
            f"{what}: not sent, this process's lease has {left:.1f} s left "
            f"(fence {self.seconds:g} s)"
        )


class LeaseTooShort(ProviderError):
    """A provider call the fence kept back. It was never sent, so nothing was paid: it
    answers like an HTTP refusal (a status code, not None): a create's attempt is given
    back instead of being searched for as a create that may have landed, a poll is
    tried again later."""

    def __init__(self, message: str) -> None:
        super().__init__("LeaseTooShort", message, retryable=True, status_code=0)


class FencedUpload(NotLeaderError):
    """An S3 PUT the fence kept back (a paid output stays kept and is tried again)."""


class Guarded:
    """A provider or the clip store whose methods first check `is_leader`, and the fence
    for the methods in `fenced`. Sync methods (the clip store's, run in I/O threads)
    check inside the thread, right before the call."""

    def __init__(
        self,
        inner: Any,
        is_leader: Callable[[], bool],
        what: str,
        *,
        fence: Fence | None = None,
        fenced: frozenset[str] = frozenset(),
    ) -> None:
        self._inner = inner
        self._is_leader = is_leader
        self._what = what
        self._fence = fence
        self._fenced = fenced

    def _check(self, method: str) -> None:
        if not self._is_leader():
            raise NotLeaderError(f"{self._what}.{method}: this process is not the leader")
        if self._fence is not None and method in self._fenced:
            refused = self._fence.refusal(f"{self._what}.{method}")
            if refused is not None:
                error = LeaseTooShort if method in FENCED_PROVIDER else FencedUpload
                raise error(refused)

    def _check_in_thread(self) -> None:
        """Right before an SDK call in the provider's own thread pool, where a create may
        have waited behind busy threads: every call there is behind the fence."""
        self._check("(in thread)")
        refused = self._fence.refusal(f"{self._what} (in thread)") if self._fence else None
        if refused is not None:
            raise LeaseTooShort(refused)

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
    def __init__(
        self, settings: Settings, is_leader: Callable[[], bool], fence: Fence | None = None
    ) -> None:
        super().__init__(settings)
        self._is_leader = is_leader
        self._fence = fence

    def video(self, name: str) -> Any:
        guarded = Guarded(
            super().video(name),
            self._is_leader,
            f"video provider {name}",
            fence=self._fence,
            fenced=FENCED_PROVIDER,
        )
        # Replicate's SDK is synchronous and runs in the provider's own thread pool.
        pool = getattr(guarded._inner, "_executor", None)
        if isinstance(pool, concurrent.futures.Executor) and not isinstance(pool, ThreadGuard):
            guarded._inner._executor = ThreadGuard(pool, guarded._check_in_thread)
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


# Every request of an upload (one PUT, or a multipart upload's parts and completion):
# a leader frozen mid-upload sends no more of it once its lease is short.
S3_WRITES = ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload")


def fence_s3_writes(client: Any, is_leader: Callable[[], bool], fence: Fence) -> None:
    """Check the guard and the fence in boto3's `before-send` of each upload request."""

    def check(**_: Any) -> None:
        refused = (
            "S3 upload: this process is not the leader"
            if not is_leader()
            else fence.refusal("S3 upload")
        )
        if refused is not None:
            raise FencedUpload(refused)

    for operation in S3_WRITES:
        client.meta.events.register(f"before-send.s3.{operation}", check)


def guarded_edges(settings: Settings, elector: Any, clips: Any) -> tuple[Guarded, GuardedProviders]:
    """The runtime's clip store and providers, behind the leadership guard and the fence
    (`elector`: a LeaderElector, or AlwaysLeader)."""
    fence = Fence(elector.lease_left, settings.leader_elect_fence_seconds)
    client = getattr(clips, "client", None)
    if client is not None and hasattr(client, "meta"):
        fence_s3_writes(client, elector.is_leader, fence)
    return (
        Guarded(clips, elector.is_leader, "clip store", fence=fence, fenced=FENCED_STORE),
        GuardedProviders(settings, elector.is_leader, fence),
    )
