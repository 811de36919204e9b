"""A local server that speaks Replicate's HTTP API, so the real `replicate` client can be
tested without the internet (see shared/reference/providers.md).

`ReplicateServer` adds Replicate's routes and job model to `ProtocolServer` (threaded HTTP
on 127.0.0.1, auth, request log, fault injection; see tests/support/protocol.py).
All controls are plain attributes guarded by `lock`, so tests may change them at runtime.
"""

from __future__ import annotations

import json
import math
import random
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from tests.support.protocol import (
    DEFAULT_DETAIL,
    DEFAULT_VIDEO_BYTES,
    Failure,
    ProtocolServer,
    Reply,
)
from tests.support.token_bucket import TokenBucket, retry_after_header
from tests.support.webhook_sender import WebhookSender

# Also importable from here, where they used to live (tests import Reply from here).
__all__ = [
    "DEFAULT_VIDEO_BYTES",
    "Failure",
    "ProtocolServer",
    "ReplicateServer",
    "Reply",
    "utc_iso",
]


def utc_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


_REPLICATE_ROUTES = [
    ("create", "POST", re.compile(r"^/v1/models/(?P<owner>[^/]+)/(?P<name>[^/]+)/predictions$")),
    ("create_version", "POST", re.compile(r"^/v1/predictions$")),
    ("cancel", "POST", re.compile(r"^/v1/predictions/(?P<id>[^/]+)/cancel$")),
    ("get", "GET", re.compile(r"^/v1/predictions/(?P<id>[^/]+)$")),
    ("list", "GET", re.compile(r"^/v1/predictions$")),
    ("file", "GET", re.compile(r"^/files/(?P<id>[^/]+)\.mp4$")),
    ("secret", "GET", re.compile(r"^/v1/webhooks/default/secret$")),
]
# Which rate limit a route draws on (Replicate: creates, and every other API call);
# files come from a CDN (replicate.delivery) and are not limited.
_LIMIT_OF = {"create": "create", "create_version": "create", "file": None}


