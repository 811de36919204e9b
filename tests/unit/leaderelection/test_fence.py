"""The fence (controller/leaderelection/guard.py): a provider create or an S3 PUT is sent
only while this process's lease has at least SCENE_OPERATOR_LEADER_ELECT_FENCE_SECONDS
left on its monotonic clock. A leader whose renewals fail, or one frozen near the end
of its lease, stops sending them before its successor may take over."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import boto3
import pytest
from botocore.config import Config

from controller.api import vocabulary as v
from controller.kube.errors import NotLeaderError
from controller.leaderelection.guard import (
    FENCED_PROVIDER,
    FENCED_STORE,
    Fence,
    FencedUpload,
    Guarded,
    GuardedProviders,
    LeaseTooShort,
    fence_s3_writes,
)
from controller.settings import Settings
from tests.unit.harness import Harness
from tests.unit.leaderelection.fakes import FakeProvider
from tests.unit.leaderelection.test_leader import FakeClock, FakeLeases, candidate

ONE = {"scenes": {"count": 1, "durationSeconds": 4}}


class Lease:
    """A lease whose time left a test sets; the process leads while any is left."""

    def __init__(self, left: float = 10.0) -> None:
        self.left = left

    def is_leader(self) -> bool:
        return self.left > 0

    def lease_left(self) -> float:
        return self.left


def test_the_elector_knows_how_long_its_lease_has_left() -> None:
    async def main() -> None:
        api, clock = FakeLeases(), FakeClock()
        a = candidate(api, clock, "a")
        assert a.lease_left() == 0.0  # not leading
        assert await a._attempt()
        a._leading = True
        assert a.lease_left() == pytest.approx(10.0)  # the renew deadline
        clock.advance(6.0)  # no renewal for 6 s (or frozen for 6 s)
        assert a.is_leader() and a.lease_left() == pytest.approx(4.0)
        clock.advance(5.0)
        assert a.lease_left() == 0.0

    asyncio.run(main())


def test_a_create_and_a_put_are_not_sent_with_less_than_the_fence_left() -> None:
    lease, inner = Lease(), FakeProvider()
    fence = Fence(lease.lease_left, 5.0)
    provider = Guarded(inner, lease.is_leader, "video provider fake", fence=fence,
                       fenced=FENCED_PROVIDER)  # fmt: skip
    store = Guarded(inner, lease.is_leader, "clip store", fence=fence, fenced=FENCED_STORE)
    assert asyncio.run(provider.start(None)) == "job-1"
    assert store.put_clip("b", "k", "p", metadata={}) == "fact"
    lease.left = 4.9  # still the leader, but not for long
    with pytest.raises(LeaseTooShort) as refused:
        asyncio.run(provider.start(None))
    # Never sent, so nothing was paid: it answers like an HTTP refusal, not like a
    # create that got no answer (which would be searched for before paying again).
    assert refused.value.status_code is not None and refused.value.retryable
    assert "4.9 s left" in refused.value.message
    with pytest.raises(FencedUpload):
        store.put_clip("b", "k", "p", metadata={})
    # Reads are not behind the fence.
    assert asyncio.run(provider.poll("job-1", None)) == "running"
    assert store.head("b", "k") == "fact"
    assert inner.calls == ["start", "put_clip", "poll", "head"]


def test_a_replicate_create_waiting_in_its_thread_pool_is_fenced_in_the_thread() -> None:
    lease = Lease()
    fence = Fence(lease.lease_left, 5.0)
    provider = GuardedProviders(Settings(io_threads=1), lease.is_leader, fence).video("replicate")
    pool = provider._inner._executor
    sent: list[str] = []
    gate = threading.Event()
    busy = pool.submit(gate.wait, 5)  # the one thread is busy (a slow download)
    queued = pool.submit(sent.append, "create")  # a create waits for the thread
    lease.left = 3.0  # renewals failing meanwhile
    gate.set()
    assert busy.result(timeout=5) is True
    with pytest.raises(LeaseTooShort, match="in thread"):
        queued.result(timeout=5)
    assert sent == []


def test_every_request_of_an_s3_upload_is_fenced_before_it_is_sent(tmp_path) -> None:
    """boto3's before-send: a single PUT, and each part of a multipart upload."""
    lease = Lease()
    client = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",  # nothing listens: a request sent would fail
        aws_access_key_id="x",
        aws_secret_access_key="x",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )
    fence_s3_writes(client, lease.is_leader, Fence(lease.lease_left, 5.0))
    lease.left = 2.0
    with pytest.raises(FencedUpload, match=r"2\.0 s left"):
        client.put_object(Bucket="b", Key="k", Body=b"x")
    with pytest.raises(FencedUpload):
        client.upload_part(Bucket="b", Key="k", UploadId="u", PartNumber=1, Body=b"x")
    lease.left = 0.0
    with pytest.raises(FencedUpload, match="not the leader"):
        client.complete_multipart_upload(Bucket="b", Key="k", UploadId="u")


def test_a_fenced_create_gives_its_attempt_back_and_is_never_searched_for() -> None:
    """The runtime: a create kept back by the fence was never sent, so the marker is not
    left as a job that may exist (no search, no JobMayBeOrphaned); once the lease is
    renewed the Scene starts its job, on the same attempt."""
    h = Harness()
    lease = Lease(left=3.0)
    fence = Fence(lease.lease_left, 5.0)
    videos = h.providers

    class Fenced:
        def video(self, name: str) -> Any:
            return Guarded(videos.video(name), lease.is_leader, f"video provider {name}",
                           fence=fence, fenced=FENCED_PROVIDER)  # fmt: skip

        def planner(self, name: str) -> Any:
            return videos.planner(name)

    h.providers = Fenced()  # type: ignore[assignment]
    h.runtime = h._new_runtime()  # its collaborators given the fenced providers

    async def go() -> None:
        h.project(**ONE)
        await h.settle(seconds=5)
        assert h.replicate.starts == 0 and not h.replicate.jobs
        status = h.status("p-scene-001")
        assert status.get("generation") is None and status["attempts"] == 0
        assert status["lastError"]["reason"] == "LeaseTooShort"
        lease.left = 10.0  # renewed
        await h.settle(seconds=300)

    asyncio.run(go())
    assert h.replicate.starts == 1 and len(h.replicate.jobs) == 1
    assert h.replicate.searches == 0
    status = h.status("p-scene-001")
    assert status["phase"] == "Completed" and status["attempts"] == 1
    assert v.Reason.JOB_MAY_BE_ORPHANED not in h.kube.reasons("p-scene-001")


def test_the_fence_must_leave_room_before_the_renew_deadline() -> None:
    with pytest.raises(ValueError, match="FENCE"):
        Settings(leader_elect_fence_seconds=10.0)
    assert Settings().leader_elect_fence_seconds == 5.0


def test_not_leading_at_all_is_still_refused_first() -> None:
    lease, inner = Lease(left=0.0), FakeProvider()
    provider = Guarded(inner, lease.is_leader, "video provider fake",
                       fence=Fence(lease.lease_left, 5.0), fenced=FENCED_PROVIDER)  # fmt: skip
    with pytest.raises(NotLeaderError, match="not the leader"):
        asyncio.run(provider.start(None))
    assert inner.calls == []
