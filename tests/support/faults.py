"""A fault-injecting HTTP proxy for resilience tests (S3 in front of the moto server).

`FaultProxy` listens on a free loopback port and forwards each HTTP/1.1 request to an
upstream server, one request per connection (it answers with `Connection: close`). Per
request it may inject a fault instead, chosen first from `fail_next` (a queue of forced
faults, consumed in order by matching requests) and otherwise drawn from a seeded
`random.Random` with per-method probabilities (`rules`):

- ``slowdown``: answer ``503 SlowDown`` with S3's XML error body (the request never
  reaches the upstream; with ``Expect: 100-continue`` the body is never sent, as S3 does);
- ``reset_request``: read about half of the request body, then reset the connection
  (RST), e.g. in the middle of a PUT upload; nothing reaches the upstream;
- ``reset_response``: forward the whole request (the upstream acts on it: an upload is
  stored) and reset the connection instead of returning the answer;
- ``delay``: wait `delay_seconds`, then forward normally.

Everything is a plain attribute guarded by `lock`, so a test can change the schedule
while traffic flows; `history` and `counts` record what was done to which request.

    with FaultProxy(s3.endpoint_url, seed=7, rules={"PUT": {"slowdown": 0.2}}) as proxy:
        env = {**s3.env(), "AWS_ENDPOINT_URL_S3": proxy.endpoint_url}
"""

from __future__ import annotations

import contextlib
import random
import secrets
import socket
import socketserver
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Self
from urllib.parse import urlsplit

FAULTS = ("slowdown", "reset_request", "reset_response", "delay")
PASS = "pass"
_MAX_HEAD = 64 * 1024
_IO_TIMEOUT = 60.0


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None


def s3_error_body(code: str, message: str, request_id: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{request_id}</RequestId><HostId>fault-proxy</HostId></Error>"
    ).encode()


class _Closed(Exception):
    """The client went away before a whole request arrived."""


