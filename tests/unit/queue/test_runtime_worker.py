"""The worker loop owns requeues: a reconciler's Result, per-key exponential backoff on
errors (WorkQueue.add_rate_limited), forgotten after a success; and the intake skips the
echoes of the operator's own writes."""

from __future__ import annotations

import asyncio

import pytest

from controller.queue.state import Kind, Result, TransientError
from controller.queue.worker import Worker
from controller.queue.workqueue import (
    ERROR_BACKOFF_BASE_SECONDS,
    ERROR_BACKOFF_MAX_SECONDS,
    WorkQueue,
)
from tests.unit.harness import NS, Harness

ITEM = (Kind.SCENE, NS, "s")


def test_errors_back_off_exponentially_per_key_and_a_success_forgets() -> None:
    now = [0.0]
    q = WorkQueue(clock=lambda: now[0], rand=lambda: 1.0)  # no jitter: the upper bound
    delays = [q.add_rate_limited(ITEM) for _ in range(8)]
    expected = [min(ERROR_BACKOFF_BASE_SECONDS * 2**n, ERROR_BACKOFF_MAX_SECONDS) for n in range(8)]
    assert delays == expected and delays[-1] == ERROR_BACKOFF_MAX_SECONDS
    assert q.failures(ITEM) == 8 and q.failures((Kind.SCENE, NS, "other")) == 0
    q.forget(ITEM)
    assert q.failures(ITEM) == 0 and q.add_rate_limited(ITEM) == ERROR_BACKOFF_BASE_SECONDS
    assert q.add_rate_limited(ITEM, at_least=45.0) == 45.0  # a Retry-After is honoured


def test_equal_jitter_keeps_the_delay_within_half_and_all_of_the_backoff() -> None:
    q = WorkQueue(clock=lambda: 0.0, rand=lambda: 0.0)
    q.add_rate_limited(ITEM)
    assert q.add_rate_limited(ITEM) == ERROR_BACKOFF_BASE_SECONDS  # 2 x base, halved


@pytest.mark.parametrize(
    ("outcome", "due", "failures"),
    [
        pytest.param(Result(requeue_after=7.0), 7.0, 0, id="result-requeue-after"),
        pytest.param(Result(), None, 0, id="result-done"),
        pytest.param(TransientError("upload failed", retry_after=9.0), 9.0, 1, id="transient"),
        pytest.param(RuntimeError("a bug"), ERROR_BACKOFF_BASE_SECONDS, 1, id="error"),
    ],
)
def test_the_worker_is_the_only_place_that_requeues(
    outcome: Result | Exception, due: float | None, failures: int
) -> None:
    now = [100.0]
    q = WorkQueue(clock=lambda: now[0], rand=lambda: 1.0)
    q.add_rate_limited(ITEM)  # an earlier failure, due at 100.5
    q.move_due(101.0)
    calls: list[tuple[str, str]] = []
    woken: list[bool] = []

    async def reconcile(key: tuple[str, str]) -> Result:
        calls.append(key)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    worker = Worker(q, {Kind.SCENE: reconcile}, after_each=lambda: woken.append(True))

    async def go() -> None:
        item = await q.get()
        await worker.process(item)  # type: ignore[arg-type]

    asyncio.run(go())
    assert calls == [(NS, "s")] and woken == [True]
    # A success forgets the earlier failure; an error adds one (the second in a row).
    assert q.failures(ITEM) == (0 if failures == 0 else 2)
    next_due = q.next_due()
    if due is None:
        assert next_due is None and len(q) == 0
    elif isinstance(outcome, RuntimeError):
        assert next_due == 100.0 + 2 * ERROR_BACKOFF_BASE_SECONDS
    else:
        assert next_due == 100.0 + due


def test_echoes_of_own_writes_and_project_status_writes_queue_nothing() -> None:
    h = Harness()

    async def go() -> None:
        h.project(scenes={"count": 1, "durationSeconds": 4}, generateVideos=False)
        await h.settle(seconds=5)

    asyncio.run(go())
    q = h.runtime.queue
    scene = h.scene("p-scene-001")
    h.runtime.on_scene_event("MODIFIED", scene)  # the echo of the last write
    project = h.kube.obj("projects", NS, "p")
    assert project is not None
    h.runtime.on_project_event("MODIFIED", project)
    assert len(q) == 0
    # A Project status change is news for the Project only, not for its Scenes.
    changed = {**project, "metadata": {**project["metadata"], "resourceVersion": "999"}}
    h.runtime.on_project_event("MODIFIED", changed)
    assert list(q._lanes[1]) == [(Kind.PROJECT, NS, "p")]
    # A token is something Scenes read: they are queued too.
    q._lanes[1].clear()
    q._dirty.clear()
    meta = {**changed["metadata"], "resourceVersion": "1000"}
    meta["annotations"] = {"video.scene-operator.io/retry": "t1"}
    h.runtime.on_project_event("MODIFIED", {**changed, "metadata": meta})
    assert (Kind.SCENE, NS, "p-scene-001") in q._dirty
