"""The body of a core/v1 Event the operator posts (pure: built here, sent by kube.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from controller.api import vocabulary as v
from controller.api.naming import event_name

_STAMP = "%Y-%m-%dT%H:%M:%SZ"


def event_body(
    obj: dict[str, Any],
    *,
    reason: str,
    message: str,
    type_: str = "Normal",
    component: str = v.MANAGER,
    count: int = 1,
    first: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """An Event about `obj`; `count` and `first` (its first occurrence) describe a batch of
    the same occurrences. The message is cut at 1 kB, as the API server's limit asks."""
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace", "default")
    stamp = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime(_STAMP)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": event_name(meta.get("name") or "x", uuid.uuid4().hex[:12]),
            "namespace": namespace,
        },
        "involvedObject": {
            "apiVersion": obj.get("apiVersion", v.API_VERSION),
            "kind": obj.get("kind", ""),
            "name": meta.get("name", ""),
            "namespace": namespace,
            "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        },
        "reason": reason,
        "message": message[:1024],
        "type": type_,
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": first.astimezone(dt.UTC).strftime(_STAMP) if first else stamp,
        "lastTimestamp": stamp,
        "count": count,
    }
