"""A 404 of a route the API server has not installed yet (a restart) is retried by kopf as
a server error; a 404 of an object, or of another group, stays a 404
(controller/informer/kopf_patches.py)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import web
from kopf._cogs.clients import errors

from controller.api import vocabulary as v
from controller.informer import kopf_patches as kopf_routes

SCENES = f"/apis/{v.GROUP}/{v.VERSION}/namespaces/ns/scenes"
STATUS_404 = json.dumps({"kind": "Status", "code": 404, "reason": "NotFound", "message": "x"})


@pytest.mark.parametrize(
    ("status", "path", "body", "unserved"),
    [
        (404, SCENES, "404 page not found", True),
        (404, SCENES, "", True),
        (404, SCENES, STATUS_404, False),
        (404, "/api/v1/namespaces/ns/events", "404 page not found", False),
        (503, SCENES, "404 page not found", False),
        (200, SCENES, "{}", False),
    ],
)
def test_which_404_is_a_route_not_served_yet(status, path, body, unserved) -> None:
    assert kopf_routes.route_not_served(status, path, body) is unserved


async def _answer(path: str, body: str, content_type: str) -> Exception | None:
    async def handler(_: web.Request) -> web.Response:
        return web.Response(status=404, text=body, content_type=content_type)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}{path}") as response,
        ):
            try:
                await errors.check_response(response)
            except Exception as e:  # the test looks at which
                return e
            return None
    finally:
        await runner.cleanup()


def test_kopf_retries_an_unserved_crd_route_and_still_sees_real_404s() -> None:
    kopf_routes.install_routes()
    kopf_routes.install_routes()  # idempotent: wrapped once
    assert getattr(errors.check_response, "scene_operator_routes", False)

    unserved = asyncio.run(_answer(SCENES, "404 page not found", "text/plain"))
    assert isinstance(unserved, errors.APIServerError)  # kopf's request retries these
    assert unserved.status == kopf_routes.UNSERVED_STATUS

    missing = asyncio.run(_answer(SCENES + "/s-1", STATUS_404, "application/json"))
    assert isinstance(missing, errors.APINotFoundError)
    assert missing.status == 404

    other = asyncio.run(_answer("/api/v1/namespaces/ns/pods", "404 page not found", "text/plain"))
    assert isinstance(other, errors.APINotFoundError)


def test_a_kopf_other_than_the_pinned_series_is_refused_at_start() -> None:
    kopf_routes.check_version()  # the installed kopf is the pinned one
    kopf_routes.check_version("1.45.9")
    for other in ("1.46.0", "2.0.0", "1.4.5"):
        with pytest.raises(RuntimeError, match=f"kopf {other} is installed"):
            kopf_routes.check_version(other)
