"""The webhook receiver: an aiohttp server in the operator process, on its own port.

A request is trusted only after `verify.check` (signature, timestamp, replay), and even
then its body is only a hint: it names a prediction, and the Scene waiting for it is
woken in the urgent lane to poll it once, exactly as the safety-net poll would. Nothing
here writes status. Every request is counted by outcome; rejections are logged at debug
level only (the counter is the signal), and the secret never reaches a log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

from aiohttp import web

from controller.kube.errors import NotLeaderError
from controller.observability import metrics as m
from controller.webhooks.verify import (
    MAX_BODY_BYTES,
    STATUS,
    Outcome,
    ReplayGuard,
    check,
    secret_is_well_formed,
)

log = logging.getLogger("scene_operator.webhooks")

PATH = "/webhooks/replicate"
REFETCH_INTERVAL = 30.0  # a flood of forged signatures costs Replicate one read per 30 s
READ_TIMEOUT = 10.0  # a client trickling its body does not hold a connection for long
TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})


class SigningSecret:
    """The account's signing secret, fetched through the SDK (`fetch`, blocking, run in a
    thread) and cached. Fetched again when a signature does not match, in case it was
    rotated, and while none could be fetched: each at most once per `interval`, so a
    flood of forged requests costs Replicate one read per interval. Never logged."""

    def __init__(
        self,
        fetch: Callable[[], str],
        *,
        clock: Callable[[], float] = time.monotonic,
        interval: float = REFETCH_INTERVAL,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._interval = interval
        self._key: str | None = None
        self._tried_at: float | None = None  # last fetch after the first one
        self._started = False
        self._lock = asyncio.Lock()

    async def get(self) -> str | None:
        if self._key is None:
            await self._refetch()
        return self._key

    async def refresh(self) -> str | None:
        """A newer secret than the cached one, or None (not fetched, or unchanged)."""
        before = self._key
        await self._refetch()
        return self._key if self._key != before else None

    async def _refetch(self) -> None:
        async with self._lock:
            now = self._clock()
            if self._started:
                if self._tried_at is not None and now - self._tried_at < self._interval:
                    return
                self._tried_at = now
            self._started = True
            try:
                key = await asyncio.to_thread(self._fetch)
            except Exception as e:  # the type only: an SDK message might quote a request
                log.warning("webhook signing secret not fetched", extra={"error": type(e).__name__})
                return
            if not isinstance(key, str) or not secret_is_well_formed(key):
                log.warning("webhook signing secret has an unexpected format; not used")
                return
            self._key = key


class Receiver:
    def __init__(
        self,
        secret: SigningSecret,
        on_completed: Callable[[str], Outcome],
        *,
        is_leader: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.time,
        replays: ReplayGuard | None = None,
    ) -> None:
        self.secret = secret
        self.on_completed = on_completed  # prediction id -> ACCEPTED (woken), UNKNOWN, PENDING
        self.is_leader = is_leader
        self.clock = clock
        self.replays = replays or ReplayGuard()
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", PATH, self.handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _not_found(self, request: web.Request) -> web.Response:
        return self._answer(Outcome.NOT_FOUND)

    async def handle(self, request: web.Request) -> web.Response:
        outcome = await self._verify_and_act(request)
        if STATUS[outcome] >= 400:
            log.debug("webhook not acted on", extra={"reason": str(outcome)})
        return self._answer(outcome)

    def _answer(self, outcome: Outcome) -> web.Response:
        m.WEBHOOKS.labels(str(outcome)).inc()
        headers = {"Allow": "POST"} if outcome == Outcome.METHOD else {}
        if outcome in (Outcome.STANDBY, Outcome.NO_SECRET, Outcome.PENDING):
            headers["Retry-After"] = "30"
        return web.json_response({"outcome": str(outcome)}, status=STATUS[outcome], headers=headers)

    async def _verify_and_act(self, request: web.Request) -> Outcome:
        if request.method != "POST":
            return Outcome.METHOD
        if not self.is_leader():
            return Outcome.STANDBY  # Replicate retries, and reaches the new leader
        if request.content_type != "application/json":
            return Outcome.MEDIA_TYPE
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return Outcome.TOO_LARGE
        try:
            body = await asyncio.wait_for(request.read(), READ_TIMEOUT)
        except web.HTTPRequestEntityTooLarge:  # a chunked body over the cap
            return Outcome.TOO_LARGE
        except TimeoutError:
            return Outcome.MALFORMED
        secret = await self.secret.get()
        if secret is None:
            return Outcome.NO_SECRET
        checked = check(request.headers, body, secret, self.clock(), self.replays)
        if checked.outcome == Outcome.BAD_SIGNATURE and (newer := await self.secret.refresh()):
            checked = check(request.headers, body, newer, self.clock(), self.replays)
        if checked.outcome is not None:
            return checked.outcome
        try:
            prediction = json.loads(body)
        except ValueError:
            return Outcome.MALFORMED
        if not isinstance(prediction, dict) or not isinstance(prediction.get("id"), str):
            return Outcome.MALFORMED
        if prediction.get("status") not in TERMINAL:
            return Outcome.IGNORED
        try:
            outcome = self.on_completed(prediction["id"])
        except NotLeaderError:  # the Lease was lost a moment ago: the next leader acts
            outcome = Outcome.STANDBY
        if STATUS[outcome] >= 500:  # Replicate retries with the same webhook-id
            self.replays.forget(checked.webhook_id)
        # One line per authentic completion (like the job's start): what it did.
        log.info(
            "webhook for prediction %s: %s",
            prediction["id"],
            outcome,
            extra={"provider": "replicate", "job_id": prediction["id"]},
        )
        return outcome
