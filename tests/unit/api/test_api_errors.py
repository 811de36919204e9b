"""Kubernetes API errors and Retry-After (issue 12 #11): which answers are retried and
after how long; every provider Retry-After is capped; a Scene found on a 409 counts as
created only if it is this Project's."""

from __future__ import annotations

import asyncio
import datetime as dt
from email.utils import format_datetime
from typing import Any

import pytest
from kubernetes import client as k8s_client

from controller.api import vocabulary as v
from controller.api.project import ProjectSpec, ProjectStatus
from controller.decide.project import ProjectObservation, project_status
from controller.decide.retry_after import KUBE_MAX_SECONDS, PROVIDER_MAX_SECONDS, bounded
from controller.informer.cache import scene_belongs_to
from controller.kube.client import MAX_ATTEMPTS, ApiError, KubeApi, retry_delay
from controller.providers import errors
from controller.providers.base import ProviderError


@pytest.mark.parametrize(
    ("status", "retry_after", "attempt", "delay"),
    [
        pytest.param(429, 2.0, 1, 2.0, id="429-after-its-retry-after"),
        pytest.param(429, None, 1, 0.5, id="429-without-retry-after-backs-off"),
        pytest.param(503, None, 2, 1.0, id="503-backoff-grows"),
        pytest.param(500, None, 3, 2.0, id="500-third-try"),
        pytest.param(429, 86400.0, 1, KUBE_MAX_SECONDS, id="429-retry-after-bounded"),
        pytest.param(504, 0.0, 1, 0.0, id="zero-retry-after-honoured"),
        pytest.param(429, 1.0, MAX_ATTEMPTS, None, id="gives-up-after-the-last-attempt"),
        pytest.param(409, 1.0, 1, None, id="conflict-not-retried"),
        pytest.param(404, None, 1, None, id="not-found-not-retried"),
        pytest.param(422, None, 1, None, id="invalid-not-retried"),
        pytest.param(410, None, 1, None, id="gone-not-retried"),
    ],
)
def test_retry_delay(status: int, retry_after: float | None, attempt: int, delay: float | None):
    assert retry_delay(status, retry_after, attempt) == delay


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, None),
        (5.0, 5.0),
        (-3.0, 0.0),
        (1e9, PROVIDER_MAX_SECONDS),
        (float("inf"), PROVIDER_MAX_SECONDS),
        (float("nan"), None),
    ],
)
def test_bounded(given: float | None, expected: float | None) -> None:
    assert bounded(given) == expected


@pytest.mark.parametrize(
    "header",
    ["86400", format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(days=365), usegmt=True)],
    ids=["seconds", "http-date-in-a-year"],  # the same on every xdist worker (not the date)
)
def test_every_provider_retry_after_is_capped(header: str) -> None:
    e = errors.http_error(429, "slow down", {"Retry-After": header})
    assert e.retry_after == PROVIDER_MAX_SECONDS
    direct = ProviderError("RateLimited", "x", retryable=True, retry_after=3600.0)
    assert direct.retry_after == PROVIDER_MAX_SECONDS
    assert errors.http_error(429, "ok", {"Retry-After": "7"}).retry_after == 7.0


PROJECT = {"kind": v.PROJECT_KIND, "metadata": {"name": "p", "namespace": "ns", "uid": "u1"}}


def scene(owner_uid: str | None, ref: str = "p") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p-scene-001", "namespace": "ns"}
    if owner_uid is not None:
        meta["ownerReferences"] = [{"kind": v.PROJECT_KIND, "name": "p", "uid": owner_uid}]
    return {"metadata": meta, "spec": {"projectRef": {"name": ref}}}


@pytest.mark.parametrize(
    ("existing", "belongs"),
    [
        pytest.param(scene("u1"), True, id="owned-by-this-project"),
        pytest.param(scene("u0"), False, id="owned-by-an-earlier-project-of-the-same-name"),
        pytest.param(scene("u9", ref="other"), False, id="owned-by-another-project"),
        pytest.param(scene(None), True, id="declared-by-the-user-for-this-project"),
        pytest.param(scene(None, ref="other"), False, id="declared-for-another-project"),
    ],
)
def test_a_409_scene_counts_only_if_it_is_this_projects(existing: dict, belongs: bool) -> None:
    assert scene_belongs_to(existing, PROJECT) is belongs


def test_a_taken_scene_name_is_reported_on_scenes_planned() -> None:
    obs = ProjectObservation(
        now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        generation=1,
        status=ProjectStatus(),
        spec=ProjectSpec(prompt="x"),
        name_conflicts=("p-scene-002",),
    )
    status = project_status(obs)
    planned = next(c for c in status.conditions if c.type == v.Cond.SCENES_PLANNED)
    ready = next(c for c in status.conditions if c.type == v.Cond.READY)
    assert planned.status == "False" and planned.reason == v.Reason.SCENE_NAME_TAKEN
    assert "p-scene-002" in planned.message
    assert ready.status == "False" and ready.reason == v.Reason.SCENE_NAME_TAKEN


