"""The generic worker loop: pop a key, run its reconciler, and decide what happens next.

The only place that requeues the key a pass ran (like controller-runtime's
reconcileHandler): a reconciler returns a `Result` (look again after `requeue_after`)
or raises; on an error the key is re-added with per-key exponential backoff
(`WorkQueue.add_rate_limited`), which a success resets (`forget`). A pass never adds its
own key; it may make *other* keys due (a Project's drift check, the Project of a Scene
that changed, parked Scenes woken by `after_each`) through the intake. Metrics and the
log context live here too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from controller.api.common import Key
from controller.observability import metrics as m
from controller.queue.state import Item, Kind, Result, TransientError
from controller.queue.workqueue import WorkQueue

log = logging.getLogger("scene_operator")

Reconciler = Callable[[Key], Awaitable[Result]]


class Worker:
    def __init__(
        self,
        queue: WorkQueue,
        reconcilers: dict[Kind, Reconciler],
        after_each: Callable[[], None] = lambda: None,
    ) -> None:
        self.queue = queue
        self.reconcilers = reconcilers
        self.after_each = after_each  # e.g. wake Scenes a finished pass made room for
        # Awaited before the first key: the first LIST has filled the cache (informer/listing.py).
        self.ready: Callable[[], Awaitable[None]] | None = None

    async def run(self, workers: int) -> None:
        tasks = [asyncio.create_task(self._loop()) for _ in range(workers)]
        timer = asyncio.create_task(self.queue.run_timer())
        try:
            await asyncio.gather(timer, *tasks)
        finally:
            self.queue.shutting_down = True
            for t in (timer, *tasks):
                t.cancel()

    async def _loop(self) -> None:
        if self.ready is not None:
            await self.ready()
        while True:
            item: Item = await self.queue.get()  # type: ignore[assignment]
            await self.process(item)

    async def process(self, item: Item) -> None:
        kind, ns, name = item
        started = time.perf_counter()
        outcome = "ok"
        context = {"kind": str(kind), "namespace": ns, "object": name}
        try:
            result = await self.reconcilers[kind]((ns, name))
            self.queue.forget(item)
            if result.requeue_after is not None:
                self.queue.add_after(item, result.requeue_after, urgent=result.urgent)
        except asyncio.CancelledError:
            raise
        except TransientError as e:
            outcome = "error"
            delay = self.queue.add_rate_limited(item, at_least=e.retry_after)
            log.warning(str(e), extra={**context, "retry_in": round(delay, 1)})
        except Exception as e:  # a bug or an outage: log, back off, never crash the loop
            outcome = "error"
            delay = self.queue.add_rate_limited(item)
            log.exception(
                "reconcile failed", extra={**context, "error": str(e), "retry_in": round(delay, 1)}
            )
        finally:
            self.queue.done(item)
            self.after_each()
            m.RECONCILES.labels(str(kind), outcome).inc()
            m.RECONCILE_SECONDS.labels(str(kind)).observe(time.perf_counter() - started)
            m.QUEUE_DEPTH.set(len(self.queue))
