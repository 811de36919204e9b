"""Replicate's side of webhooks, for the local protocol server: the signing secret, and
signed deliveries (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature)
with Replicate-like retries on a failure or a non-2xx answer."""

from __future__ import annotations

import base64
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from controller.webhooks.verify import sign

RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)  # after the first attempt (Replicate backs off too)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@dataclass
class Delivery:
    """One webhook message (the same webhook-id across its retries)."""

    prediction_id: str
    webhook_id: str
    body: bytes
    url: str
    answers: list[int] = field(default_factory=list)  # HTTP status per attempt (0: no answer)
    headers: dict[str, str] = field(default_factory=dict)  # of the last attempt
    answered_at: float | None = None  # time.time() of the last answer

    @property
    def accepted(self) -> bool:
        return bool(self.answers) and 200 <= self.answers[-1] < 300


class WebhookSender:
    def __init__(self) -> None:
        self.secret = new_secret()
        self.drop = False  # True: completions are not delivered (a lost webhook)
        self.lag = 0.05  # seconds from a job's completion to its webhook
        self.deliveries: list[Delivery] = []
        self.lock = threading.Lock()
        self._timers: list[threading.Timer] = []
        self.cpu_seconds = 0.0  # of the delivery threads (the benchmark reports its fakes)

    def schedule(self, delay: float, prediction_id: str, url: str, body: Any) -> None:
        """Deliver `body()` (the prediction JSON at that time) to `url` after `delay`."""
        timer = threading.Timer(delay, self._deliver, (prediction_id, url, body))
        timer.daemon = True
        with self.lock:
            self._timers.append(timer)
        timer.start()

    def cancel(self) -> None:
        with self.lock:
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()

    def headers(self, webhook_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        ts = int(time.time()) if timestamp is None else timestamp
        return {
            "Content-Type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": sign(self.secret, webhook_id, ts, body),
        }

    def _deliver(self, prediction_id: str, url: str, body: Any) -> None:
        start = time.thread_time()
        try:
            self._attempts(prediction_id, url, body)
        finally:
            used = time.thread_time() - start
            with self.lock:
                self.cpu_seconds += used

    def _attempts(self, prediction_id: str, url: str, body: Any) -> None:
        if self.drop:
            return
        data = body() if callable(body) else body
        delivery = Delivery(prediction_id, "msg_" + secrets.token_hex(12), data, url)
        with self.lock:
            self.deliveries.append(delivery)
        for delay in (0.0, *RETRY_DELAYS):
            time.sleep(delay)
            delivery.headers = self.headers(delivery.webhook_id, data)
            status = post(url, data, delivery.headers)
            delivery.answers.append(status)
            delivery.answered_at = time.time()
            if 200 <= status < 300 or 400 <= status < 500:
                return  # delivered, or refused for good


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = 5.0) -> int:
    """POST and return the HTTP status (0 when there was no answer)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return 0