# --- the client's retry loop, against a local HTTP server answering like the API server --


async def _serve(
    answers: list[tuple[Any, ...]], seen: list[float], queries: list[dict] | None = None
):
    """Answers (status, headers[, body]) in order, then 200 with an empty list."""
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        seen.append(asyncio.get_running_loop().time())
        if queries is not None:
            queries.append(dict(request.query))
        status, headers, *given = answers.pop(0) if answers else (200, {})
        body = {"kind": "Status", "message": "throttled", "reason": "TooManyRequests"}
        if status == 200:
            body = {"items": [], "metadata": {}}
        return web.json_response(given[0] if given else body, status=status, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


def _client(port: int) -> KubeApi:
    cfg = k8s_client.Configuration()
    cfg.host = f"http://127.0.0.1:{port}"
    cfg.verify_ssl = False
    return KubeApi(cfg)


@pytest.mark.parametrize(
    ("answers", "calls", "ok"),
    [
        pytest.param([(429, {"Retry-After": "1"})], 2, True, id="429-retried-after-retry-after"),
        pytest.param([(503, {}), (500, {})], 3, True, id="5xx-retried-with-backoff"),
        pytest.param([(429, {"Retry-After": "0"})] * 4, 4, False, id="gives-up-after-4-calls"),
        pytest.param([(422, {})], 1, False, id="422-not-retried"),
    ],
)
def test_the_client_retries_429_and_5xx(answers, calls: int, ok: bool) -> None:
    async def run() -> tuple[bool, list[float]]:
        seen: list[float] = []
        runner, port = await _serve(list(answers), seen)
        api = _client(port)
        try:
            await api.list(v.SCENE_PLURAL, "ns")
            return True, seen
        except ApiError:
            return False, seen
        finally:
            await api.close()
            await runner.cleanup()

    result, seen = asyncio.run(run())
    assert (result, len(seen)) == (ok, calls)
    if answers[0] == (429, {"Retry-After": "1"}):
        assert seen[1] - seen[0] >= 0.95  # the server's Retry-After was honoured


def test_an_expired_continue_token_lists_again_in_one_piece() -> None:
    def page(names: list[str], token: str = "") -> dict[str, Any]:
        return {
            "items": [{"metadata": {"name": n}} for n in names],
            "metadata": {"continue": token},
        }

    answers = [
        (200, {}, page(["a", "b"], "t1")),
        (410, {}, {"kind": "Status", "reason": "Expired", "message": "too old"}),
        (200, {}, page(["a", "b", "c"])),
    ]

    async def run() -> tuple[list[str], list[dict]]:
        seen: list[float] = []
        queries: list[dict] = []
        runner, port = await _serve(answers, seen, queries)
        api = _client(port)
        try:
            items = await api.list(v.SCENE_PLURAL, "ns", page_size=2)
            return [i["metadata"]["name"] for i in items], queries
        finally:
            await api.close()
            await runner.cleanup()

    names, queries = asyncio.run(run())
    assert names == ["a", "b", "c"]  # not a, b twice
    assert queries == [{"limit": "2"}, {"limit": "2", "continue": "t1"}, {}]


def test_list_pages_gives_each_page_with_its_snapshot_version() -> None:
    """The cache resync folds a LIST in page by page (one page of bodies held at a
    time); after an expired token the pages start over in one piece, at its version."""

    def page(names: list[str], version: str, token: str = "") -> dict[str, Any]:
        return {
            "items": [{"metadata": {"name": n}} for n in names],
            "metadata": {"continue": token, "resourceVersion": version},
        }

    answers = [
        (200, {}, page(["a", "b"], "10", "t1")),
        (200, {}, page(["c", "d"], "10", "t2")),
        (410, {}, {"kind": "Status", "reason": "Expired", "message": "too old"}),
        (200, {}, page(["a", "b", "c", "d", "e"], "12")),
    ]

    async def run() -> list[tuple[list[str], str]]:
        seen: list[float] = []
        queries: list[dict] = []
        runner, port = await _serve(answers, seen, queries)
        api = _client(port)
        try:
            return [
                ([i["metadata"]["name"] for i in items], version)
                async for items, version in api.list_pages(v.SCENE_PLURAL, "ns", page_size=2)
            ]
        finally:
            await api.close()
            await runner.cleanup()

    assert asyncio.run(run()) == [
        (["a", "b"], "10"),
        (["c", "d"], "10"),
        (["a", "b", "c", "d", "e"], "12"),
    ]
