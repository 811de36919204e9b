"""The edges the runtime talks to, and what its collaborators ask of each other, as
small Protocols: each collaborator receives only the ports it uses, and a unit test can
pass fakes.

Production passes `controller.kube.client.KubeApi`, `controller.storage.clips.ClipStore` and
`controller.controllers.provider_registry.Providers` for the edges; controller/app.py wires the rest.
Nothing here is I/O itself.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import datetime as dt
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from controller.api.common import Body, Key
from controller.api.scene import SceneStatus
from controller.decide.job_durations import Estimate
from controller.decide.scene import Event
from controller.providers.base import Planner, VideoProvider
from controller.queue.state import Kind
from controller.storage.clips import ObjectFact

T = TypeVar("T")


class KubeClient(Protocol):
    """The part of the Kubernetes API the runtime uses (see controller/kube/client.py)."""

    async def get(self, plural: str, namespace: str, name: str) -> Body | None: ...

    async def get_crd(self, name: str) -> Body | None: ...

    async def list(
        self, plural: str, namespace: str, *, label_selector: str | None = None
    ) -> builtins.list[Body]: ...

    async def list_with_version(
        self, plural: str, namespace: str
    ) -> tuple[builtins.list[Body], str]: ...

    def list_pages(
        self, plural: str, namespace: str
    ) -> AsyncIterator[tuple[builtins.list[Body], str]]: ...

    async def create(self, plural: str, namespace: str, body: Body) -> Body: ...

    async def patch_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status: dict[str, Any],
        *,
        resource_version: str | None = None,
    ) -> Body: ...

    async def patch_metadata(
        self, plural: str, namespace: str, name: str, metadata: dict[str, Any]
    ) -> Body: ...

    async def post_event(
        self,
        obj: Body,
        *,
        reason: str,
        message: str,
        type_: str = "Normal",
        count: int = 1,
        first: dt.datetime | None = None,
    ) -> None: ...


class ClipStorage(Protocol):
    """The part of the S3 clip store the runtime uses (blocking calls, run in threads)."""

    def head(self, bucket: str, key: str) -> ObjectFact | None: ...

    def put_clip(
        self, bucket: str, key: str, path: Path, *, metadata: dict[str, str]
    ) -> ObjectFact: ...

    def list_prefix(self, bucket: str, prefix: str) -> dict[str, ObjectFact]: ...

    def delete_prefix(self, bucket: str, prefix: str) -> int: ...

    def download(self, bucket: str, key: str, dest: Path) -> None: ...
    def content_sha256(self, bucket: str, key: str) -> str | None: ...

    def bucket_problem(self, bucket: str) -> str | None: ...


class ProviderRegistry(Protocol):
    def video(self, name: str) -> VideoProvider: ...

    def planner(self, name: str) -> Planner: ...


class Threads:
    """Blocking calls (boto3, SDKs, rendering) run in one bounded pool."""

    def __init__(self, pool: concurrent.futures.ThreadPoolExecutor) -> None:
        self.pool = pool

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, lambda: fn(*args, **kwargs))


# ---------------------------------------------------------------------- between collaborators
class EventSink(Protocol):
    """Kubernetes Events on an object (controller/controllers/events.py: Recorder)."""

    async def post(self, body: Body, reason: str, message: str, type_: str = "Normal") -> None: ...

    async def post_all(self, body: Body, events: tuple[Event, ...]) -> None: ...


class SceneStatusWriter(Protocol):
    """A Scene's status merge patch (controllers/scene/status_writer.py); with the
    precondition, False on a stale cache (the fresh object is cached)."""

    async def write(self, body: Body, new: SceneStatus, *, precondition: bool = True) -> bool: ...


class Limiter(Protocol):
    async def acquire(self) -> None: ...

    def slow_down(self, seconds: float | None) -> None: ...


class RateLimits(Protocol):
    """One limiter per provider for its polls (`reads`) and its creates (`creates`)."""

    def limiter(self, op: str, provider: str) -> Limiter: ...


class JobDurations(Protocol):
    """How long recent jobs ran, per provider and model (controllers/job_durations.py)."""

    def record(self, provider: str, model: str, seconds: float) -> None: ...

    def estimate(self, provider: str, model: str) -> Estimate | None: ...


class SceneCache(Protocol):
    """The cache as the Scene pass feeds it: an object it wrote or read, one found gone."""

    def cache_scene(self, body: Body) -> None: ...

    def drop_scene(self, key: Key) -> None: ...


class Enqueue(Protocol):
    """Make *another* object's key due after `delay` seconds (a Project's drift check).
    A pass never requeues its own key this way: it returns a Result (queue/worker.py)."""

    def __call__(self, kind: Kind, key: Key, delay: float) -> None: ...


class Reservations(Protocol):
    """Job slots held for pending-marker writes (controllers/capacity.py: Capacity)."""

    @property
    def reserved(self) -> Mapping[Key, tuple[str, Key]]: ...

    def reserve(self, scene: Key, provider: str, project: Key) -> bool: ...

    def release(self, scene: Key, *, started: bool) -> None: ...
