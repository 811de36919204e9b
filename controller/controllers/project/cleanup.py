"""deletionPolicy Delete: the Project's clips and final videos go before the Project.

In order: the prefix is closed to uploads and the uploads under way there finish
(uploads.py), so no Scene upload lands after the delete; the prefix is deleted,
versions and delete markers included, until a LIST finds nothing
(controller/storage/purge.py); then the finalizer is removed. A bucket that is already
gone holds nothing to delete: the finalizer goes, with a Warning Event saying so, and
the Project does not stay Terminating.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controller.api import vocabulary as v
from controller.informer.cache import Body, key_of
from controller.kube.errors import ApiError
from controller.observability import metrics as m
from controller.queue.state import TransientError
from controller.storage.clips import StorageError

if TYPE_CHECKING:
    from controller.controllers.project.reconciler import Projects

UPLOADS_WAIT_SECONDS = 30.0  # then the finalizer is retried later


async def finalize(p: Projects, body: Body) -> None:
    finalizers = list(body["metadata"].get("finalizers") or [])
    if v.FINALIZER_CLIPS not in finalizers:
        return
    ns, name = key_of(body)
    bucket, folder = p.folder(body)
    target = f"s3://{bucket}/{folder}"
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
