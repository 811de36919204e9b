"""The webhook receiver over real HTTP (aiohttp in process): what each kind of request is
answered, what it wakes, how the signing secret is fetched, and that it is never logged.
The operator's side is a fake of its own interface (a wake function)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestClient

from controller.observability import metrics as m
from controller.settings import Settings
from controller.webhooks import endpoint, poll_delay
from controller.webhooks.receiver import PATH, Receiver, SigningSecret
from controller.webhooks.verify import MAX_BODY_BYTES, Outcome, sign
from tests.support.webhook_sender import new_secret

SECRET = new_secret()


class ReceiverServer(BaseTestServer):
    """aiohttp's test server around the receiver's own server (limits included)."""

    def __init__(self, receiver: Receiver, **limits: Any) -> None:
        super().__init__()
        self.receiver = receiver
        self.limits = limits

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        return web.ServerRunner(self.receiver.server(**self.limits), **kwargs)


class Fetcher:
    """The SDK's secret fetch, faked: returns `keys` in turn (an Exception is raised)."""

    def __init__(self, *keys: Any) -> None:
        self.keys = list(keys)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        key = self.keys[min(self.calls, len(self.keys)) - 1]
        if isinstance(key, Exception):
            raise key
        return key


def prediction(pid: str = "p1", status: str = "succeeded") -> bytes:
    return json.dumps({"id": pid, "status": status, "output": "https://x/y.mp4"}).encode()


def headers_for(body: bytes, secret: str = SECRET, webhook_id: str = "msg_1") -> dict[str, str]:
    ts = int(time.time())
    return {
        "Content-Type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, webhook_id, ts, body),
    }


def outcomes() -> dict[str, float]:
    return {
        s.labels["outcome"]: s.value
        for metric in m.WEBHOOKS.collect()
        for s in metric.samples
        if s.name.endswith("_total")
    }


Scenario = Callable[[TestClient, list[str], Fetcher], Awaitable[None]]


def run(
    scenario: Scenario,
    fetcher: Fetcher | None = None,
    known: frozenset[str] = frozenset({"p1"}),
    leader: bool = True,
) -> None:
    fetcher = fetcher or Fetcher(SECRET)
    woken: list[str] = []

    def wake(pid: str) -> Outcome:
        if pid in known:
            woken.append(pid)
            return Outcome.ACCEPTED
        return Outcome.PENDING if pid == "p-just-started" else Outcome.UNKNOWN

    async def main() -> None:
        receiver = Receiver(SigningSecret(fetcher), wake, is_leader=lambda: leader)
        async with TestClient(ReceiverServer(receiver)) as client:
            await scenario(client, woken, fetcher)

    asyncio.run(main())


