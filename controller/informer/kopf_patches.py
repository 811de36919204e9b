"""Every change the operator makes to kopf's private modules, in one place.

kopf's public API has no hook for these, so each one replaces or subclasses something
in `kopf._…`; they are written against kopf 1.45.x (pinned in pyproject.toml), and
`check_version` refuses any other series at start-up instead of misbehaving silently.
Each is idempotent and tested in tests/unit/informer/ against kopf's own code:

- `install_routes`: a restarted API server answers the operator's CRD routes with a bare
  "404 page not found" for a moment (it accepts connections before it has installed
  them). kopf takes a 404 on a watch as fatal, so the operator exited for a restart. Such
  a 404 on the operator's own group that is not a Kubernetes Status (an object really not
  found) is raised as a server error, which kopf retries with its backoffs (1, 2, 5, 10,
  20 s, handlers.py); a route still missing after those (the CRD deleted) fails as before.
- `use_fast_json`: kopf decodes every watch event with the standard library's json (a
  module global of its API client); orjson instead (controller/kube/jsonwire.py).
- `install_fastpath`: kopf hands each watch event to `processing.process_resource_event`,
  which builds a body view, three loggers, a patch, an error throttler and the handler
  causes, then applies the handlers' (always empty) patch: about 8 % of the operator's CPU
  in the medium benchmark, for two handlers that only cache and queue. The operator's own
  resources' events go to their handler directly; kopf's watching, per-object ordering and
  re-listing are unchanged, and any other resource takes kopf's path.
- `install_listing`: wraps `watching.infinite_watch` (looked up by kopf's watcher at each
  call) so the first-LIST gate (listing.py) sees each listed object and the LISTED bookmark.
- `NoMemories`: kopf remembers every object it saw (~0.9 kB each) for handler progress,
  daemons and indices, none of which event handlers use (`kopf.operator(memories=...)` is
  public, the class is not exported).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from importlib import metadata
from typing import Any, Protocol

from kopf._cogs.clients import api, errors, watching
from kopf._core.reactor import processing
from kopf._core.reactor.inventory import ResourceMemories, ResourceMemory

from controller.api import vocabulary as v
from controller.kube.jsonwire import KopfJson

KOPF_SERIES = "1.45."
UNSERVED_STATUS = 503
EventHandler = Callable[[Mapping[str, Any]], None]  # a raw watch event: type, object


def check_version(version: str | None = None) -> None:
    """Refuse a kopf these patches were not written against."""
    version = version or metadata.version("kopf")
    if not version.startswith(KOPF_SERIES):
        raise RuntimeError(
            f"kopf {version} is installed; the operator patches kopf {KOPF_SERIES}x only"
            " (controller/informer/kopf_patches.py): install the version pyproject.toml pins"
        )


def install_all(handlers: Mapping[tuple[str, str], EventHandler]) -> None:
    check_version()
    use_fast_json()
    install_routes()
    install_fastpath(handlers)


def route_not_served(status: int, path: str, body: str | None) -> bool:
    """A 404 from the router (no such route yet), not from the API (no such object)."""
    if status != 404 or not path.startswith(f"/apis/{v.GROUP}/"):
        return False
    try:
        payload = json.loads(body or "")
    except ValueError:
        return True
    return not (isinstance(payload, dict) and payload.get("kind") == "Status")


def install_routes() -> None:
    original = errors.check_response
    if getattr(original, "scene_operator_routes", False):
        return

    async def check_response(response: Any) -> None:
        if response.status == 404:
            body = await response.text()  # kept by aiohttp: the original reads it again
            if route_not_served(response.status, response.url.path, body):
                raise errors.APIServerError(
                    body.strip() or None, status=UNSERVED_STATUS, headers=dict(response.headers)
                )
        await original(response)

    check_response.scene_operator_routes = True  # type: ignore[attr-defined]
    errors.check_response = check_response


def use_fast_json() -> None:
    if getattr(api, "json", None) is json:
        api.json = KopfJson  # type: ignore[assignment]  # kopf's module-level json, swapped


def install_fastpath(handlers: Mapping[tuple[str, str], EventHandler]) -> None:
    """Route the events of each (group, plural) in `handlers` to its handler. Called
    before kopf starts its watchers (it binds the processor when it spawns them)."""
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


class ListingGate(Protocol):
    """What the watch wrapper reports to (listing.py: InitialListing)."""

    def is_open(self) -> bool: ...

    def stream_started(self, stream: tuple[str, str | None]) -> None: ...

    def object_listed(self, raw: dict[str, Any]) -> None: ...

    def stream_listed(self, stream: tuple[str, str | None]) -> None: ...


def watch_reporting_to(
    gate: ListingGate, original: Callable[..., AsyncIterator[Any]], plurals: tuple[str, ...]
) -> Callable[..., AsyncIterator[Any]]:
    """kopf's infinite_watch, reporting the operator's own watches to `gate`."""

    async def infinite_watch(**kwargs: Any) -> AsyncIterator[Any]:
        resource, namespace = kwargs["resource"], kwargs.get("namespace")
        stream = (resource.plural, namespace)
        ours = resource.group == v.GROUP and resource.plural in plurals
        if ours:
            gate.stream_started(stream)
        async for event in original(**kwargs):
            if ours and not gate.is_open():
                if event is watching.Bookmark.LISTED:
                    gate.stream_listed(stream)
                elif isinstance(event, dict) and event.get("type") is None:
                    gate.object_listed(event)
            yield event

    return infinite_watch


def install_listing(gate: ListingGate, plurals: tuple[str, ...]) -> None:
    """Route kopf's watches through `gate` (a gate installed earlier is replaced)."""
    original = getattr(watching.infinite_watch, "scene_operator_original", None)
    original = original or watching.infinite_watch
    wrapped = watch_reporting_to(gate, original, plurals)
    wrapped.scene_operator_original = original  # type: ignore[attr-defined]
    watching.infinite_watch = wrapped


class NoMemories(ResourceMemories):
    """Each event gets a fresh record of kopf's, kept by no one."""

    async def recall(self, raw_body: Any, **kwargs: Any) -> ResourceMemory:
        return await super().recall(raw_body, **{**kwargs, "ephemeral": True})
