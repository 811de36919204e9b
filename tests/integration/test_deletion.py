"""deletionPolicy Delete against the real API server and S3 server: a versioned bucket
keeps no version or delete marker of the Project, and a bucket that is already gone does
not leave the Project Terminating."""

from __future__ import annotations

import uuid

from tests.integration.helpers import Cluster, wait_project, wait_until

FINALIZER = "video.scene-operator.io/delete-clips"


def spec(bucket: str, **extra: object) -> dict[str, object]:
    s: dict[str, object] = {
        "prompt": "Fireflies over a quiet lake",
        "scenes": {"count": 1, "durationSeconds": 1},
        "planner": {"provider": "local"},
        "video": {"provider": "local"},
        "generateVideos": True,
        "assembly": {"enabled": False},
        "storage": {"bucket": bucket},
        "deletionPolicy": "Delete",
    }
    s.update(extra)
    return s


def versions(s3, bucket: str, prefix: str) -> list[str]:
    resp = s3.client.list_object_versions(Bucket=bucket, Prefix=prefix)
    return [f"{v['Key']}@{v['VersionId']}" for v in resp.get("Versions", ())] + [
        f"{m['Key']}@{m['VersionId']} (marker)" for m in resp.get("DeleteMarkers", ())
    ]


def test_a_versioned_bucket_keeps_no_version_of_a_deleted_project(
    cluster: Cluster, namespace, run_operator, kubectl, s3
) -> None:
    bucket = f"versioned-{uuid.uuid4().hex[:8]}"
    s3.client.create_bucket(Bucket=bucket)
    s3.client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    run_operator(namespace)
    cluster.create_project(namespace, "kept", spec(bucket))
    wait_project(cluster, namespace, "kept")
    key = cluster.scenes(namespace, "kept")[0]["status"]["clip"]["key"]
    prefix = key.rsplit("/scenes/", 1)[0] + "/"
    # An older version of the clip, and a deleted object (a delete marker over a version).
    s3.client.put_object(
        Bucket=bucket, Key=key, Body=s3.client.get_object(Bucket=bucket, Key=key)["Body"].read()
    )
    s3.client.put_object(Bucket=bucket, Key=f"{prefix}notes.txt", Body=b"x")
    s3.client.delete_object(Bucket=bucket, Key=f"{prefix}notes.txt")
    s3.client.put_object(Bucket=bucket, Key="elsewhere/keep.txt", Body=b"not the Project's")
    assert len(versions(s3, bucket, prefix)) == 4

    kubectl(
        "delete", "-n", namespace, "project", "kept", "--wait=true", "--timeout=60s", timeout=90
    )
    assert versions(s3, bucket, prefix) == []
    assert len(versions(s3, bucket, "elsewhere/")) == 1
    assert "ClipsDeleted" in cluster.event_reasons(namespace, "kept")


def test_a_bucket_already_gone_does_not_leave_the_project_terminating(
    cluster: Cluster, namespace, run_operator, kubectl, s3
) -> None:
    bucket = f"short-lived-{uuid.uuid4().hex[:8]}"
    s3.client.create_bucket(Bucket=bucket)
    run_operator(namespace)
    cluster.create_project(namespace, "orphaned", spec(bucket, generateVideos=False))
    wait_until(
        lambda: (
            FINALIZER
            in (cluster.project(namespace, "orphaned")["metadata"].get("finalizers") or [])
        ),
        timeout=30,
        what="the clip finalizer",
    )
    s3.client.delete_bucket(Bucket=bucket)

    kubectl(
        "delete", "-n", namespace, "project", "orphaned", "--wait=true", "--timeout=60s", timeout=90
    )
    events = [e for e in cluster.events(namespace, "orphaned") if e.reason == "BucketUnavailable"]
    assert events and events[0].type == "Warning"
    assert bucket in events[0].message and "nothing to delete" in events[0].message
