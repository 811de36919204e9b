"""The receiver's HTTP server: aiohttp's low-level server with limits on what a client
may cost before it is authenticated (the port faces the internet, and the same event
loop renews the leader-election Lease).

- Header size and count: aiohttp's parser limits (`max_line_size`, `max_field_size`,
  `max_headers`), far below its defaults (8,190 bytes x 128 headers) and far above what
  Replicate and an ingress send (about 20 short headers). Over them aiohttp answers 400
  and closes at once, so a connection never buffers more than about 128 kB of headers.
- A short keep-alive (`keepalive_timeout`): an idle connection is closed after 5 s
  (aiohttp's default is an hour).
- A header deadline: a connection whose request headers are not complete within
  `header_timeout` of its opening (or of the previous answer on a kept-alive connection)
  is closed. aiohttp has no such setting: its only timer closes an *idle* connection,
  and before 3.10 not one still sending its first request. So the deadline is kept here,
  with aiohttp's public server hooks: armed in `connection_made`, cleared when aiohttp
  builds a request (its headers are complete), armed again after each answer.
- A cap on open connections: one over `max_connections` is answered a fixed 503 with
  Retry-After and closed before anything of it is read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from controller.observability import metrics as m
from controller.webhooks.verify import MAX_BODY_BYTES, Outcome

HEADER_TIMEOUT = 10.0  # seconds to send a request's line and headers
KEEPALIVE_SECONDS = 5.0  # an idle kept-alive connection is closed after this
MAX_LINE_SIZE = 4096  # the request line ("POST /webhooks/replicate HTTP/1.1")
MAX_FIELD_SIZE = 4096  # one header, name and value (a signature entry is ~50 bytes)
MAX_HEADERS = 32  # Replicate's own and an ingress's X-Forwarded-* fit with room to spare


class _QuietLog(logging.LoggerAdapter):
    """aiohttp logs every unparsable request at ERROR with a traceback: from the internet
    that is a free way to flood the logs. Here it is a debug line."""

    def exception(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)


HTTP_LOG = _QuietLog(logging.getLogger("scene_operator.webhooks.http"), {})

OVER_CAPACITY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"Content-Length: 0\r\n\r\n"
)


class GuardedServer(web.Server):
    """aiohttp's `web.Server` (the protocol factory given to `loop.create_server`) that
    enforces the connection cap and the header deadline."""

    def __init__(
        self,
        handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
        *,
        max_connections: int,
        header_timeout: float = HEADER_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        kwargs = {
            "keepalive_timeout": KEEPALIVE_SECONDS,
            "max_line_size": MAX_LINE_SIZE,
            "max_field_size": MAX_FIELD_SIZE,
            "max_headers": MAX_HEADERS,
            "access_log": None,
            "logger": HTTP_LOG,
            **kwargs,
        }
        super().__init__(self._answered(handler), request_factory=self._request, **kwargs)
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self._open: set[RequestHandler] = set()
        self._deadlines: dict[RequestHandler, asyncio.TimerHandle] = {}

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        if len(self._open) >= self.max_connections:
            m.WEBHOOKS.labels(str(Outcome.TOO_MANY_CONNECTIONS)).inc()
            transport.pause_reading()  # nothing of it is read
            transport.write(OVER_CAPACITY)
            # Closed once aiohttp has set the connection up (as its keep-alive timer
            # closes an idle one): closing it from inside this hook leaves aiohttp's
            # request task to fail on a connection already torn down.
            asyncio.get_running_loop().call_soon(handler.force_close)
            return
        self._open.add(handler)
        self._arm(handler)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        self._open.discard(handler)
        self._disarm(handler)
        super().connection_lost(handler, exc)

    def _arm(self, handler: RequestHandler) -> None:
        self._disarm(handler)
        loop = asyncio.get_running_loop()
        self._deadlines[handler] = loop.call_later(self.header_timeout, self._expired, handler)

    def _disarm(self, handler: RequestHandler) -> None:
        timer = self._deadlines.pop(handler, None)
        if timer is not None:
            timer.cancel()

    def _expired(self, handler: RequestHandler) -> None:
        self._deadlines.pop(handler, None)
        if handler in self._open:
            m.WEBHOOKS.labels(str(Outcome.HEADER_TIMEOUT)).inc()
            handler.force_close()

    def _request(
        self,
        message: Any,
        payload: Any,
        protocol: RequestHandler,
        writer: Any,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        """aiohttp calls this once a request's headers are complete (or failed to parse)."""
        self._disarm(protocol)
        return web.BaseRequest(
            message, payload, protocol, writer, task, task.get_loop(),
            client_max_size=MAX_BODY_BYTES,
        )  # fmt: skip

    def _answered(
        self, handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
    ) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            try:
                return await handler(request)
            finally:  # the next request on this connection has its own deadline
                if request.protocol in self._open:
                    self._arm(request.protocol)

        return handle
