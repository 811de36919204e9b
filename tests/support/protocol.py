"""What the local provider fakes share (replicate_server, veo_server, gemini_server).

`LocalHTTPServer` is threaded HTTP on 127.0.0.1 with start/stop; subclasses answer each
request in `dispatch`. `ProtocolServer` adds what the JSON job APIs need: routing, auth,
a request log and fault injection. All controls are plain attributes guarded by `lock`,
so tests may change them at runtime.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

# A few bytes starting like an MP4 ("ftyp" box); tests that need a playable file pass one.
DEFAULT_VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64

_CPU_LOCK = threading.Lock()

# An entry of fail_next_*: an HTTP status, or (status, detail message).
Failure = int | tuple[int, str]


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
        extra = {"Content-Type": "application/json", **(headers or {})}
        return cls(status, json.dumps(payload).encode(), extra)


class _Handler(BaseHTTPRequestHandler):
    app: LocalHTTPServer  # set on a per-server subclass
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def handle_one_request(self) -> None:
        start = time.thread_time()  # per request: a kept-alive connection lives long
        try:
            super().handle_one_request()
        finally:
            used = time.thread_time() - start
            with _CPU_LOCK:
                self.server.request_cpu_seconds += used  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = self.app.dispatch(self.command, self.path, dict(self.headers.items()), body)
        if reply is None:  # simulate a dropped connection: no status line at all
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # hung handlers must not delay stop()
    quiet = False  # set from LocalHTTPServer.quiet_errors
    # CPU seconds spent answering requests: the benchmark reports its fakes apart.
    request_cpu_seconds = 0.0

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not self.quiet:
            super().handle_error(request, client_address)


class LocalHTTPServer:
    """Threaded HTTP on 127.0.0.1 (a free port); subclasses implement `dispatch`."""

    # True: an error in a handler (e.g. a client that timed out and left) is not printed.
    quiet_errors = False

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """CPU this server used so far: answering requests, and its accept loop
        (Linux: /proc/self/task; elsewhere the accept loop is left out)."""
        httpd, thread = self._httpd, self._thread
        used = httpd.request_cpu_seconds if httpd is not None else 0.0
        if thread is not None and thread.native_id is not None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
                fields = stat[stat.rindex(")") + 1 :].split()
                used += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return used

    def start(self) -> Self:
        handler = type("Handler", (_Handler,), {"app": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._httpd.quiet = self.quiet_errors
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() waits up to one interval
            name=type(self).__name__,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def dispatch(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> Reply | None:
        """The reply to one request, or None to drop the connection without answering."""
        raise NotImplementedError


class ProtocolServer(LocalHTTPServer):
    """Base for the job API fakes: subclasses implement `route`, `authorized`, `handle`
    and `error_reply`."""

    def __init__(self, *, latency_seconds: float = 0.2) -> None:
        super().__init__()
        self.latency_seconds = latency_seconds
        self.hang_seconds = 0.0
        self.drop_connections_next = 0
        self.fail_next_creates: list[Failure] = []
        self.requests: list[tuple[str, str, str]] = []  # (route, method, path)
        self.counts: Counter[str] = Counter()

    # ------------------------------------------------------------------ helpers for tests

    def count(self, route: str) -> int:
        with self.lock:
            return self.counts[route]

    def take(self, queue: list[Any]) -> Any:
        """Pop the first entry of a control list (None when empty), atomically."""
        with self.lock:
            return queue.pop(0) if queue else None

    # ------------------------------------------------------------------ dispatch

    def dispatch(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> Reply | None:
        matched = self.route(method, path)
        route = matched[0] if matched else "unknown"
        with self.lock:
            self.requests.append((route, method, path))
            self.counts[route] += 1
            hang = self.hang_seconds
            drop = self.drop_connections_next > 0
            if drop:
                self.drop_connections_next -= 1
        if hang:
            time.sleep(hang)
        if drop:
            return None
        if matched is None:
            return self.error_reply(404, f"no route for {method} {path}")
        if not self.authorized({k.lower(): v for k, v in headers.items()}):
            return self.error_reply(401, "You did not pass a valid authentication token")
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            return self.error_reply(400, "request body is not JSON")
        return self.handle(route, matched[1], payload)

    def failure_reply(self, failure: Failure) -> Reply:
        status, detail = failure if isinstance(failure, tuple) else (failure, None)
        headers = {"Retry-After": "1"} if status in (429, 503) else {}
        return self.error_reply(status, detail or DEFAULT_DETAIL.get(status, "error"), headers)

    # ------------------------------------------------------------------ subclass hooks

    def route(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        raise NotImplementedError

    def authorized(self, headers: dict[str, str]) -> bool:
        raise NotImplementedError

    def handle(self, route: str, params: dict[str, str], payload: Any) -> Reply:
        raise NotImplementedError

    def error_reply(self, status: int, detail: str, headers: dict[str, str] | None = None) -> Reply:
        raise NotImplementedError


# Default detail texts of failure_reply (Replicate's wording).
DEFAULT_DETAIL = {
    400: "The request was invalid",
    401: "Unauthenticated",
    404: "Not found",
    422: "Input validation failed",
    429: "Request was throttled. Expected available in 1 second.",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
}