class ReplicateServer(ProtocolServer):
    """Replicate's predictions API. Jobs go starting → processing → outcome over
    `latency_seconds`; the outcome is taken from `prediction_outcomes` at create time:
    "succeeded" (default), "failed" or "failed:<error text>", "aborted", "canceled".

    `latency_sigma` > 0 spreads the jobs' lengths as real ones are: each job takes
    `latency_seconds` times a log-normal factor of median 1 (log-sd `latency_sigma`),
    drawn at its create from a generator seeded with `seed`, so a run's jobs get the
    same lengths in creation order every time."""

    def __init__(
        self,
        token: str | None = None,
        *,
        latency_seconds: float = 0.2,
        latency_sigma: float = 0.0,
        seed: int = 0,
        video_bytes: bytes | Callable[[dict[str, Any]], bytes] = DEFAULT_VIDEO_BYTES,
    ) -> None:
        super().__init__(latency_seconds=latency_seconds)
        self.latency_sigma = latency_sigma
        self._spread = random.Random(seed)
        self.token = token or "r8_" + secrets.token_hex(16)
        self.video_bytes = video_bytes
        self.fail_next_gets: list[Failure] = []
        self.fail_next_files: list[Failure] = []
        # Set: output downloads wait until it is set (at most 25 s: under the reader's 30 s).
        self.hold_files: threading.Event | None = None
        self.prediction_outcomes: list[str] = []
        # Where a succeeded prediction's output points (default: this server's /files/);
        # tests point it elsewhere, e.g. at an internal address.
        self.output_url: Callable[[dict[str, Any]], str] | None = None
        self.created: list[dict[str, Any]] = []
        self._jobs: dict[str, dict[str, Any]] = {}
        self.list_page_size = 100  # Replicate's page size
        # Signed webhooks on completion for predictions created with `webhook`; the
        # secret is served at /v1/webhooks/default/secret (webhooks.drop: lose them).
        self.webhooks = WebhookSender()
        # Optional per-account rate limits ("create", "read"; see `limit`): off by default.
        self.rate_limits: dict[str, TokenBucket] = {}
        self.throttled: Counter[str] = Counter()  # 429s answered, by route

    def limit(
        self, creates_per_minute: float, reads_per_minute: float, burst_seconds: float = 1.0
    ) -> None:
        """Answer 429 with Retry-After beyond these limits (Replicate's published ones are
        600 creates/min and 3,000 reads/min), each a token bucket holding `burst_seconds`
        worth of requests."""
        with self.lock:
            self.rate_limits = {
                "create": TokenBucket.per_minute(creates_per_minute, burst_seconds),
                "read": TokenBucket.per_minute(reads_per_minute, burst_seconds),
            }

    def finished_at(self) -> dict[str, float]:
        """Prediction id -> time.time() at which it finished, for finished ones."""
        with self.lock:
            done = {i: self._status(j)[1] for i, j in self._jobs.items()}
        return {i: t for i, t in done.items() if t is not None and t <= time.time()}

    def env(self) -> dict[str, str]:
        return {"REPLICATE_API_TOKEN": self.token, "REPLICATE_BASE_URL": self.base_url}

    def stop(self) -> None:
        self.webhooks.cancel()
        super().stop()

    def forget(self, prediction_id: str) -> None:
        """Simulate expiry: the prediction answers 404 from now on."""
        with self.lock:
            self._jobs.pop(prediction_id, None)

    # ------------------------------------------------------------------ hooks

    def route(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        path, _, query = path.partition("?")
        for name, verb, pattern in _REPLICATE_ROUTES:
            if verb == method and (m := pattern.match(path)):
                cursor = parse_qs(query).get("cursor", ["0"])[0]
                return name, {**m.groupdict(), **({"cursor": cursor} if name == "list" else {})}
        return None

    def authorized(self, headers: dict[str, str]) -> bool:
        return headers.get("authorization") == f"Bearer {self.token}"

    def error_reply(self, status: int, detail: str, headers: dict[str, str] | None = None) -> Reply:
        title = DEFAULT_DETAIL.get(status, "Error").split(".")[0]
        body = {"title": title, "detail": detail, "status": status}
        return Reply.json(
            status, body, {"Content-Type": "application/problem+json", **(headers or {})}
        )

    def _throttle(self, route: str) -> Reply | None:
        with self.lock:
            bucket = self.rate_limits.get(_LIMIT_OF.get(route, "read") or "")
            wait = bucket.take() if bucket is not None else 0.0
            if wait:
                self.throttled[route] += 1
        if not wait:
            return None
        after = retry_after_header(wait)
        detail = f"Request was throttled. Expected available in {after} second."
        return self.error_reply(429, detail, {"Retry-After": after})

    def handle(self, route: str, params: dict[str, str], payload: Any) -> Reply:
        if (throttled := self._throttle(route)) is not None:
            return throttled
        if route in ("create", "create_version"):
            return self._create(route, params, payload)
        if route == "file":
            if (failure := self.take(self.fail_next_files)) is not None:
                return self.failure_reply(failure)
            if (hold := self.hold_files) is not None:
                hold.wait(25)
            return self._file(params["id"])
        if (failure := self.take(self.fail_next_gets)) is not None:
            return self.failure_reply(failure)
        if route == "secret":
            return Reply.json(200, {"key": self.webhooks.secret})
        if route == "list":
            return self._list(int(params["cursor"]) if params["cursor"].isdigit() else 0)
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
            # The factor is drawn under the lock: creation order is the draw order.
            if self.latency_sigma > 0:
                job["factor"] = math.exp(self._spread.gauss(0.0, self.latency_sigma))
            self.created.append({k: job[k] for k in ("id", "model", "version", "input", "time")})
            self.created[-1]["seconds"] = self._seconds(job)
            created = self._prediction_json(job)
        if isinstance(hook := payload.get("webhook"), str) and "completed" in (
            payload.get("webhook_events_filter") or ["completed"]
        ):
            delay = self._seconds(job) + self.webhooks.lag
            self.webhooks.schedule(delay, job["id"], hook, self._body(job))
        return Reply.json(201, created)

    def _body(self, job: dict[str, Any]) -> Callable[[], bytes]:
        def body() -> bytes:
            with self.lock:
                return json.dumps(self._prediction_json(job)).encode()

        return body

    def _list(self, offset: int) -> Reply:
        """A page of the account's predictions, newest first; `next` is a full URL."""
        with self.lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j["time"], reverse=True)
            page = [self._prediction_json(j) for j in jobs[offset : offset + self.list_page_size]]
        end = offset + self.list_page_size
        more = end < len(jobs)
        return Reply.json(
            200,
            {
                "previous": None,
                "next": f"{self.base_url}/v1/predictions?cursor={end}" if more else None,
                "results": page,
            },
        )

    def _seconds(self, job: dict[str, Any]) -> float:
        """How long a job runs: the latency now (tests change it while jobs run), times
        its own spread factor."""
        return float(self.latency_seconds * job.get("factor", 1.0))

    def _status(self, job: dict[str, Any]) -> tuple[str, float | None]:
        """(status, completion time) of a job now."""
        if job.get("canceled_at") is not None:
            return "canceled", job["canceled_at"]
        elapsed, seconds = time.time() - job["time"], self._seconds(job)
        if elapsed < seconds / 2:
            return "starting", None
        if elapsed < seconds:
            return "processing", None
        return job["outcome"].split(":", 1)[0], job["time"] + seconds

    def _prediction_json(self, job: dict[str, Any]) -> dict[str, Any]:
        status, completed = self._status(job)
        api = f"{self.base_url}/v1/predictions/{job['id']}"
        output = None
        if status == "succeeded":
            output = (
                self.output_url(job)
                if self.output_url
                else f"{self.base_url}/files/{job['id']}.mp4"
            )
        error = None
        if status == "failed":
            _, _, text = job["outcome"].partition(":")
            error = text or "Prediction failed: the model raised an error"
        elif status == "aborted":
            error = "Prediction was aborted"
        started = job["time"] + self._seconds(job) / 2
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
            "metrics": {"predict_time": self._seconds(job) / 2} if completed else {},
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