class _Conn:
    """A socket with a read buffer: HTTP heads are read up to CRLFCRLF, bodies by length."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise _Closed
        self.buf += chunk

    def read_until(self, marker: bytes, limit: int = _MAX_HEAD) -> bytes:
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise _Closed
            self._fill()
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_to_eof(self) -> bytes:
        chunks = [self.buf]
        self.buf = b""
        while chunk := self.sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def _parse_head(head: bytes) -> Request:
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return Request(method, target, version, headers)


def _read_body(conn: _Conn, req: Request, limit: int | None = None) -> bytes:
    """The raw request body (chunked framing kept as is); at most `limit` bytes if given."""
    te = (req.header("Transfer-Encoding") or "").lower()
    if "chunked" in te:
        raw = b""
        while True:
            size_line = conn.read_until(b"\r\n")
            raw += size_line
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                # trailers (possibly none), then the final CRLF
                while True:
                    line = conn.read_until(b"\r\n")
                    raw += line
                    if line == b"\r\n":
                        return raw
            raw += conn.read_exactly(size + 2)
            if limit is not None and len(raw) >= limit:
                return raw
    length = int(req.header("Content-Length") or 0)
    if limit is not None:
        length = min(length, limit)
    return conn.read_exactly(length)


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): the peer sees 'connection reset by peer'."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        *,
        seed: int = 0,
        rules: dict[str, dict[str, float]] | None = None,
        delay_seconds: float = 1.0,
    ) -> None:
        """`upstream`: e.g. "http://127.0.0.1:5000". `rules`: method (or "*") -> fault kind
        -> probability, e.g. {"PUT": {"slowdown": 0.2, "reset_request": 0.1}}."""
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        self.upstream = (parts.hostname, parts.port)
        self.seed = seed
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self.rules: dict[str, dict[str, float]] = dict(rules or {})
        self.fail_next: list[tuple[str, str]] = []  # (method or "*", fault kind)
        self.delay_seconds = delay_seconds
        self.enabled = True
        self.history: list[tuple[str, str, str]] = []  # (method, path, fault or "pass")
        self.counts: Counter[tuple[str, str]] = Counter()  # (method, fault or "pass")
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("proxy not started")
        return int(self._server.server_address[1])

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._handle(self.request)

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="FaultProxy",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ schedule
    def force(self, fault: str, times: int = 1, method: str = "*") -> None:
        """Inject `fault` into the next `times` requests with `method` (before any draw)."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
        with self.lock:
            self.fail_next.extend([(method, fault)] * times)

    def injected(self, method: str | None = None) -> int:
        with self.lock:
            return sum(
                n
                for (m, f), n in self.counts.items()
                if f != PASS and (method is None or m == method)
            )

    def choose(self, method: str) -> str:
        with self.lock:
            if not self.enabled:
                return PASS
            for i, (m, fault) in enumerate(self.fail_next):
                if m in ("*", method):
                    del self.fail_next[i]
                    return fault
            rule = self.rules.get(method, self.rules.get("*", {}))
            draw = self.rng.random()
            for fault, p in rule.items():
                if draw < p:
                    return fault
                draw -= p
            return PASS

    # ------------------------------------------------------------------ per connection
    def _handle(self, sock: socket.socket) -> None:
        sock.settimeout(_IO_TIMEOUT)
        client = _Conn(sock)
        try:
            req = _parse_head(client.read_until(b"\r\n\r\n"))
        except (_Closed, OSError, ValueError):
            sock.close()
            return
        fault = self.choose(req.method)
        path = req.target.split("?", 1)[0]
        with self.lock:
            self.history.append((req.method, path, fault))
            self.counts[(req.method, fault)] += 1
        expects = (req.header("Expect") or "").lower() == "100-continue"
        try:
            if fault == "slowdown":
                self._slowdown(client, req, expects)
                return
            if expects:
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            if fault == "reset_request":
                self._reset_mid_request(client, req)
                return
            body = _read_body(client, req)
            if fault == "delay":
                time.sleep(self.delay_seconds)
            answer = self._forward(req, body)
            if fault == "reset_response":
                _reset(sock)
                return
            sock.sendall(answer)
            sock.shutdown(socket.SHUT_WR)
        except (_Closed, OSError):
            pass
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def _slowdown(self, client: _Conn, req: Request, expects: bool) -> None:
        if not expects:
            _read_body(client, req)  # consume it, so the client reads our answer cleanly
        rid = secrets.token_hex(8).upper()
        body = (
            b""
            if req.method == "HEAD"
            else s3_error_body("SlowDown", "Please reduce your request rate.", rid)
        )
        head = (
            "HTTP/1.1 503 Slow Down\r\n"
            "Content-Type: application/xml\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"x-amz-request-id: {rid}\r\n"
            "Retry-After: 1\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        client.sock.sendall(head + body)
        client.sock.shutdown(socket.SHUT_WR)

    def _reset_mid_request(self, client: _Conn, req: Request) -> None:
        length = int(req.header("Content-Length") or 0)
        chunked = "chunked" in (req.header("Transfer-Encoding") or "").lower()
        if length or chunked:
            _read_body(client, req, limit=max(length // 2, 1))
        _reset(client.sock)

    def _forward(self, req: Request, body: bytes) -> bytes:
        """Send the request upstream (Connection: close, no Expect) and return its answer
        with `Connection: close`."""
        skip = {"connection", "expect", "keep-alive", "proxy-connection"}
        lines = [f"{req.method} {req.target} {req.version}"]
        lines += [f"{k}: {v}" for k, v in req.headers if k.lower() not in skip]
        lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        with socket.create_connection(self.upstream, timeout=_IO_TIMEOUT) as up:
            up.sendall(head + body)
            answer = _Conn(up).read_to_eof()
        end = answer.find(b"\r\n\r\n")
        if end < 0:
            return answer
        status_and_headers = answer[:end].split(b"\r\n")
        kept = [status_and_headers[0]] + [
            line
            for line in status_and_headers[1:]
            if line.split(b":", 1)[0].strip().lower() not in (b"connection", b"keep-alive")
        ]
        kept.append(b"Connection: close")
        return b"\r\n".join(kept) + answer[end:]
