"""A restarted API server answers the operator's CRD routes with a bare "404 page not
found" for a moment: it accepts connections before it has installed them (its readiness
says not ready meanwhile). kopf takes a 404 on a watch as fatal, so the operator exited
for a restart (tests/resilience/test_apiserver_restart.py caught it). Here such a 404 on
the operator's own API group, one that is not a Kubernetes Status (an object really not
found), is raised as a server error, which kopf retries with its error backoffs (1, 2, 5,
10, 20 s, controller/informer/handlers.py); a route still missing after those (the CRD deleted)
fails as before."""

from __future__ import annotations

import json
from typing import Any

from controller.api import vocabulary as v

UNSERVED_STATUS = 503


def route_not_served(status: int, path: str, body: str | None) -> bool:
    """A 404 from the router (no such route yet), not from the API (no such object)."""
    if status != 404 or not path.startswith(f"/apis/{v.GROUP}/"):
        return False
    try:
        payload = json.loads(body or "")
    except ValueError:
        return True
    return not (isinstance(payload, dict) and payload.get("kind") == "Status")


def install() -> None:
    """Wrap kopf's response check (idempotent). Called after kopf is imported (by
    controller/informer/handlers.py, which keeps the kubernetes package out while it does)."""
    from kopf._cogs.clients import errors  # kopf is pinned to 1.45.x (pyproject)

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
