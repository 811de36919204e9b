"""The receiver's port under abuse, over real sockets: oversized or too many headers are
answered 400 and closed, headers that never finish are cut off, an idle kept-alive
connection is closed, and connections over the cap are answered 503 and closed before
anything of them is read. No assertion is on a duration: each checks what the server
did (answered, closed, refused), with a generous ceiling only against a hang."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from controller.demo.free_ports import free_port
from controller.webhooks import server as limits
from controller.webhooks.receiver import PATH, Receiver, SigningSecret
from controller.webhooks.verify import Outcome, sign
from tests.support.webhook_sender import new_secret

SECRET = new_secret()
HANG = 20.0  # only against a hang: every wait below ends long before


def wake(prediction_id: str) -> Outcome:
    return Outcome.ACCEPTED


@asynccontextmanager
async def serving(**overrides: Any) -> AsyncIterator[tuple[int, Receiver]]:
    """The receiver on a free port, with server.py's limits unless overridden."""
    max_connections = overrides.pop("max_connections", 64)
    receiver = Receiver(SigningSecret(lambda: SECRET), wake, max_connections=max_connections)
    runner = web.ServerRunner(receiver.server(**overrides))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port, receiver
    finally:
        await runner.cleanup()


def request(extra_headers: list[tuple[str, str]] = (), body: bytes | None = None) -> bytes:
    body = body if body is not None else json.dumps({"id": "p1", "status": "succeeded"}).encode()
    ts = int(time.time())
    headers = [
        ("Host", "localhost"),
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("webhook-id", "msg_1"),
        ("webhook-timestamp", str(ts)),
        ("webhook-signature", sign(SECRET, "msg_1", ts, body)),
        *extra_headers,
    ]
    head = f"POST {PATH} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return head.encode() + b"\r\n" + body


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), HANG)


async def status_of(reader: asyncio.StreamReader) -> int:
    line = await asyncio.wait_for(reader.readline(), HANG)
    return int(line.split()[1])


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


def test_a_header_over_the_size_limit_is_answered_400_and_closed() -> None:
    async def scenario() -> None:
        async with serving() as (port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            big = "x" * (limits.MAX_FIELD_SIZE + 1)
            writer.write(request([("X-Padding", big)]))
            answer = await until_closed(reader)
            assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request"), answer[:100]
            writer.close()

    run(scenario)


def test_more_headers_than_the_limit_are_answered_400_and_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        async with serving() as (port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            many = [(f"X-H{i}", "v") for i in range(limits.MAX_HEADERS)]
            writer.write(request(many))
            answer = await until_closed(reader)
            assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request"), answer[:100]
            writer.close()

    run(scenario)
    # aiohttp's ERROR line with a traceback for each bad request is a debug line here.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_real_delivery_fits_the_limits() -> None:
    """Replicate's headers and an ingress's (about 20) pass, with a rotation's two
    signatures."""
    forwarded = [
        ("X-Forwarded-For", ", ".join(f"10.0.0.{i}" for i in range(30))),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "hooks.example.com"),
        ("X-Forwarded-Port", "443"),
        ("X-Real-IP", "203.0.113.7"),
        ("X-Request-ID", "0" * 32),
        ("X-Scheme", "https"),
        ("User-Agent", "Go-http-client/2.0"),
        ("Accept-Encoding", "gzip"),
        ("traceparent", "00-" + "1" * 32 + "-" + "2" * 16 + "-01"),
    ]

    async def scenario() -> None:
        async with serving() as (port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request(forwarded))
            assert await status_of(reader) == 200
            writer.close()

    run(scenario)


def test_headers_that_never_finish_are_cut_off_at_the_deadline() -> None:
    # aiohttp's own idle timer is pushed far away: the deadline alone must close it.
    async def scenario() -> None:
        async with serving(header_timeout=0.3, keepalive_timeout=3600) as (port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request()[:60])  # the request line and part of the headers
            assert await until_closed(reader) == b""  # closed, nothing answered
            writer.close()

    run(scenario)


def test_the_deadline_applies_again_to_the_next_request_of_a_kept_alive_connection() -> None:
    async def scenario() -> None:
        async with serving(header_timeout=0.5, keepalive_timeout=3600) as (port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request())
            assert await status_of(reader) == 200
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n")  # unfinished
            rest = await until_closed(reader)
            assert b"HTTP/1.1" not in rest  # no second answer: cut off
            writer.close()

    run(scenario)


def test_an_idle_kept_alive_connection_is_closed() -> None:
    assert limits.KEEPALIVE_SECONDS <= 5

    async def scenario() -> None:
        async with serving(keepalive_timeout=0.3) as (port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request())
            assert await status_of(reader) == 200
            await until_closed(reader)  # returns: the server closed it
            writer.close()

    run(scenario)


def test_connections_over_the_cap_are_answered_503_and_closed() -> None:
    async def scenario() -> None:
        async with serving(max_connections=3) as (port, receiver):
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
            for _ in range(50):  # the server has accepted all three
                if receiver_open(receiver) == 3:
                    break
                await asyncio.sleep(0.02)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            answer = await until_closed(reader)
            assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in answer
            writer.close()
            # One held connection still works; once one closes, a new one is served.
            r0, w0 = held[0]
            w0.write(request())
            assert await status_of(r0) == 200
            w0.close()
            await until_closed(r0)
            for _ in range(50):
                if receiver_open(receiver) < 3:
                    break
                await asyncio.sleep(0.02)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request())
            assert await status_of(reader) == 200  # read and answered (a replay), not refused
            writer.close()
            for _, w in held[1:]:
                w.close()

    run(scenario)


def receiver_open(receiver: Receiver) -> int:
    server = receiver.http_server
    return server.open_connections if server is not None else 0
