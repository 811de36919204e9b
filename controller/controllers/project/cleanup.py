"""deletionPolicy Delete: the Project's clips and final videos go before the Project.

In order: the prefix is closed to uploads and the uploads under way there finish
(uploads.py), so no Scene upload lands after the delete; the prefix is deleted,
versions and delete markers included, until a LIST finds nothing
(controller/storage/purge.py); then the finalizer is removed. A bucket that is already
gone holds nothing to delete: the finalizer goes, with a Warning Event saying so, and
the Project does not stay Terminating.

An uninstall never destroys data: when the Projects CRD is being deleted (`kubectl delete
-k`, a GitOps prune), the API server deletes every Project; then the objects stay whatever
the deletionPolicy, and the finalizer goes at once (Event ClipsRetained). When the CRD
cannot be read, nothing is deleted until it can.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controller.api import vocabulary as v
from controller.informer.cache import Body, key_of
from controller.kube.client import ApiError
from controller.observability import metrics as m
from controller.queue.state import TransientError
from controller.storage.clips import StorageError

if TYPE_CHECKING:
    from controller.controllers.ports import KubeClient
    from controller.controllers.project.reconciler import Projects

UPLOADS_WAIT_SECONDS = 30.0  # then the finalizer is retried later
PROJECTS_CRD = f"{v.PROJECT_PLURAL}.{v.GROUP}"


async def finalize(p: Projects, body: Body) -> None:
    finalizers = list(body["metadata"].get("finalizers") or [])
    if v.FINALIZER_CLIPS not in finalizers:
        return
    bucket, folder = p.folder(body)
    target = f"s3://{bucket}/{folder}"
    if await crd_deleting(p.api):
        message = f"kept every object under {target}: the CRD {PROJECTS_CRD} is being deleted"
        await p.recorder.post(body, v.Reason.CLIPS_RETAINED, message)
        await release(p, body, finalizers)
        return
    idle = await p.threads.run(p.memory.uploads.close, bucket, folder, UPLOADS_WAIT_SECONDS)
    if not idle:
        raise TransientError(f"uploads under {target} still under way: deleting after them")
    try:
        deleted = await p.threads.run(p.clips.delete_prefix, bucket, folder)
    except StorageError as e:
        m.S3_OPS.labels("delete", "error").inc()
        if e.code != "NoSuchBucket":
            raise TransientError(f"could not delete {target}: {e.message}") from e
        message = f"bucket {bucket!r} does not exist: nothing to delete under {target}"
        await p.recorder.post(body, v.Reason.BUCKET_UNAVAILABLE, message, "Warning")
    else:
        m.S3_OPS.labels("delete", "ok").inc()
        await p.recorder.post(
            body, v.Reason.CLIPS_DELETED, f"deleted {deleted} objects under {target}"
        )
    await release(p, body, finalizers)


async def crd_deleting(api: KubeClient) -> bool:
    """Is the Projects CRD being deleted (or gone)? An error is raised: unsure, the purge
    waits (the work queue tries again with backoff)."""
    crd = await api.get_crd(PROJECTS_CRD)
    return crd is None or bool(crd["metadata"].get("deletionTimestamp"))


async def release(p: Projects, body: Body, finalizers: list[str]) -> None:
    ns, name = key_of(body)
    try:
        updated = await p.api.patch_metadata(
            v.PROJECT_PLURAL,
            ns,
            name,
            {
                "finalizers": [f for f in finalizers if f != v.FINALIZER_CLIPS],
                "resourceVersion": body["metadata"]["resourceVersion"],
            },
        )
    except ApiError as e:
        if e.not_found:  # removed by an earlier pass whose watch event is on its way
            return
        raise
    p.store.upsert_project(updated)
