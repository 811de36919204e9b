"""deletionPolicy Delete in the runtime against fakes: no Scene upload lands after the
prefix is deleted, and a bucket that is gone does not hold the Project Terminating."""

from __future__ import annotations

import asyncio
import threading

from controller.api import vocabulary as v
from controller.queue.state import Kind
from tests.unit.harness import NS, Harness
from tests.unit.providers.fakes import hold_fetch

ONE = {"scenes": {"count": 1, "durationSeconds": 4}, "deletionPolicy": "Delete"}


async def delete_project(h: Harness) -> None:
    """The Project is deleted while a Scene pass is held: its own pass runs meanwhile
    (as another worker would run it)."""
    h.kube.delete(v.PROJECT_PLURAL, NS, "p")
    h.deliver()
    q, item = h.runtime.queue, (Kind.PROJECT, NS, "p")
    while len(q) and h.kube.obj(v.PROJECT_PLURAL, NS, "p") is not None:
        await h.runtime.worker.process(await q.get())  # type: ignore[arg-type]
        h.deliver()
    assert item not in q._processing


def test_a_download_under_way_is_not_uploaded_after_the_prefix_is_deleted() -> None:
    h = Harness()

    async def go() -> None:
        release, fetching = hold_fetch(h.replicate)
        h.project(**ONE)
        driving = asyncio.create_task(h.settle(seconds=120))
        await fetching.wait()
        await delete_project(h)
        assert h.kube.obj(v.PROJECT_PLURAL, NS, "p") is None  # finalized, gone
        release.set()
        await driving

    asyncio.run(go())
    assert h.clips.keys() == []  # the upload was refused, not landed after the delete
    assert [c for c in h.clips.calls if c[0] == "put"] == []
    assert "ClipsDeleted" in h.kube.reasons("p")


def test_an_upload_under_way_finishes_before_the_prefix_is_deleted() -> None:
    h = Harness()
    uploading, release = threading.Event(), threading.Event()

    def hold_put(op: str, bucket: str, key: str) -> None:
        if op == "put":
            uploading.set()
            release.wait(10)

    async def go() -> None:
        h.clips.before.append(hold_put)
        h.project(**ONE)
        driving = asyncio.create_task(h.settle(seconds=120))
        await asyncio.to_thread(uploading.wait, 10)
        deleting = asyncio.create_task(delete_project(h))
        await asyncio.sleep(0.2)
        assert not deleting.done()  # waits for the upload under way
        assert not any(c[0] == "delete" for c in h.clips.calls)
        release.set()
        await deleting
        await driving

    asyncio.run(go())
    assert h.kube.obj(v.PROJECT_PLURAL, NS, "p") is None
    ops = [c[0] for c in h.clips.calls]
    assert ops.index("delete") > ops.index("put")
    assert h.clips.keys() == []


def test_a_bucket_already_gone_does_not_hold_the_project_terminating() -> None:
    h = Harness()

    async def go() -> None:
        h.project(**ONE, generateVideos=False)
        await h.settle(seconds=5)
        h.clips.missing_buckets.add("clips")
        h.kube.delete(v.PROJECT_PLURAL, NS, "p")
        await h.settle(seconds=5)

    asyncio.run(go())
    assert h.kube.obj(v.PROJECT_PLURAL, NS, "p") is None
    assert "BucketUnavailable" in h.kube.reasons("p")
    assert "ClipsDeleted" not in h.kube.reasons("p")


PROJECTS_CRD = f"{v.PROJECT_PLURAL}.{v.GROUP}"


def test_an_uninstall_that_deletes_the_crd_keeps_every_object() -> None:
    """The API server deletes every Project when their CRD is deleted (a `kubectl delete
    -k`, a GitOps prune): whatever their deletionPolicy, their objects stay, the
    finalizer goes at once (the CRD waits for it) and the Event says so."""
    h = Harness()

    async def go() -> None:
        h.project(**ONE)
        await h.settle(seconds=120)
        assert h.clips.keys()  # a verified clip under the Project's prefix
        h.kube.delete_crd(PROJECTS_CRD)  # deletionTimestamp set, then its Projects deleted
        h.kube.delete(v.PROJECT_PLURAL, NS, "p")
        await h.settle(seconds=5)

    asyncio.run(go())
    assert h.kube.obj(v.PROJECT_PLURAL, NS, "p") is None  # released at once
    assert not any(c[0] == "delete" for c in h.clips.calls)
    assert h.clips.keys()  # nothing purged
    assert "ClipsRetained" in h.kube.reasons("p")
    assert "ClipsDeleted" not in h.kube.reasons("p")
    (retained,) = [e for e in h.kube.events if e["reason"] == "ClipsRetained"]
    assert PROJECTS_CRD in retained["message"] and "s3://clips/" in retained["message"]


def test_a_crd_that_cannot_be_read_holds_the_purge_rather_than_risk_it() -> None:
    """Unsure whether the CRD is going (a 403 from an RBAC not yet updated, an outage):
    nothing is deleted and the finalizer stays, tried again with backoff."""
    h = Harness()
    from controller.kube.client import ApiError

    def forbid(verb: str, plural: str, ns: str, name: str) -> None:
        if verb == "get_crd":
            raise ApiError(403, "customresourcedefinitions is forbidden", "Forbidden")

    async def go() -> None:
        h.project(**ONE)
        await h.settle(seconds=120)
        h.kube.before.append(forbid)
        h.kube.delete(v.PROJECT_PLURAL, NS, "p")
        await h.settle(seconds=60)
        assert h.kube.obj(v.PROJECT_PLURAL, NS, "p") is not None  # still Terminating
        assert not any(c[0] == "delete" for c in h.clips.calls)
        h.kube.before.remove(forbid)  # the grant arrives: an ordinary delete goes on
        await h.settle(seconds=600)

    asyncio.run(go())
    assert h.kube.obj(v.PROJECT_PLURAL, NS, "p") is None
    assert h.clips.keys() == [] and "ClipsDeleted" in h.kube.reasons("p")


def test_a_deletion_policy_delete_still_purges_when_only_the_project_is_deleted() -> None:
    h = Harness()

    async def go() -> None:
        h.project(**ONE)
        await h.settle(seconds=120)
        h.kube.delete(v.PROJECT_PLURAL, NS, "p")
        await h.settle(seconds=5)

    asyncio.run(go())
    assert h.kube.obj(v.PROJECT_PLURAL, NS, "p") is None
    assert h.clips.keys() == [] and "ClipsDeleted" in h.kube.reasons("p")
    assert ("get_crd", "customresourcedefinitions", "", PROJECTS_CRD) in h.kube.calls
