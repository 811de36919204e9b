"""Shard claims (controller/leaderelection/shards.py), the leadership guard on the work's edges
(controller/leaderelection/guard.py, KubeApi.write_guard) and the election settings."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client as k8s_client
from pydantic import ValidationError

from controller.api import vocabulary as v
from controller.app import Runtime
from controller.kube.client import KubeApi, NotLeaderError
from controller.leaderelection import leadership, shards
from controller.leaderelection.elector import micro_time
from controller.leaderelection.guard import Guarded, GuardedProviders, LeaderGatedQueue, ThreadGuard
from controller.settings import Settings
from tests.unit.leaderelection.fakes import FakeProvider

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def lease(name: str, claim: str | None, *, holder: str | None = "pod_1", age: float = 1.0) -> dict:
    annotations = {} if claim is None else {v.ANNOTATION_NAMESPACES: claim}
    return {
        "metadata": {"name": name, "namespace": "scene-operator", "annotations": annotations},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "renewTime": micro_time(NOW - timedelta(seconds=age)),
        },
    }


def test_claims_are_recorded_sorted_or_as_all() -> None:
    assert shards.claim_value(["b", "a", "b"]) == "a,b"
    assert shards.claim_value([]) == "*"
    assert shards.parse_claim("a,b") == frozenset({"a", "b"})
    assert shards.parse_claim("*") is None


@pytest.mark.parametrize(
    ("ours", "others", "expected"),
    [
        ("a,b", [lease("other", "c,d")], []),
        ("a,b", [lease("other", "b,c")], ["namespace 'b' already served by shard 'other'"]),
        ("a,b", [lease("other", "a,b")], ["namespaces 'a', 'b' already served by shard 'other'"]),
        (
            "a",
            [lease("other", "*")],
            ["namespace 'a': shard 'other' (Lease scene-operator/other) watches all namespaces"],
        ),
        ("*", [lease("other", "x")], ["namespace 'x' already served by shard 'other'"]),
        ("*", [lease("other", "*")], ["all namespaces: both this shard and shard 'other'"]),
        ("a", [lease("me", "a")], []),  # our own Lease
        ("a", [lease("other", "a", age=16)], []),  # not renewed within its duration: gone
        ("a", [lease("other", "a", holder=None)], []),  # released
        ("a", [lease("other", None)], []),  # not a shard Lease
    ],
    ids=[
        "disjoint",
        "one-namespace",
        "two-namespaces",
        "they-watch-all",
        "we-watch-all",
        "both-watch-all",
        "own-lease",
        "expired",
        "released",
        "no-claim",
    ],
)
def test_conflicts_name_the_namespace_and_the_other_shard(
    ours: str, others: list[dict], expected: list[str]
) -> None:
    problems = shards.conflicts(ours, "me", others, NOW)
    assert len(problems) == len(expected)
    for got, want in zip(problems, expected, strict=True):
        assert want in got
    if problems:
        message = shards.conflict_message("me", problems)
        assert "refusing to start" in message and problems[0] in message


def test_guarded_edges_refuse_every_call_once_leadership_is_gone() -> None:
    leading = [True]
    inner = FakeProvider()
    guarded = Guarded(inner, lambda: leading[0], "video provider fake")
    assert guarded.name == "fake"  # attributes pass through
    assert getattr(guarded, "find_job", None) is None  # optional methods stay optional
    assert asyncio.run(guarded.start(None)) == "job-1"
    assert guarded.head("b", "k") == "fact"
    leading[0] = False
    with pytest.raises(NotLeaderError, match=r"video provider fake\.start"):
        asyncio.run(guarded.start(None))
    with pytest.raises(NotLeaderError):
        guarded.head("b", "k")
    assert inner.calls == ["start", "head"]  # nothing reached the provider after


def test_a_replicate_call_queued_in_its_thread_pool_is_not_sent_once_leadership_is_gone() -> None:
    """The check also runs in the provider's thread, right before the SDK call: a call that
    waited behind a busy thread (or was handed over just before a freeze) is refused."""
    leading = [True]
    provider = GuardedProviders(Settings(io_threads=1), lambda: leading[0]).video("replicate")
    pool = provider._inner._executor  # Replicate's own pool, one thread here
    assert isinstance(pool, ThreadGuard)
    sent: list[str] = []
    gate = threading.Event()
    busy = pool.submit(gate.wait, 5)  # the one thread is busy (a slow poll)
    queued = pool.submit(sent.append, "create")  # a create waits for the thread
    leading[0] = False  # ...while the renew deadline passes
    gate.set()
    assert busy.result(timeout=5) is True
    with pytest.raises(NotLeaderError, match="in thread"):
        queued.result(timeout=5)
    assert sent == []


def test_guarded_providers_wrap_what_the_registry_builds() -> None:
    leading = [False]
    providers = GuardedProviders(Settings(), lambda: leading[0])
    planner = providers.planner("local")
    with pytest.raises(NotLeaderError, match="planner local"):
        asyncio.run(planner.plan(None))


def test_a_standbys_queue_collects_keys_and_hands_out_none_until_it_leads() -> None:
    async def main() -> None:
        leading = asyncio.Event()
        queue = LeaderGatedQueue(leading.wait)
        runtime = Runtime(settings=Settings(), api=None, clips=None, providers=None, queue=queue)
        assert runtime.queue is queue
        queue.add("a")
        queue.add("b")
        queue.add("a")
        getter = asyncio.create_task(queue.get())
        await asyncio.sleep(0.05)
        assert not getter.done() and len(queue) == 2
        leading.set()
        assert await asyncio.wait_for(getter, 1) == "a"

    asyncio.run(main())


def test_kube_writes_are_refused_before_they_are_sent_but_reads_go_through() -> None:
    cfg = k8s_client.Configuration()
    cfg.host = "http://127.0.0.1:9"  # discard port: nothing listens
    api = KubeApi(cfg)
    api.write_guard = lambda: False

    async def main() -> None:
        try:
            with pytest.raises(NotLeaderError, match="PATCH"):
                await api.patch_status("scenes", "ns", "s", {"phase": "Completed"})
            with pytest.raises(NotLeaderError, match="POST"):
                await api.post_event({"metadata": {}}, reason="R", message="m")
            assert api.requests == {}  # never counted, never sent
            with pytest.raises(OSError):  # a read is attempted (and fails: no server)
                await api.get("scenes", "ns", "s")
        finally:
            await api.close()

    asyncio.run(main())


def test_a_write_waiting_for_a_pooled_connection_is_not_sent_once_leadership_is_gone() -> None:
    """The guard is checked again with the connection in hand: a PATCH that passed the
    first check, then waited for the only connection while the deadline passed (or the
    process was frozen), never reaches the server."""
    from aiohttp import web

    async def main() -> None:
        seen: list[str] = []
        release = asyncio.Event()

        async def handle(request: web.Request) -> web.Response:
            seen.append(request.method)
            if request.method == "GET":
                await release.wait()
            return web.json_response({})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        cfg = k8s_client.Configuration()
        cfg.host = f"http://127.0.0.1:{port}"
        api = KubeApi(cfg, max_connections=1)
        leading = [True]
        api.write_guard = lambda: leading[0]
        try:
            slow_read = asyncio.create_task(api.get("scenes", "ns", "s"))
            while not seen:
                await asyncio.sleep(0.01)
            write = asyncio.create_task(api.patch_status("scenes", "ns", "s", {"phase": "X"}))
            await asyncio.sleep(0.1)  # the write waits for the one connection
            leading[0] = False
            release.set()
            await slow_read
            with pytest.raises(NotLeaderError, match="PATCH"):
                await write
            assert seen == ["GET"]
        finally:
            await api.close()
            await runner.cleanup()

    asyncio.run(main())


def test_a_write_is_checked_once_more_right_before_its_bytes_go_out() -> None:
    """aiohttp sends headers and body from a task of its own, a loop turn after the
    connection is in hand: leadership lost in that turn (or a freeze there) still
    stops the write before any byte of it is sent."""
    from aiohttp import web

    async def main() -> None:
        seen: list[str] = []

        async def handle(request: web.Request) -> web.Response:
            seen.append(request.method)
            return web.json_response({})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        cfg = k8s_client.Configuration()
        cfg.host = f"http://127.0.0.1:{port}"
        api = KubeApi(cfg)
        answers = iter([True, True])  # the first check and the connection's: then lost
        api.write_guard = lambda: next(answers, False)
        try:
            with pytest.raises(NotLeaderError, match="POST"):
                await api.post_event({"metadata": {"name": "s"}}, reason="R", message="m")
            await asyncio.sleep(0.1)
            assert seen == []
        finally:
            await api.close()
            await runner.cleanup()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("flag", "env", "cluster", "expected"),
    [
        (None, None, True, True),
        (None, None, False, False),
        (None, False, True, False),
        (None, True, False, True),
        (False, True, True, False),
        (True, False, False, True),
    ],
    ids=["in-cluster", "kubeconfig", "env-off", "env-on", "flag-off-wins", "flag-on-wins"],
)
def test_leader_election_defaults_on_in_a_cluster_and_the_flag_wins(
    monkeypatch: pytest.MonkeyPatch,
    flag: bool | None,
    env: bool | None,
    cluster: bool,
    expected: bool,
) -> None:
    monkeypatch.delenv("SCENE_OPERATOR_LEADER_ELECT", raising=False)
    if env is not None:
        monkeypatch.setenv("SCENE_OPERATOR_LEADER_ELECT", "true" if env else "false")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    if cluster:
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    else:
        monkeypatch.setenv("KUBECONFIG", "/somewhere/kubeconfig")
    assert leadership.election_enabled(flag, Settings()) is expected


def test_election_config_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("POD_NAME", "scene-operator-7d9f-abcde")
    monkeypatch.setattr(leadership, "SA_NAMESPACE_FILE", tmp_path / "missing")
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    config = leadership.election_config(Settings(), ["b", "a"])
    assert (config.namespace, config.name) == ("default", "scene-operator")
    assert (config.lease_duration, config.renew_deadline, config.retry_period) == (15, 10, 2)
    assert config.identity.startswith("scene-operator-7d9f-abcde_")
    assert config.identity != leadership.election_config(Settings(), []).identity
    assert config.annotations == {v.ANNOTATION_NAMESPACES: "a,b"}
    assert config.labels[v.LABEL_LEADER_ELECTION] == "true"
    (tmp_path / "ns").write_text("scene-operator\n")
    monkeypatch.setattr(leadership, "SA_NAMESPACE_FILE", tmp_path / "ns")
    assert leadership.election_config(Settings(), []).namespace == "scene-operator"
    monkeypatch.setenv("SCENE_OPERATOR_LEADER_ELECT_NAMESPACE", "elsewhere")
    monkeypatch.setenv("SCENE_OPERATOR_LEADER_ELECT_ID", "scene-operator-shard-a")
    config = leadership.election_config(Settings(), ["a"])
    assert (config.namespace, config.name) == ("elsewhere", "scene-operator-shard-a")


@pytest.mark.parametrize(
    "env",
    [
        {"SCENE_OPERATOR_LEADER_ELECT_RENEW_DEADLINE_SECONDS": "15"},
        {"SCENE_OPERATOR_LEADER_ELECT_RETRY_PERIOD_SECONDS": "9"},
        {"SCENE_OPERATOR_LEADER_ELECT_ID": "Not_A_Lease_Name"},
    ],
    ids=["renew-equals-lease", "retry-too-long", "bad-name"],
)
def test_bad_election_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError):
        Settings()
