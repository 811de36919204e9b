"""The operator's own async API client: kopf watches; this writes (status, Scenes, Events,
finalizers) and reads what kopf does not deliver. Errors and retries: kube/errors.py."""

from __future__ import annotations

import asyncio
import builtins
import collections
import datetime as dt
import json as jsonlib
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from controller.api import vocabulary as v
from controller.api.common import Body
from controller.decide.retry_after import parse_retry_after
from controller.kube import jsonwire, kubeconfig
from controller.kube.errors import MAX_ATTEMPTS, ApiError, NotLeaderError, retry_delay
from controller.kube.events import event_body
from controller.observability.metrics import API_REQUESTS, API_RETRIES

MERGE = "application/merge-patch+json"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
LIST_PAGE_SIZE = 500


def load_configuration(path: str | None = None) -> Any:
    """The kubeconfig's current context, else the pod's service account: read by
    controller/kube/kubeconfig.py, or by the kubernetes package (~68 MB once imported) for
    what only it can read (exec plugins, auth providers, merged files)."""
    light = kubeconfig.load(path)
    if light is not None:
        return light
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config

    cfg = k8s_client.Configuration()
    try:
        k8s_config.load_kube_config(config_file=path, client_configuration=cfg)
    except k8s_config.ConfigException:
        k8s_config.load_incluster_config(client_configuration=cfg)
    return cfg


def cr_path(plural: str, namespace: str, name: str | None = None, sub: str | None = None) -> str:
    path = f"/apis/{v.GROUP}/{v.VERSION}/namespaces/{namespace}/{plural}"
    if name:
        path += f"/{name}"
    if sub:
        path += f"/{sub}"
    return path


def lease_path(namespace: str, name: str | None = None) -> str:
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    return f"{path}/{name}" if name else path


