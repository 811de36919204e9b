"""Kubernetes Events, each also logged as one JSON line and counted."""

from __future__ import annotations

import logging

from controller import metrics as m
from controller import vocabulary as v
from controller.reconcile.scene import Event
from controller.runtime.ports import Body, KubeClient
from controller.settings import Settings
from controller.text import bound

log = logging.getLogger("scene_operator")

# The API client keeps 1,024 characters of an Event's message; cut here first, so a long
# provider text keeps its tail (what failed) and says that it was cut.
EVENT_MESSAGE_LIMIT = 1024


class Recorder:
    def __init__(self, settings: Settings, api: KubeClient) -> None:
        self.settings = settings
        self.api = api

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
        if (
            type_ == "Normal"
            and body.get("kind") == v.SCENE_KIND
            and self.settings.scene_events == "warnings"
        ):
            return
        try:
            note = bound(message, EVENT_MESSAGE_LIMIT)
            await self.api.post_event(body, reason=reason, message=note, type_=type_)
        except Exception as e:  # Events are best effort
            log.warning("event not posted", extra={"reason": reason, "error": str(e)})

    async def post_all(self, body: Body, events: tuple[Event, ...]) -> None:
        for ev in events:
            await self.post(body, ev.reason, ev.message, ev.type)
