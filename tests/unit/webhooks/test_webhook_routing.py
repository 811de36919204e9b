"""Deliveries reach the leader: a standby forwards a delivery to the leader's receiver
(named in the Lease) and relays its answer; the leader label's writes. Over real HTTP
between two receivers in one process; the API server is faked (its real behaviour:
tests/integration/test_webhook_routing.py)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from aiohttp import web

from controller.demo.free_ports import free_port
from controller.webhooks import routing
from controller.webhooks.receiver import PATH, Receiver, SigningSecret
from controller.webhooks.routing import (
    ANNOTATION_ENDPOINT,
    FORWARDED,
    LABEL_LEADER,
    LeaderLabel,
    LeaderLookup,
    Routing,
    pod_name,
)
from controller.webhooks.verify import Outcome, sign
from tests.support.webhook_sender import new_secret, post

SECRET = new_secret()


def delivery(pid: str = "p1", webhook_id: str = "msg_1") -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"id": pid, "status": "succeeded"}).encode()
    ts = int(time.time())
    return body, {
        "Content-Type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(SECRET, webhook_id, ts, body),
    }


class Lookup:
    def __init__(self, endpoint: str | None) -> None:
        self.endpoint = endpoint

    async def __call__(self) -> str | None:
        return self.endpoint


async def serve(receiver: Receiver) -> tuple[web.BaseRunner, int]:
    runner = web.ServerRunner(receiver.server())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


def two_receivers(lookup_endpoint: Any) -> tuple[list[str], Any]:
    """A leader and a standby whose lookup answers `lookup_endpoint(leader port)`."""
    woken: list[str] = []

    def wake(pid: str) -> Outcome:
        woken.append(pid)
        return Outcome.ACCEPTED

    async def setup() -> tuple[Receiver, Receiver, list[web.BaseRunner], int]:
        leader = Receiver(SigningSecret(lambda: SECRET), wake, is_leader=lambda: True)
        runner_l, port_l = await serve(leader)
        route = Routing(label=None, lookup=Lookup(lookup_endpoint(port_l)))  # type: ignore[arg-type]
        standby = Receiver(
            SigningSecret(lambda: SECRET), wake, is_leader=lambda: False, route=route
        )
        runner_s, port_s = await serve(standby)
        return leader, standby, [runner_l, runner_s], port_s

    return woken, setup


def send(port: int, body: bytes, headers: dict[str, str]) -> int:
    return post(f"http://127.0.0.1:{port}{PATH}", body, headers)


def test_a_standby_forwards_a_delivery_to_the_leader_which_acts_on_it() -> None:
    woken, setup = two_receivers(lambda port: f"http://127.0.0.1:{port}")

    async def main() -> None:
        _, standby, runners, port = await setup()
        try:
            body, headers = delivery()
            assert await asyncio.to_thread(send, port, body, headers) == 200
            assert woken == ["p1"]  # acted on by the leader, at once
            # A replay through the standby is the leader's replay.
            assert await asyncio.to_thread(send, port, body, headers) == 200
            assert woken == ["p1"]
            # A forged one: the leader's 401 is relayed, nothing woken.
            forged = {**headers, "webhook-id": "msg_2"}
            assert await asyncio.to_thread(send, port, body, forged) == 401
            assert woken == ["p1"]
        finally:
            for runner in runners:
                await runner.cleanup()
            await standby.stop()

    asyncio.run(main())


@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param(lambda port: None, id="no-leader-known"),
        pytest.param(lambda port: f"http://127.0.0.1:{free_port()}", id="leader-unreachable"),
    ],
)
def test_without_a_reachable_leader_the_standby_answers_503(endpoint: Any) -> None:
    woken, setup = two_receivers(endpoint)

    async def main() -> None:
        _, standby, runners, port = await setup()
        try:
            body, headers = delivery()
            assert await asyncio.to_thread(send, port, body, headers) == 503
            assert woken == []
        finally:
            for runner in runners:
                await runner.cleanup()
            await standby.stop()

    asyncio.run(main())


def test_a_forwarded_request_is_never_forwarded_again() -> None:
    woken, setup = two_receivers(lambda port: f"http://127.0.0.1:{port}")

    async def main() -> None:
        _, standby, runners, port = await setup()
        try:
            body, headers = delivery()
            hopped = {**headers, FORWARDED: "1"}
            assert await asyncio.to_thread(send, port, body, hopped) == 503
            assert woken == []
        finally:
            for runner in runners:
                await runner.cleanup()
            await standby.stop()

    asyncio.run(main())


class FakeApi:
    def __init__(self, lease: dict[str, Any] | None = None) -> None:
        self.patches: list[tuple[str, Any]] = []
        self.lease = lease
        self.lease_reads = 0

    async def request(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        assert method == "PATCH" and kw["content_type"] == "application/merge-patch+json"
        self.patches.append((path.rsplit("/", 1)[-1], kw["json"]["metadata"]["labels"]))
        return {}

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.lease_reads += 1
        return self.lease


def test_the_leader_labels_its_pod_and_unlabels_the_previous_holders() -> None:
    api = FakeApi()
    label = LeaderLabel(api, "ops", "op-b", "scene-operator")

    async def main() -> None:
        await label.clear_own()
        await label.claim("op-a_1f2e3d4c")
        await label.claim("op-b_99999999")  # itself, in an earlier life: labelled once
        await label.release()

    asyncio.run(main())
    assert api.patches == [
        ("op-b", {LABEL_LEADER: None}),
        ("op-b", {LABEL_LEADER: "scene-operator"}),
        ("op-a", {LABEL_LEADER: None}),
        ("op-b", {LABEL_LEADER: "scene-operator"}),
        ("op-b", {LABEL_LEADER: None}),
    ]
    assert pod_name("scene-operator-7d9f-x2x_ab12cd34") == "scene-operator-7d9f-x2x"
    assert pod_name(None) is None and pod_name("nohex") is None


def test_the_lookup_reads_the_leaders_endpoint_from_the_lease_at_most_once_a_second() -> None:
    lease = {
        "metadata": {"annotations": {ANNOTATION_ENDPOINT: "http://10.0.0.5:8000"}},
        "spec": {"holderIdentity": "op-a_1"},
    }
    api = FakeApi(lease)

    async def main() -> None:
        lookup = LeaderLookup(api, "ops", "scene-operator", own="http://10.0.0.6:8000")
        assert await lookup() == "http://10.0.0.5:8000"
        assert await lookup() == "http://10.0.0.5:8000"
        assert api.lease_reads == 1
        released = LeaderLookup(
            FakeApi({**lease, "spec": {"holderIdentity": None}}), "ops", "x", own=""
        )
        assert await released() is None
        itself = LeaderLookup(api, "ops", "scene-operator", own="http://10.0.0.5:8000")
        assert await itself() is None  # never to itself

    asyncio.run(main())


def test_own_endpoint_comes_from_the_pod_ip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_IP", raising=False)
    assert routing.own_endpoint(8000) == ""
    monkeypatch.setenv("POD_IP", "10.1.2.3")
    assert routing.own_endpoint(8000) == "http://10.1.2.3:8000"
    monkeypatch.setenv("POD_IP", "fd00::7")
    assert routing.own_endpoint(8000) == "http://[fd00::7]:8000"


def test_the_leaders_lease_names_its_receiver_when_webhooks_are_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from controller.leaderelection import leadership
    from controller.settings import Settings

    monkeypatch.setenv("POD_IP", "10.1.2.3")
    on = Settings(webhook_url="https://hooks.example.com", webhook_port=8000)
    config = leadership.election_config(on, [])
    assert config.annotations[ANNOTATION_ENDPOINT] == "http://10.1.2.3:8000"
    assert ANNOTATION_ENDPOINT not in leadership.election_config(Settings(), []).annotations
