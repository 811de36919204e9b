"""Replicate webhooks end to end in one process: the real replicate SDK creates a
prediction with a webhook against the local protocol server, which calls back signed on
completion; the receiver verifies it with the secret the SDK fetched and wakes the job."""

from __future__ import annotations

import asyncio
import time

from controller.api.request import VideoRequest
from controller.demo.free_ports import free_port
from controller.providers.replicate_video import ReplicateVideoProvider
from controller.webhooks.receiver import PATH, Receiver, SigningSecret
from controller.webhooks.verify import Outcome
from tests.support.replicate_server import ReplicateServer

REQUEST = VideoRequest(prompt="a kite", duration_seconds=4, aspect_ratio="16:9")


async def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_prediction_created_with_a_webhook_calls_back_signed_and_wakes_its_job() -> None:
    with ReplicateServer(latency_seconds=0.3) as server:
        port = free_port()
        url = f"http://127.0.0.1:{port}{PATH}"
        provider = ReplicateVideoProvider(
            api_token=server.token, base_url=server.base_url, webhook=url
        )
        woken: list[str] = []

        async def main() -> str:
            secret = SigningSecret(provider.webhook_secret)

            def wake(pid: str) -> Outcome:
                woken.append(pid)
                return Outcome.ACCEPTED

            receiver = Receiver(secret, wake)
            await receiver.start("127.0.0.1", port)
            try:
                assert await secret.get() == server.webhooks.secret  # through the SDK
                job_id = await provider.start(REQUEST)
                await wait_for(lambda: woken)
                return job_id
            finally:
                await receiver.stop()

        try:
            job_id = asyncio.run(main())
        finally:
            provider.close()
        assert woken == [job_id]
        (delivery,) = server.webhooks.deliveries
        assert (delivery.prediction_id, delivery.url, delivery.answers) == (job_id, url, [200])
        assert server.count("secret") == 1
        assert server.count("get") == 0  # the callback alone woke it: no poll


def test_without_a_webhook_url_predictions_are_created_as_before() -> None:
    with ReplicateServer(latency_seconds=0.1) as server:
        provider = ReplicateVideoProvider(api_token=server.token, base_url=server.base_url)
        try:
            asyncio.run(provider.start(REQUEST))
            time.sleep(0.3)
        finally:
            provider.close()
        assert len(server.created) == 1
        assert server.webhooks.deliveries == []
