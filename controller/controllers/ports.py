"""The edges the runtime talks to, as small Protocols, so a unit test can pass fakes.

Production passes `controller.kube.client.KubeApi`, `controller.storage.clips.ClipStore` and
`controller.providers.registry.Providers`; nothing here is I/O itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from controller.providers.base import Planner, VideoProvider
from controller.storage.clips import ObjectFact

T = TypeVar("T")
Body = dict[str, Any]


class KubeClient(Protocol):
    """The part of the Kubernetes API the runtime uses (see controller/kube/client.py)."""

    async def get(self, plural: str, namespace: str, name: str) -> Body | None: ...

    async def get_crd(self, name: str) -> Body | None: ...

    async def list(
        self, plural: str, namespace: str, *, label_selector: str | None = None
    ) -> list[Body]: ...

    async def list_with_version(self, plural: str, namespace: str) -> tuple[list[Body], str]: ...

    def list_pages(self, plural: str, namespace: str) -> AsyncIterator[tuple[list[Body], str]]: ...

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
