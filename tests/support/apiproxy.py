"""A recording proxy in front of the API server, for tests that must prove what one
operator process did and did not send (e.g. no write after it lost its Lease).

The process gets a kubeconfig pointing at http://127.0.0.1:PORT (plain HTTP on loopback,
so the proxy sees every method and path); the proxy forwards each request, headers and
bearer token included, to the real API server over TLS and streams the answer back
(watches included). `requests` lists (time, method, path) in arrival order.

Watches can be cut and held (`hold_watches`: open watch streams end, new ones wait), then
let go with the resourceVersions before a point expired (`release_watches`): a watch
resumed from an older one gets the API server's answer to an expired resourceVersion,
an ERROR event with code 410 (Gone), as after etcd compacted the history it needed, and
the client must LIST again: what was deleted in between is then simply absent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Self

import aiohttp
import yaml
from aiohttp import web

HOP = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}


class RecordingApiProxy:
    def __init__(self, kubeconfig: str) -> None:
        config = yaml.safe_load(Path(kubeconfig).read_text())
        self._source = config
        cluster = config["clusters"][0]["cluster"]
        self.upstream = cluster["server"].rstrip("/")
        self._ssl: ssl.SSLContext | bool = False
        if ca := cluster.get("certificate-authority"):
            self._ssl = ssl.create_default_context(cafile=ca)
        elif cluster.get("insecure-skip-tls-verify"):
            self._ssl = False
        self.requests: list[tuple[float, str, str]] = []
        self.lock = threading.Lock()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._watches: set[aiohttp.ClientResponse] = set()
        self._held = False
        self._expired_before = 0
        self.expired = 0  # watches answered 410 Gone

    def writes(self, since: float = 0.0) -> list[tuple[float, str, str]]:
        with self.lock:
            return [r for r in self.requests if r[1] != "GET" and r[0] >= since]

    def kubeconfig(self, path: Path) -> str:
        """A copy of the kubeconfig whose server is this proxy (credentials unchanged)."""
        config = yaml.safe_load(yaml.safe_dump(self._source))
        for entry in config["clusters"]:
            entry["cluster"] = {"server": f"http://127.0.0.1:{self.port}"}
        path.write_text(yaml.safe_dump(config))
        return str(path)

    def hold_watches(self) -> None:
        """End every open watch stream; new watches wait until `release_watches`."""

        async def cut() -> None:
            self._held = True
            for upstream in list(self._watches):
                upstream.close()

        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(cut(), self._loop).result(timeout=10)

    def release_watches(self, expired_before: int) -> None:
        """Let watches through again; one resumed from a resourceVersion older than
        `expired_before` is answered 410 Gone."""
        self._expired_before = expired_before
        self._held = False

    async def _expired(self, request: web.Request) -> web.StreamResponse | None:
        if request.query.get("watch") not in ("true", "1"):
            return None
        while self._held:
            await asyncio.sleep(0.05)
        since = request.query.get("resourceVersion") or ""
        if not (since.isdigit() and int(since) < self._expired_before):
            return None
        self.expired += 1
        gone = {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f"too old resource version: {since} ({self._expired_before})",
                "reason": "Expired",
                "code": 410,
            },
        }
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(json.dumps(gone).encode() + b"\n")
        await response.write_eof()
        return response

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        with self.lock:
            self.requests.append((time.time(), request.method, request.path_qs))
        if (expired := await self._expired(request)) is not None:
            return expired
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        body = await request.read()
        assert self._session is not None
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body or None,
            ssl=self._ssl,
        ) as upstream:
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP}
            response = web.StreamResponse(status=upstream.status, headers=out)
            await response.prepare(request)
            watch = request.query.get("watch") in ("true", "1")
            if watch:
                self._watches.add(upstream)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            except (ConnectionResetError, aiohttp.ClientError):
                pass  # one side went away (a killed or frozen client): drop the stream
            finally:
                self._watches.discard(upstream)
            return response

    async def _serve(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server: Any = site._server
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()

    def start(self) -> Self:
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="api-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the API proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def close() -> None:
            # The upstream session first: open watch streams then end, so the server
            # does not wait for them to finish on their own.
            await self._session.close()
            if self._runner is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
