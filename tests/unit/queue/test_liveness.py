"""Liveness means progress: /healthz fails while every worker is stuck and work waits."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request

import kopf
import pytest
from kopf._core.engines.probing import health_reporter

from controller.informer import handlers
from controller.queue.liveness import stall
from controller.queue.state import Kind
from tests.unit.harness import NS, Harness
from tests.unit.providers.fakes import hold_fetch

BASE = {"queued": 3, "busy": 4, "workers": 4, "last_progress": 100.0, "threshold": 60.0}


@pytest.mark.parametrize(
    ("change", "stalled"),
    [
        pytest.param({"now": 161.0}, True, id="all-busy-queued-quiet-past-threshold"),
        pytest.param({"now": 159.0}, False, id="quiet-under-threshold"),
        pytest.param({"now": 161.0, "queued": 0}, False, id="nothing-queued"),
        pytest.param({"now": 161.0, "busy": 3}, False, id="an-idle-worker-standby"),
        pytest.param({"now": 1e9, "threshold": 0.0}, False, id="check-off"),
    ],
)
def test_stall_decision(change: dict[str, float], stalled: bool) -> None:
    verdict = stall(**{**BASE, **change})  # type: ignore[arg-type]
    assert (verdict is not None) == stalled
    if verdict:
        assert "no progress for 61s" in verdict and "3 keys queued" in verdict


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_a_stuck_download_fails_healthz_and_progress_heals_it() -> None:
    """The runtime's own worker, on the fake clock, with one worker held in a download
    that does not end; /healthz is kopf's endpoint with the operator's probe."""
    h = Harness(workers=1, liveness_stall_seconds=60)
    port = free_port()

    async def go() -> None:
        registry = kopf.OperatorRegistry()
        handlers.register(registry, h.runtime)
        ready = asyncio.Event()
        server = asyncio.create_task(
            health_reporter(
                f"http://127.0.0.1:{port}/healthz",
                memo=kopf.Memo(),  # type: ignore[arg-type]
                indices={},
                registry=registry,
                settings=kopf.OperatorSettings(),
                ready_flag=ready,
            )
        )
        await ready.wait()
        get = lambda: asyncio.to_thread(healthz, port)  # noqa: E731

        release, fetching = hold_fetch(h.replicate)
        h.project()
        driving = asyncio.create_task(h.settle(seconds=300))
        await fetching.wait()
        h.runtime.queue.add((Kind.PROJECT, NS, "p"))  # work waits for the held worker
        # (kopf caches a good answer for 10 s of real time: the first GET is the stuck one)
        h.clock.t += 59
        assert h.runtime.stalled() is None
        h.clock.t += 2
        status, body = await get()
        assert status == 500, body
        release.set()
        await driving
        assert h.runtime.stalled() is None
        assert h.phases() == {"p-scene-001": "Completed", "p-scene-002": "Completed"}
        # A failed answer is not cached: the next GET looks again.
        status, body = await get()
        assert status == 200 and json.loads(body) == {"progress": "ok"}, body
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)

    asyncio.run(go())
