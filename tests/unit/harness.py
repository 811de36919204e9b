"""The real Runtime wired to fakes, driven step by step on a fake clock.

Watch events are buffered and delivered between reconciles, as kopf delivers them after
the write that caused them; the queue's delays run on the fake clock, and so do the
decisions' `now`, so minutes of backoff pass in microseconds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
from typing import Any

from prometheus_client import REGISTRY

from controller.api import vocabulary as v
from controller.app import Runtime
from controller.queue.state import Kind
from controller.queue.workqueue import WorkQueue
from controller.settings import Settings
from tests.unit.kube.fakes import Body, FakeKube
from tests.unit.providers.fakes import FakeFinder, FakeProviders, FakeVideo
from tests.unit.storage.fakes import FakeClips

NS = "team"
T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
FAST = {
    "reads_per_second_replicate": 1e6,
    "reads_per_second_veo": 1e6,
    "creates_per_second_replicate": 1e6,
    "creates_per_second_veo": 1e6,
    "poll_initial_seconds": 5.0,
    "orphan_search_after_seconds": 30.0,
    "bucket": "clips",
    "s3_prefix": "videos",
    "workers": 1,
    "io_threads": 2,
}


class Killed(BaseException):
    """The operator process is killed (SIGKILL): nothing after this point runs."""


def metric(name: str, **labels: str) -> float:
    """A counter's current value (counters are process-wide: compare before and after)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def monotonic(self) -> float:
        return self.t

    def utcnow(self) -> dt.datetime:
        return T0 + dt.timedelta(seconds=self.t)


class Harness:
    def __init__(self, **settings: Any) -> None:
        self.clock = Clock()
        self.wall_skew = 0.0  # how far this operator process's wall clock is off
        self.kube = FakeKube()
        self.clips = FakeClips()
        self.replicate = FakeFinder(name="replicate", now=self.clock.utcnow)
        self.veo = FakeVideo(name="veo", now=self.clock.utcnow)
        self.providers = FakeProviders(videos={"replicate": self.replicate, "veo": self.veo})
        self.settings = Settings(**{**FAST, **settings})
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        self.runtime = self._new_runtime()
        self.pending: list[tuple[str, str, Body]] = []
        self.kube.watch(lambda t, plural, body: self.pending.append((t, plural, body)))

    def _new_runtime(self) -> Runtime:
        return Runtime(
            settings=self.settings,
            api=self.kube,
            clips=self.clips,
            providers=self.providers,
            queue=WorkQueue(clock=self.clock.monotonic),
            pool=self.pool,
            clock=lambda: self.clock.utcnow() + dt.timedelta(seconds=self.wall_skew),
        )

    def restart(self, wall_skew: float = 0.0) -> None:
        """A new operator process: empty cache, memory and queue; a re-list of everything.
        `wall_skew`: its wall clock is that many seconds ahead (negative: behind) of the
        providers' (and of the fake time its queue runs on)."""
        self.pending.clear()
        self.wall_skew = wall_skew
        self.runtime = self._new_runtime()
        for (plural, _, _), body in sorted(self.kube.objects.items()):
            self.pending.append(("ADDED", plural, dict(body)))

    # ------------------------------------------------------------------ driving
    def deliver(self) -> None:
        events, self.pending = self.pending, []
        for type_, plural, body in events:
            if plural == v.SCENE_PLURAL:
                self.runtime.on_scene_event(type_, body)
            elif plural == v.PROJECT_PLURAL:
                self.runtime.on_project_event(type_, body)

    async def step(self) -> bool:
        """Deliver watch events and reconcile one ready key; False if none was ready."""
        self.deliver()
        q = self.runtime.queue
        q.move_due(self.clock.t)
        if not len(q):
            return False
        item = await q.get()
        await self.runtime.worker.process(item)  # type: ignore[arg-type]
        self.deliver()
        return True

    async def together(self, count: int) -> list[tuple[str, str, str]]:
        """Take the next `count` ready keys and reconcile them concurrently (as workers
        do); a fake's hook can hold one of them at an await to interleave the others."""
        self.deliver()
        q = self.runtime.queue
        q.move_due(self.clock.t)
        items = [await q.get() for _ in range(count)]
        await asyncio.gather(*(self.runtime.worker.process(i) for i in items))  # type: ignore[arg-type]
        self.deliver()
        return items  # type: ignore[return-value]

    async def settle(self, seconds: float = 0.0, max_steps: int = 2000) -> None:
        """Reconcile until nothing is ready, letting up to `seconds` of fake time pass
        (delayed keys fire as their time comes)."""
        deadline = self.clock.t + seconds
        for _ in range(max_steps):
            if await self.step():
                continue
            due = self.runtime.queue.next_due()
            if due is None or due > deadline:
                self.clock.t = max(self.clock.t, deadline)
                return
            self.clock.t = max(self.clock.t, due)
        raise AssertionError(f"no rest after {max_steps} steps")

    def run(self, coro: Any) -> Any:
        return asyncio.run(coro)

    # ------------------------------------------------------------------ objects
    def project(self, name: str = "p", **spec: Any) -> Body:
        base: dict[str, Any] = {
            "prompt": "a lighthouse",
            "scenes": {"count": 2, "durationSeconds": 4},
            "planner": {"provider": "local"},
            "video": {"provider": "replicate"},
            "generateVideos": True,
            "retry": {"limit": 3, "backoff": {"initialSeconds": 10, "factor": 2, "maxSeconds": 60}},
            # The fake clips are not videos; the final video is tested in test_assembly_*.
            "assembly": {"enabled": False},
        }
        body = {
            "apiVersion": v.API_VERSION,
            "kind": v.PROJECT_KIND,
            "metadata": {"name": name, "namespace": NS},
            "spec": {**base, **spec},
        }
        return self.kube.put(v.PROJECT_PLURAL, body)

    def scene(self, name: str) -> Body:
        body = self.kube.obj(v.SCENE_PLURAL, NS, name)
        assert body is not None, f"no scene {name}"
        return body

    def status(self, name: str) -> dict[str, Any]:
        return self.scene(name).get("status") or {}

    def project_status(self, name: str = "p") -> dict[str, Any]:
        body = self.kube.obj(v.PROJECT_PLURAL, NS, name)
        assert body is not None
        return body.get("status") or {}

    def scene_names(self) -> list[str]:
        return sorted(n for (p, _, n) in self.kube.objects if p == v.SCENE_PLURAL)

    def phases(self) -> dict[str, str]:
        return {n: self.status(n).get("phase", "") for n in self.scene_names()}

    def queued(self, kind: Kind, name: str) -> bool:
        return (kind, NS, name) in self.runtime.queue._dirty
