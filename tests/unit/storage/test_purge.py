"""deletionPolicy Delete against the real S3 server: versions and delete markers go too,
a missing bucket is said as such, and credentials without version rights still delete."""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

from controller.storage.clips import ClipStore, StorageError
from tests.unit.storage.test_clip_store import s3, s3_env, store  # noqa: F401  (fixtures)


def versions_under(clips: ClipStore, bucket: str, prefix: str) -> list[tuple[str, bool]]:
    resp = clips.client.list_object_versions(Bucket=bucket, Prefix=prefix)
    return [(v["Key"], False) for v in resp.get("Versions", ())] + [
        (m["Key"], True) for m in resp.get("DeleteMarkers", ())
    ]


@pytest.fixture
def versioned(store: ClipStore) -> str:  # noqa: F811
    name = f"versioned-{uuid.uuid4().hex[:8]}"
    store.client.create_bucket(Bucket=name)
    store.client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def test_a_versioned_bucket_loses_every_version_and_delete_marker(
    store: ClipStore,  # noqa: F811
    versioned: str,
) -> None:
    mine, other = "p/ns/uid-1/", "p/ns/uid-2/"
    put = store.client.put_object
    put(Bucket=versioned, Key=f"{mine}scenes/1/a-t0.mp4", Body=b"take 1")
    put(Bucket=versioned, Key=f"{mine}scenes/1/a-t0.mp4", Body=b"take 1, again")
    put(Bucket=versioned, Key=f"{mine}final/f.mp4", Body=b"film")
    store.client.delete_object(Bucket=versioned, Key=f"{mine}final/f.mp4")  # a marker
    put(Bucket=versioned, Key=f"{other}scenes/1/b-t0.mp4", Body=b"not mine")
    assert len(versions_under(store, versioned, mine)) == 4

    assert store.delete_prefix(versioned, mine) == 4
    assert versions_under(store, versioned, mine) == []
    assert store.list_prefix(versioned, mine) == {}
    assert versions_under(store, versioned, other) == [(f"{other}scenes/1/b-t0.mp4", False)]


def test_a_missing_bucket_is_named_no_such_bucket(store: ClipStore) -> None:  # noqa: F811
    with pytest.raises(StorageError) as err:
        store.delete_prefix(f"gone-{uuid.uuid4().hex[:8]}", "p/ns/uid/")
    assert err.value.code == "NoSuchBucket" and not err.value.retryable


def test_without_version_rights_the_current_objects_still_go(
    store: ClipStore,  # noqa: F811
    versioned: str,
) -> None:
    """An IAM policy without s3:ListBucketVersions answers AccessDenied: delete what can
    be seen rather than leave the Project Terminating."""
    prefix = "p/ns/uid-3/"
    store.client.put_object(Bucket=versioned, Key=f"{prefix}scenes/1/a-t0.mp4", Body=b"x")

    def deny(**_: object) -> None:
        raise ClientError(
            {"Error": {"Code": "AccessDenied", "Message": "denied"}}, "ListObjectVersions"
        )

    store.client.meta.events.register("before-call.s3.ListObjectVersions", deny)
    assert store.delete_prefix(versioned, prefix) == 1
    assert store.list_prefix(versioned, prefix) == {}