class KubeApi:
    def __init__(self, cfg: Any, *, max_connections: int = 8) -> None:
        """`cfg`: a kubeconfig.Connection or a kubernetes.client.Configuration."""
        self._cfg = cfg
        self._ssl: ssl.SSLContext | bool = False
        if cfg.verify_ssl:
            ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
            if cfg.cert_file:
                ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
            self._ssl = ctx
        elif cfg.cert_file:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
            self._ssl = ctx
        # aiohttp (kopf's own client) rather than httpx: httpcore scans every pooled
        # connection with getpeername() on each request and response, which cost 11-25 %
        # of the operator's CPU (benchmarks/README.md). The session needs a running loop,
        # so it is made on first use.
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self.requests: collections.Counter[tuple[str, str]] = collections.Counter()
        # Checked right before every write (leader election, controller.leaderelection.guard): a process
        # that lost its Lease writes nothing more. Reads are always allowed.
        self.write_guard: Callable[[], bool] | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                base_url=self._cfg.host.rstrip("/") + "/",
                connector=aiohttp.TCPConnector(limit=self._max_connections, ssl=self._ssl),
                # sock_connect, not connect: aiohttp's `connect` also counts the wait for
                # a free pooled connection, which under load is not a connect failure.
                timeout=aiohttp.ClientTimeout(total=30.0, sock_connect=10.0),
                json_serialize=jsonlib.dumps,
                trace_configs=[self._guard_trace()],
            )
        return self._session

    def _guard_trace(self) -> aiohttp.TraceConfig:
        """The write guard again where a write can wait: once it has a pooled connection,
        and right before its first bytes go out (aiohttp holds the headers back and sends
        them with the body from a task of its own, a loop turn later). A write that
        waited, or was under way when the process was frozen, is then not sent late."""

        async def check(_: Any, ctx: Any, __: Any) -> None:
            what = ctx.trace_request_ctx
            if what and self.write_guard is not None and not self.write_guard():
                raise NotLeaderError(f"{what}: this process is not the leader")

        trace = aiohttp.TraceConfig()
        trace.on_connection_reuseconn.append(check)
        trace.on_connection_create_end.append(check)
        trace.on_request_chunk_sent.append(check)  # awaited before the bytes are written
        return trace

    @classmethod
    def from_environment(cls, kubeconfig: str | None = None) -> KubeApi:
        return cls(load_configuration(kubeconfig))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        # The user agent names the field manager: managedFields show what the operator owns.
        headers = {"Accept": "application/json", "User-Agent": f"{v.MANAGER}/0.1"}
        # get_api_key_with_prefix runs the refresh hook: in-cluster tokens rotate.
        token = self._cfg.get_api_key_with_prefix(
            "authorization"
        ) or self._cfg.get_api_key_with_prefix("BearerToken")
        if token:
            headers["Authorization"] = token
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        content_type: str | None = None,
        kind: str = "",
    ) -> dict[str, Any]:
        """One API call; a 429 or 5xx answer is retried after its Retry-After (bounded),
        like client-go does, before it is raised."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return await self._request_once(
                    method, path, json=json, params=params, content_type=content_type, kind=kind
                )
            except ApiError as e:
                delay = retry_delay(e.status, e.retry_after, attempt)
                if delay is None:
                    raise
                API_RETRIES.labels(str(e.status)).inc()
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # the last attempt returns or raises

    async def _request_once(
        self,
        method: str,
        path: str,
        *,
        json: Any,
        params: dict[str, str] | None,
        content_type: str | None,
        kind: str,
    ) -> dict[str, Any]:
        # Checked before each try: a retry after the Lease was lost is not sent either.
        if method != "GET" and self.write_guard is not None and not self.write_guard():
            raise NotLeaderError(f"{method} {path}: this process is not the leader")
        resource = kind or _kind_of(path)
        self.requests[(method, resource)] += 1
        data = None if json is None else jsonlib.dumps(json).encode()
        try:
            sent = (method, path, resource, data, params, content_type, json is not None)
            return await self._send(*sent)
        except aiohttp.ClientConnectionError as e:
            API_REQUESTS.labels(method, resource, "<error>").inc()
            if isinstance(e.__cause__, NotLeaderError):  # refused inside aiohttp's writer
                raise e.__cause__ from None
            raise

    async def _send(
        self,
        method: str,
        path: str,
        resource: str,
        data: bytes | None,
        params: dict[str, str] | None,
        content_type: str | None,
        has_json: bool,
    ) -> dict[str, Any]:
        async with self._http().request(
            method,
            path.lstrip("/"),
            data=data,
            params=params,
            headers=self._headers(content_type or ("application/json" if has_json else None)),
            trace_request_ctx=None if method == "GET" else f"{method} {path}",
        ) as response:
            content = await response.read()
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
        API_REQUESTS.labels(method, resource, str(response.status)).inc()
        if response.status >= 400:
            try:
                body = jsonwire.loads(content)
                error = ApiError(
                    response.status,
                    body.get("message", ""),
                    body.get("reason", ""),
                    retry_after=retry_after,
                )
            except (ValueError, AttributeError):
                text = content[:500].decode("utf-8", "replace")
                error = ApiError(response.status, text, retry_after=retry_after)
            raise error
        return jsonwire.loads(content) if content else {}

    async def _get_or_none(self, path: str, kind: str = "") -> dict[str, Any] | None:
        try:
            return await self.request("GET", path, kind=kind)
        except ApiError as e:
            if e.not_found:
                return None
            raise

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get_or_none(cr_path(plural, namespace, name))

    async def get_crd(self, name: str) -> dict[str, Any] | None:
        """A CustomResourceDefinition (is the operator's being deleted?), or None."""
        return await self._get_or_none(f"{CRD_PATH}/{name}", "customresourcedefinitions")

    async def list(
        self,
        plural: str,
        namespace: str,
        *,
        label_selector: str | None = None,
        page_size: int = LIST_PAGE_SIZE,
    ) -> builtins.list[dict[str, Any]]:
        """Every object, fetched in pages (limit/continue) so a namespace with thousands
        of Scenes is never one huge answer. If the continue token expires (410) between
        pages, the list starts over in one piece, as client-go's pager does."""
        items, _ = await self.list_with_version(
            plural, namespace, label_selector=label_selector, page_size=page_size
        )
        return items

    async def list_with_version(
        self,
        plural: str,
        namespace: str,
        *,
        label_selector: str | None = None,
        page_size: int = LIST_PAGE_SIZE,
    ) -> tuple[builtins.list[dict[str, Any]], str]:
        """`list`, and the resourceVersion the LIST was served at (every page is the same
        snapshot: the first page's)."""
        items: builtins.list[dict[str, Any]] = []
        version = ""
        async for page, page_version, whole in self._pages(
            plural, namespace, label_selector, page_size
        ):
            if whole:
                items = []
            items.extend(page)
            version = page_version
        return items, version

    async def list_pages(
        self, plural: str, namespace: str, *, page_size: int = LIST_PAGE_SIZE
    ) -> AsyncIterator[tuple[builtins.list[dict[str, Any]], str]]:
        """`list_with_version` page by page, for a caller that folds each page in and so
        holds one page of bodies at a time (a namespace of 2,500 Scenes held at once was
        +41 MB of peak RSS). Each page comes with the version of the snapshot it is from:
        the last page's is the LIST's."""
        async for page, version, _ in self._pages(plural, namespace, None, page_size):
            yield page, version

    async def _pages(
        self, plural: str, namespace: str, label_selector: str | None, page_size: int
    ) -> AsyncIterator[tuple[builtins.list[dict[str, Any]], str, bool]]:
        """(items, version, whole): whole when the continue token expired (410) between
        pages and the LIST started over in one piece, as client-go's pager does."""
        base = {"labelSelector": label_selector} if label_selector else {}
        token, version = "", ""
        while True:
            params = {**base, "limit": str(page_size)}
            if token:
                params["continue"] = token
            try:
                body = await self.request("GET", cr_path(plural, namespace), params=params)
            except ApiError as e:
                if e.status != 410 or not token:
                    raise
                body = await self.request("GET", cr_path(plural, namespace), params=base or None)
                yield list(body.get("items", [])), _list_version(body), True
                return
            version = version or _list_version(body)
            yield list(body.get("items", [])), version, False
            token = (body.get("metadata") or {}).get("continue") or ""
            if not token:
                return

    async def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", cr_path(plural, namespace), json=body)

    async def patch_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status: dict[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """JSON merge patch of status; with resource_version, a stale read fails with 409."""
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        return await self.request(
            "PATCH", cr_path(plural, namespace, name, "status"), json=body, content_type=MERGE
        )

    async def patch_metadata(
        self, plural: str, namespace: str, name: str, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        return await self.request(
            "PATCH",
            cr_path(plural, namespace, name),
            json={"metadata": metadata},
            content_type=MERGE,
        )

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get_or_none(lease_path(namespace, name))

    async def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", lease_path(namespace), json=body)

    async def replace_lease(
        self, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """PUT with the body's resourceVersion: a stale read fails with 409."""
        return await self.request("PUT", lease_path(namespace, name), json=body)

    async def list_leases(self, namespace: str, label_selector: str) -> builtins.list[Body]:
        body = await self.request(
            "GET", lease_path(namespace), params={"labelSelector": label_selector}
        )
        return list(body.get("items", []))

    async def post_event(
        self,
        obj: dict[str, Any],
        *,
        reason: str,
        message: str,
        type_: str = "Normal",
        component: str = v.MANAGER,
        count: int = 1,
        first: dt.datetime | None = None,
    ) -> None:
        """One Event; `count` and `first` (its first occurrence) for a batch of the same
        occurrences (controller/controllers/project/series.py)."""
        event = event_body(
            obj,
            reason=reason,
            message=message,
            type_=type_,
            component=component,
            count=count,
            first=first,
        )
        namespace = event["metadata"]["namespace"]
        await self.request(
            "POST", f"/api/v1/namespaces/{namespace}/events", json=event, kind="events"
        )


def _list_version(body: dict[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("resourceVersion") or "")


def _kind_of(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if "namespaces" in parts:
        i = parts.index("namespaces")
        rest = parts[i + 2 :]
        if rest:
            return rest[0] + ("/status" if rest[-1] == "status" else "")
    return parts[-1] if parts else ""
