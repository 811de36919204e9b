"""The operator's watch events straight to the intake, past kopf's per-event machinery.

kopf hands every watch event of a resource to `processing.process_resource_event`, which
builds a body view, three loggers, a patch, an error throttler and the handler causes
and kwargs, then calls the handlers and applies their (always empty) patch: about 8 % of
the operator's CPU in the medium benchmark, for two event handlers that only cache and
queue. For the operator's own resources the event goes to its handler directly; kopf's
watching, per-object ordering and re-listing are unchanged, and any other resource takes
kopf's path. kopf is pinned to 1.45.x (pyproject); tests/unit/informer/test_kopf_fastpath.py
drives the processor as kopf binds it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

EventHandler = Callable[[Mapping[str, Any]], None]  # a raw watch event: type, object


def install(handlers: Mapping[tuple[str, str], EventHandler]) -> None:
    """Route the events of each (group, plural) in `handlers` to its handler. Called
    before kopf starts its watchers (it binds the processor when it spawns them)."""
    from kopf._core.reactor import processing

    original = getattr(processing.process_resource_event, "scene_operator_original", None)
    original = original or processing.process_resource_event

    async def process_resource_event(*, resource: Any, raw_event: Any, **kwargs: Any) -> Any:
        handler = handlers.get((resource.group, resource.plural))
        if handler is None:
            return await original(resource=resource, raw_event=raw_event, **kwargs)  # kopf's
        # kopf's readiness: other resources wait until every resource has been listed.
        operator_indexed, resource_indexed = (
            kwargs.get("operator_indexed"),
            kwargs.get("resource_indexed"),
        )
        if operator_indexed is not None and resource_indexed is not None:
            await operator_indexed.drop_toggle(resource_indexed)
        handler(raw_event)
        return None  # nothing patched (kopf's consistency wait is for its own patches)

    process_resource_event.scene_operator_original = original  # type: ignore[attr-defined]
    processing.process_resource_event = process_resource_event  # type: ignore[assignment]
