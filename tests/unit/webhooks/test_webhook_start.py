"""`webhooks.start` with leader election: the receiver listens at once, but the signing
secret is fetched only once this process leads (a standby's provider calls are refused,
so a fetch before that could only fail and log it)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from controller import webhooks
from controller.demo.free_ports import free_port
from controller.leaderelection.guard import Guarded
from controller.settings import Settings
from tests.support.webhook_sender import new_secret


class Leadership:
    """An elector's interface: `is_leader`, and `wait_leading` that returns once elected."""

    def __init__(self) -> None:
        self.leading = asyncio.Event()

    def is_leader(self) -> bool:
        return self.leading.is_set()

    async def wait_leading(self) -> None:
        await self.leading.wait()


class Provider:
    def __init__(self) -> None:
        self.secret = new_secret()
        self.fetches = 0

    def webhook_secret(self) -> str:
        self.fetches += 1
        return self.secret


def edges(provider: Any) -> dict[str, Any]:
    """What the composition root gives the receiver: the provider, the cache's Scenes and
    a wake-up."""
    return {"provider": provider, "scenes": dict, "wake_scene": lambda key: None}


def test_the_secret_is_fetched_after_winning_the_election(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="scene_operator")
    leader = Leadership()
    provider = Provider()
    # As in the operator: the standby's provider refuses every call (NotLeaderError).
    guarded = Guarded(provider, leader.is_leader, "video provider replicate")
    settings = Settings(webhook_url="http://127.0.0.1", webhook_port=free_port())

    async def main() -> None:
        receiver = await webhooks.start(settings, **edges(guarded), elector=leader)
        try:
            await asyncio.sleep(0.2)
            assert provider.fetches == 0  # a standby does not ask
            leader.leading.set()
            for _ in range(100):
                if receiver.secret.cached is not None:
                    break
                await asyncio.sleep(0.02)
            assert provider.fetches == 1
            assert receiver.secret.cached == provider.secret
        finally:
            await receiver.stop()

    asyncio.run(main())
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "not fetched" in m], messages


def test_without_election_the_secret_is_fetched_at_start() -> None:
    provider = Provider()
    settings = Settings(webhook_url="http://127.0.0.1", webhook_port=free_port())

    async def main() -> None:
        receiver = await webhooks.start(settings, **edges(provider))
        try:
            assert provider.fetches == 1
            assert receiver.secret.cached == provider.secret
        finally:
            await receiver.stop()

    asyncio.run(main())
