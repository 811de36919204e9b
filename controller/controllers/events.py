"""Kubernetes Events, each also logged as one JSON line and counted."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

from controller.api import vocabulary as v
from controller.api.text import bound
from controller.controllers.ports import Body, KubeClient
from controller.controllers.project.series import ROUTINE, SERIES_SECONDS, Series
from controller.decide.scene import Event
from controller.decide.timeutil import utcnow
from controller.informer.cache import Key, key_of, project_of_scene
from controller.observability import metrics as m
from controller.settings import Settings

log = logging.getLogger("scene_operator")

# The API client keeps 1,024 characters of an Event's message; cut here first, so a long
# provider text keeps its tail (what failed) and says that it was cut.
EVENT_MESSAGE_LIMIT = 1024


class Recorder:
    def __init__(
        self,
        settings: Settings,
        api: KubeClient,
        *,
        wake: Callable[[Key, float], None] = lambda key, delay: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.api = api
        self.wake = wake  # a Project reconcile after `delay`: it posts the due batches
        self.clock = clock
        self.series = Series()

    async def post(self, body: Body, reason: str, message: str, type_: str = "Normal") -> None:
        m.EVENTS.labels(reason).inc()
        meta = body.get("metadata", {})
        log.log(
            logging.WARNING if type_ == "Warning" else logging.INFO,
            message,
            extra={
                "namespace": meta.get("namespace"),
                "object": meta.get("name"),
                "kind": body.get("kind"),
                "reason": reason,
            },
        )
        mode = self.settings.scene_events
        if type_ == "Normal" and body.get("kind") == v.SCENE_KIND:
            if mode == "warnings":
                return
            if mode == "project" and reason in ROUTINE:
                project = project_of_scene(body)
                name = str(meta.get("name", ""))
                if self.series.add(project, reason, name, message, utcnow(), self.clock()):
                    self.wake(project, SERIES_SECONDS)
                return
        await self._send(body, reason, message, type_)

    async def _send(
        self,
        body: Body,
        reason: str,
        message: str,
        type_: str,
        *,
        count: int = 1,
        first: dt.datetime | None = None,
    ) -> None:
        try:
            note = bound(message, EVENT_MESSAGE_LIMIT)
            await self.api.post_event(
                body, reason=reason, message=note, type_=type_, count=count, first=first
            )
        except Exception as e:  # Events are best effort
            log.warning("event not posted", extra={"reason": reason, "error": str(e)})

    async def post_all(self, body: Body, events: tuple[Event, ...]) -> None:
        for ev in events:
            await self.post(body, ev.reason, ev.message, ev.type)

    async def flush(self, project: Body, *, everything: bool = False) -> None:
        """Post the Project's batches of routine Scene Events that are due (all of them
        with `everything`: the Project has no work left, or is going away)."""
        for reason, batch in self.series.due(key_of(project), self.clock(), everything=everything):
            message = batch.message(reason)
            await self._send(
                project, reason, message, "Normal", count=len(batch.scenes), first=batch.first
            )

    def forget(self, project: Key) -> None:
        self.series.forget(project)
