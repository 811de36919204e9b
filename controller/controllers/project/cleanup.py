"""deletionPolicy Delete: the Project's clips and final videos go before the Project.

In order: the prefix is closed to uploads and the uploads under way there finish
(uploads.py), so no Scene upload lands after the delete; the prefix is deleted,
versions and delete markers included, until a LIST finds nothing
(controller/storage/purge.py); then the finalizer is removed. A bucket that is already
gone holds nothing to delete: the finalizer goes, with a Warning Event saying so, and
the Project does not stay Terminating.

An uninstall never destroys data: when the Projects CRD is being deleted (`kubectl delete
-k crds/`, a GitOps prune), the API server deletes every Project; then the objects stay
whatever the deletionPolicy, and the finalizer goes at once (Event ClipsRetained). When
the CRD cannot be read, nothing is deleted until it can.
"""

from __future__ import annotations

from pydantic import ValidationError

from controller.api import vocabulary as v
from controller.api.project import ProjectSpec
from controller.controllers.ports import Body, ClipStorage, EventSink, KubeClient, Threads
from controller.controllers.uploads import UploadGate
from controller.informer.cache import Store, key_of
from controller.kube.errors import ApiError
from controller.observability import metrics as m
from controller.queue.state import TransientError
from controller.settings import Settings
from controller.storage.clips import StorageError, project_prefix

UPLOADS_WAIT_SECONDS = 30.0  # then the finalizer is retried later
PROJECTS_CRD = f"{v.PROJECT_PLURAL}.{v.GROUP}"


class Finalizer:
    """The clip finalizer: put on a Project with deletionPolicy Delete (taken off when
    the policy changes), and honoured when the Project is deleted."""

    def __init__(
        self,
        *,
        settings: Settings,
        api: KubeClient,
        store: Store,
        clips: ClipStorage,
        threads: Threads,
        uploads: UploadGate,
        events: EventSink,
    ) -> None:
        self.settings = settings
        self.api = api
        self.store = store
        self.clips = clips
        self.threads = threads
        self.uploads = uploads  # closed per prefix, so no upload lands after the delete
        self.events = events

    async def ensure(self, body: Body, spec: ProjectSpec) -> None:
        finalizers = list(body["metadata"].get("finalizers") or [])
        want = spec.deletion_policy == "Delete"
        has = v.FINALIZER_CLIPS in finalizers
        if want == has:
            return
        new = (
            [*finalizers, v.FINALIZER_CLIPS]
            if want
            else [f for f in finalizers if f != v.FINALIZER_CLIPS]
        )
        ns, name = key_of(body)
        updated = await self.api.patch_metadata(
            v.PROJECT_PLURAL,
            ns,
            name,
            {"finalizers": new, "resourceVersion": body["metadata"]["resourceVersion"]},
        )
        self.store.upsert_project(updated)

    async def finalize(self, body: Body) -> None:
        """Uploads stopped, the prefix deleted, then the finalizer off."""
        finalizers = list(body["metadata"].get("finalizers") or [])
        if v.FINALIZER_CLIPS not in finalizers:
            return
        bucket, folder = clip_folder(self.settings, body)
        target = f"s3://{bucket}/{folder}"
        if await self.crd_deleting():
            message = f"kept every object under {target}: the CRD {PROJECTS_CRD} is being deleted"
            await self.events.post(body, v.Reason.CLIPS_RETAINED, message)
            await self.release(body, finalizers)
            return
        idle = await self.threads.run(self.uploads.close, bucket, folder, UPLOADS_WAIT_SECONDS)
        if not idle:
            raise TransientError(f"uploads under {target} still under way: deleting after them")
        try:
            deleted = await self.threads.run(self.clips.delete_prefix, bucket, folder)
        except StorageError as e:
            m.S3_OPS.labels("delete", "error").inc()
            if e.code != "NoSuchBucket":
                raise TransientError(f"could not delete {target}: {e.message}") from e
            message = f"bucket {bucket!r} does not exist: nothing to delete under {target}"
            await self.events.post(body, v.Reason.BUCKET_UNAVAILABLE, message, "Warning")
        else:
            m.S3_OPS.labels("delete", "ok").inc()
            await self.events.post(
                body, v.Reason.CLIPS_DELETED, f"deleted {deleted} objects under {target}"
            )
        await self.release(body, finalizers)

    async def crd_deleting(self) -> bool:
        """Is the Projects CRD being deleted (or gone)? An error is raised: unsure, the
        purge waits (the work queue tries again with backoff)."""
        crd = await self.api.get_crd(PROJECTS_CRD)
        return crd is None or bool(crd["metadata"].get("deletionTimestamp"))

    async def release(self, body: Body, finalizers: list[str]) -> None:
        ns, name = key_of(body)
        try:
            updated = await self.api.patch_metadata(
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
        self.store.upsert_project(updated)


def clip_folder(settings: Settings, body: Body) -> tuple[str, str]:
    """The bucket and the key prefix of a Project's clips."""
    try:
        spec = ProjectSpec.model_validate(body.get("spec") or {})
        bucket = spec.storage.bucket or settings.bucket
        prefix = spec.storage.prefix if spec.storage.prefix is not None else settings.s3_prefix
    except ValidationError:
        bucket, prefix = settings.bucket, settings.s3_prefix
    return bucket, project_prefix(prefix, key_of(body)[0], body["metadata"]["uid"])