async def post(client: TestClient, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    response = await client.post(PATH, data=body, headers=headers)
    return response.status, (await response.json())["outcome"]


def test_a_verified_completion_wakes_its_scene_once_and_a_replay_changes_nothing() -> None:
    async def scenario(client: TestClient, woken: list[str], fetcher: Fetcher) -> None:
        body = prediction()
        headers = headers_for(body)
        assert await post(client, body, headers) == (200, "accepted")
        assert woken == ["p1"]
        assert await post(client, body, headers) == (200, "replay")
        assert woken == ["p1"]
        assert fetcher.calls == 1  # fetched once, then cached

    before = outcomes()
    run(scenario)
    after = outcomes()
    assert after["accepted"] - before.get("accepted", 0) == 1
    assert after["replay"] - before.get("replay", 0) == 1


@pytest.mark.parametrize(
    ("pid", "status", "expected"),
    [
        pytest.param("p-other", "succeeded", "unknown", id="unknown-prediction"),
        pytest.param("p-just-started", "succeeded", "pending", id="started-not-yet-recorded"),
        pytest.param("p1", "processing", "ignored", id="not-a-completion"),
        pytest.param("p1", "failed", "accepted", id="failed-is-a-completion"),
        pytest.param("p1", "canceled", "accepted", id="canceled-is-a-completion"),
    ],
)
def test_verified_requests_that_wake_nothing(pid: str, status: str, expected: str) -> None:
    async def scenario(client: TestClient, woken: list[str], fetcher: Fetcher) -> None:
        body = prediction(pid, status)
        code = 503 if expected == "pending" else 200  # pending: Replicate retries
        assert await post(client, body, headers_for(body)) == (code, expected)
        assert woken == ([pid] if expected == "accepted" else [])

    run(scenario)


def test_a_retry_after_pending_is_not_a_replay() -> None:
    """503 pending asks Replicate to retry; the retry has the same webhook-id."""
    known: set[str] = set()
    woken: list[str] = []

    def wake(pid: str) -> Outcome:
        if pid in known:
            woken.append(pid)
            return Outcome.ACCEPTED
        return Outcome.PENDING

    async def main() -> None:
        receiver = Receiver(SigningSecret(Fetcher(SECRET)), wake)
        async with TestClient(ReceiverServer(receiver)) as client:
            body = prediction()
            assert await post(client, body, headers_for(body)) == (503, "pending")
            known.add("p1")  # meanwhile its id reached status
            assert await post(client, body, headers_for(body)) == (200, "accepted")
            assert await post(client, body, headers_for(body)) == (200, "replay")
            assert woken == ["p1"]

    asyncio.run(main())


def test_invalid_requests_get_4xx_and_wake_nothing() -> None:
    async def scenario(client: TestClient, woken: list[str], fetcher: Fetcher) -> None:
        body = prediction()
        good = headers_for(body)
        response = await client.get(PATH)
        assert response.status == 405 and response.headers["Allow"] == "POST"
        response = await client.put(PATH, data=body, headers=good)
        assert response.status == 405
        assert await post(client, body, {**good, "Content-Type": "text/plain"}) == (
            415,
            "unsupported_media_type",
        )
        big = b"{" + b" " * MAX_BODY_BYTES + b"}"
        assert await post(client, big, headers_for(big)) == (413, "too_large")

        async def chunks() -> Any:  # no Content-Length: the cap applies while reading
            for _ in range(MAX_BODY_BYTES // 65536 + 2):
                yield b" " * 65536

        response = await client.post(PATH, data=chunks(), headers=good)
        assert response.status == 413
        assert await post(client, body, headers_for(body, secret=new_secret())) == (
            401,
            "bad_signature",
        )
        stale = {**good, "webhook-timestamp": str(int(time.time()) - 301)}
        assert await post(client, body, stale) == (400, "stale")
        no_sig = {k: v for k, v in good.items() if k != "webhook-signature"}
        assert await post(client, body, no_sig) == (400, "malformed")
        not_json = b"not json"
        assert await post(client, not_json, headers_for(not_json, webhook_id="m2")) == (
            400,
            "malformed",
        )
        response = await client.post("/other", data=body, headers=good)
        assert response.status == 404
        assert woken == []

    run(scenario)


def test_a_failed_signature_fetches_the_secret_again_once() -> None:
    rotated = new_secret()

    async def scenario(client: TestClient, woken: list[str], fetcher: Fetcher) -> None:
        body = prediction()
        # Signed with the rotated secret: the cached one fails, the re-fetched one passes.
        assert await post(client, body, headers_for(body, secret=rotated)) == (200, "accepted")
        assert fetcher.calls == 2
        # Forged ones do not make the receiver read the secret again and again.
        for i in range(3):
            forged = headers_for(body, secret=new_secret(), webhook_id=f"f{i}")
            assert await post(client, body, forged) == (401, "bad_signature")
        assert fetcher.calls == 2
        assert woken == ["p1"]

    run(scenario, Fetcher(SECRET, rotated))


def test_without_a_secret_the_receiver_answers_503_and_never_logs_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    leaked = "whsec_c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1ub3QtbGVhaw=="

    async def scenario(client: TestClient, woken: list[str], fetcher: Fetcher) -> None:
        body = prediction()
        status, outcome = await post(client, body, headers_for(body, secret=leaked))
        assert (status, outcome) == (503, "no_secret")
        assert woken == []

    # The SDK's own errors may quote the secret: only the error's type is logged.
    run(scenario, Fetcher(ValueError(f"Invalid secret key format: {leaked}")))
    run(scenario, Fetcher(leaked.replace("whsec_", "whsec_x_")))  # malformed: not used
    assert caplog.records, "the failures are logged"
    for record in caplog.records:
        assert "c2VjcmV0" not in record.getMessage() and "c2VjcmV0" not in str(record.__dict__)


def test_a_standby_answers_503_so_replicate_retries() -> None:
    async def scenario(client: TestClient, woken: list[str], fetcher: Fetcher) -> None:
        body = prediction()
        response = await client.post(PATH, data=body, headers=headers_for(body))
        assert response.status == 503 and response.headers["Retry-After"]
        assert woken == []

    run(scenario, leader=False)


def test_settings_turn_webhooks_on() -> None:
    def job(provider: str, job_id: str | None = "p1") -> Any:  # a GenerationInfo's fields
        return SimpleNamespace(provider=provider, job_id=job_id)

    off = Settings()
    assert endpoint(off) is None
    assert poll_delay(off, job("replicate"), 5.0) == 5.0
    on = Settings(webhook_url="https://hooks.example.com/", webhook_poll_seconds=120)
    assert endpoint(on) == "https://hooks.example.com/webhooks/replicate"
    assert poll_delay(on, job("replicate"), 5.0) == 120
    assert poll_delay(on, job("veo"), 5.0) == 5.0  # Veo does not call back: polled as before
    assert poll_delay(on, job("replicate", None), 5.0) == 5.0  # a marker: orphan search
    assert poll_delay(on, None, 5.0) == 5.0
    assert Settings().webhook_poll_seconds == 300
