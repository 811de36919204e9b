"""A local server that speaks Replicate's HTTP API, so the real `replicate` client can be
tested without the internet (see shared/reference/providers.md).

`ProtocolServer` holds what every provider fake needs (threaded HTTP on 127.0.0.1, auth,
request log, fault injection); `ReplicateServer` adds Replicate's routes and job model.
All controls are plain attributes guarded by `lock`, so tests may change them at runtime.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

# A few bytes starting like an MP4 ("ftyp" box); tests that need a playable file pass one.
DEFAULT_VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64

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


def utc_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class _Handler(BaseHTTPRequestHandler):
    app: ProtocolServer  # set on a per-server subclass
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

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


class ProtocolServer:
    """Base for provider fakes: subclasses implement `route`, `authorized` and `handle`."""

    def __init__(self, *, latency_seconds: float = 0.2) -> None:
        self.lock = threading.RLock()
        self.latency_seconds = latency_seconds
        self.hang_seconds = 0.0
        self.drop_connections_next = 0
        self.fail_next_creates: list[Failure] = []
        self.requests: list[tuple[str, str, str]] = []  # (route, method, path)
        self.counts: Counter[str] = Counter()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        handler = type("Handler", (_Handler,), {"app": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
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
        return self.error_reply(status, detail or _DEFAULT_DETAIL.get(status, "error"), headers)

    # ------------------------------------------------------------------ subclass hooks

    def route(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        raise NotImplementedError

    def authorized(self, headers: dict[str, str]) -> bool:
        raise NotImplementedError

    def handle(self, route: str, params: dict[str, str], payload: Any) -> Reply:
        raise NotImplementedError

    def error_reply(self, status: int, detail: str, headers: dict[str, str] | None = None) -> Reply:
        raise NotImplementedError


_DEFAULT_DETAIL = {
    400: "The request was invalid",
    401: "Unauthenticated",
    404: "Not found",
    422: "Input validation failed",
    429: "Request was throttled. Expected available in 1 second.",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
}

_REPLICATE_ROUTES = [
    ("create", "POST", re.compile(r"^/v1/models/(?P<owner>[^/]+)/(?P<name>[^/]+)/predictions$")),
    ("create_version", "POST", re.compile(r"^/v1/predictions$")),
    ("cancel", "POST", re.compile(r"^/v1/predictions/(?P<id>[^/]+)/cancel$")),
    ("get", "GET", re.compile(r"^/v1/predictions/(?P<id>[^/]+)$")),
    ("file", "GET", re.compile(r"^/files/(?P<id>[^/]+)\.mp4$")),
]


class ReplicateServer(ProtocolServer):
    """Replicate's predictions API. Jobs go starting → processing → outcome over
    `latency_seconds`; the outcome is taken from `prediction_outcomes` at create time:
    "succeeded" (default), "failed" or "failed:<error text>", "aborted", "canceled"."""

    def __init__(
        self,
        token: str | None = None,
        *,
        latency_seconds: float = 0.2,
        video_bytes: bytes | Callable[[dict[str, Any]], bytes] = DEFAULT_VIDEO_BYTES,
    ) -> None:
        super().__init__(latency_seconds=latency_seconds)
        self.token = token or "r8_" + secrets.token_hex(16)
        self.video_bytes = video_bytes
        self.fail_next_gets: list[Failure] = []
        self.fail_next_files: list[Failure] = []
        self.prediction_outcomes: list[str] = []
        self.created: list[dict[str, Any]] = []
        self._jobs: dict[str, dict[str, Any]] = {}

    def env(self) -> dict[str, str]:
        return {"REPLICATE_API_TOKEN": self.token, "REPLICATE_BASE_URL": self.base_url}

    def forget(self, prediction_id: str) -> None:
        """Simulate expiry: the prediction answers 404 from now on."""
        with self.lock:
            self._jobs.pop(prediction_id, None)

    # ------------------------------------------------------------------ hooks

    def route(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        path = path.split("?", 1)[0]
        for name, verb, pattern in _REPLICATE_ROUTES:
            if verb == method and (m := pattern.match(path)):
                return name, m.groupdict()
        return None

    def authorized(self, headers: dict[str, str]) -> bool:
        return headers.get("authorization") == f"Bearer {self.token}"

    def error_reply(self, status: int, detail: str, headers: dict[str, str] | None = None) -> Reply:
        title = _DEFAULT_DETAIL.get(status, "Error").split(".")[0]
        body = {"title": title, "detail": detail, "status": status}
        return Reply.json(
            status, body, {"Content-Type": "application/problem+json", **(headers or {})}
        )

    def handle(self, route: str, params: dict[str, str], payload: Any) -> Reply:
        if route in ("create", "create_version"):
            return self._create(route, params, payload)
        if route == "file":
            if (failure := self.take(self.fail_next_files)) is not None:
                return self.failure_reply(failure)
            return self._file(params["id"])
        if (failure := self.take(self.fail_next_gets)) is not None:
            return self.failure_reply(failure)
        with self.lock:
            job = self._jobs.get(params["id"])
            if job is None:
                return self.error_reply(404, "The requested resource could not be found.")
            if route == "cancel" and job.get("canceled_at") is None:
                job["canceled_at"] = time.time()
            return Reply.json(200, self._prediction_json(job))

    # ------------------------------------------------------------------ jobs

    def _create(self, route: str, params: dict[str, str], payload: Any) -> Reply:
        if (failure := self.take(self.fail_next_creates)) is not None:
            return self.failure_reply(failure)
        if not isinstance(payload.get("input"), dict):
            return self.error_reply(422, "input is required")
        if route == "create":
            model, version = f"{params['owner']}/{params['name']}", "hidden"
        else:
            model, version = "local/versioned-model", str(payload.get("version", ""))
        job = {
            "id": secrets.token_hex(13),
            "model": model,
            "version": version,
            "input": payload["input"],
            "time": time.time(),
            "outcome": self.take(self.prediction_outcomes) or "succeeded",
        }
        with self.lock:
            self._jobs[job["id"]] = job
            self.created.append({k: job[k] for k in ("id", "model", "version", "input", "time")})
            return Reply.json(201, self._prediction_json(job))

    def _status(self, job: dict[str, Any]) -> tuple[str, float | None]:
        """(status, completion time) of a job now."""
        if job.get("canceled_at") is not None:
            return "canceled", job["canceled_at"]
        elapsed = time.time() - job["time"]
        if elapsed < self.latency_seconds / 2:
            return "starting", None
        if elapsed < self.latency_seconds:
            return "processing", None
        return job["outcome"].split(":", 1)[0], job["time"] + self.latency_seconds

    def _prediction_json(self, job: dict[str, Any]) -> dict[str, Any]:
        status, completed = self._status(job)
        api = f"{self.base_url}/v1/predictions/{job['id']}"
        output = f"{self.base_url}/files/{job['id']}.mp4" if status == "succeeded" else None
        error = None
        if status == "failed":
            _, _, text = job["outcome"].partition(":")
            error = text or "Prediction failed: the model raised an error"
        elif status == "aborted":
            error = "Prediction was aborted"
        started = job["time"] + self.latency_seconds / 2
        return {
            "id": job["id"],
            "model": job["model"],
            "version": job["version"],
            "input": job["input"],
            "output": output,
            "logs": "",
            "error": error,
            "status": status,
            "data_removed": False,
            "created_at": utc_iso(job["time"]),
            "started_at": utc_iso(started) if status != "starting" else None,
            "completed_at": utc_iso(completed) if completed else None,
            "metrics": {"predict_time": self.latency_seconds / 2} if completed else {},
            "urls": {
                "get": api,
                "cancel": f"{api}/cancel",
                "web": f"{self.base_url}/p/{job['id']}",
            },
        }

    def _file(self, prediction_id: str) -> Reply:
        with self.lock:
            job = self._jobs.get(prediction_id)
            done = job is not None and self._status(job)[0] == "succeeded"
        if not done or job is None:
            return self.error_reply(404, "file not found")
        data = self.video_bytes(dict(job)) if callable(self.video_bytes) else self.video_bytes
        return Reply(200, data, {"Content-Type": "video/mp4"})
