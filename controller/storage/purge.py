"""Deleting a Project's prefix for `deletionPolicy: Delete`: every object, and on a
versioned bucket every version and delete marker too (a plain DeleteObjects there only
hides the clips behind delete markers, and they are still stored and billed). A LIST
after the deletes confirms that nothing is left.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.exceptions as bce

from controller.storage.errors import RETRYABLE_CODES, StorageError, classify

DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys per call
PURGE_ROUNDS = 3  # delete, LIST; again if something appeared (a late write elsewhere)
# Credentials without s3:ListBucketVersions, or an S3-compatible store without versions:
# delete the current objects (what the caller can see).
_NO_VERSIONS = frozenset({"AccessDenied", "NotImplemented", "MethodNotAllowed"})


def purge_prefix(client: Any, bucket: str, prefix: str) -> int:
    """Delete everything under `prefix` (versions and delete markers included); returns
    how many entries were deleted. Raises StorageError (code NoSuchBucket when the bucket
    is gone; ObjectsRemain when a LIST still finds objects after PURGE_ROUNDS)."""
    if not prefix.strip("/"):
        raise ValueError("refusing to delete with an empty prefix (the whole bucket)")
    target = f"s3://{bucket}/{prefix}"
    versions = True
    deleted = 0
    try:
        for _ in range(PURGE_ROUNDS):
            if versions:
                try:
                    entries = list(_versions(client, bucket, prefix))
                except bce.ClientError as exc:
                    if _code(exc) not in _NO_VERSIONS:
                        raise
                    versions = False
            if not versions:
                entries = list(_objects(client, bucket, prefix))
            if not entries:
                return deleted
            for start in range(0, len(entries), DELETE_BATCH):
                deleted += _delete(client, bucket, entries[start : start + DELETE_BATCH], target)
    except StorageError:
        raise
    except Exception as exc:
        raise classify(exc, f"delete {target}") from exc
    raise StorageError(
        True, f"delete {target}: objects remain after {PURGE_ROUNDS} rounds", code="ObjectsRemain"
    )


def _code(exc: bce.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _versions(client: Any, bucket: str, prefix: str) -> Iterator[dict[str, str]]:
    pages = client.get_paginator("list_object_versions").paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": DELETE_BATCH}
    )
    for page in pages:
        for entry in [*page.get("Versions", ()), *page.get("DeleteMarkers", ())]:
            yield {"Key": entry["Key"], "VersionId": entry["VersionId"]}


def _objects(client: Any, bucket: str, prefix: str) -> Iterator[dict[str, str]]:
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": DELETE_BATCH}
    )
    for page in pages:
        for obj in page.get("Contents", ()):
            yield {"Key": obj["Key"]}


def _delete(client: Any, bucket: str, entries: list[dict[str, str]], target: str) -> int:
    resp = client.delete_objects(Bucket=bucket, Delete={"Objects": entries, "Quiet": True})
    errors = resp.get("Errors") or []
    if errors:
        first = errors[0]
        code = str(first.get("Code") or "Unknown")
        raise StorageError(
            code in RETRYABLE_CODES,
            f"delete {target}: {len(errors)} of {len(entries)} entries failed, "
            f"first {first.get('Key')}: {code}: {first.get('Message')}"[:500],
            code=code,
        )
    return len(entries)
