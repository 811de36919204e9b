"""The S3 clip store against a real S3 server process spoken to over HTTP."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import botocore.parsers
import pytest
from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from controller.demo.free_ports import free_port
from controller.demo.s3server import S3Server
from controller.providers.render import render_clip
from controller.storage.clips import (
    ClipStore,
    MiB,
    StorageError,
    classify,
    clip_key,
    project_prefix,
)


@pytest.fixture(scope="module")
def s3():
    # The server's per-request access log costs more than the request; keep it quiet.
    access_log = logging.getLogger("werkzeug")
    level = access_log.level
    access_log.setLevel(logging.WARNING)
    server = S3Server().start()
    yield server
    server.stop()
    access_log.setLevel(level)


@pytest.fixture
def s3_env(s3, monkeypatch, tmp_path):
    """boto3's own variables point at the server; nothing from the host's AWS config."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    return s3


@pytest.fixture
def store(s3_env):
    return ClipStore.from_env()


@pytest.fixture
def bucket(store):
    name = f"clips-{uuid.uuid4().hex[:12]}"
    store.ensure_bucket(name)
    return name


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "clip.mp4"
    render_clip(path, prompt="a test clip", sequence=1, duration_seconds=1, aspect_ratio="16:9")
    return path


def calls(store: ClipStore, operation: str) -> list[dict]:
    """Record the requests the client really sends (botocore's event hooks)."""
    seen: list[dict] = []
    store.client.meta.events.register(
        f"before-call.s3.{operation}", lambda params, **_: seen.append(params)
    )
    return seen


# ----------------------------------------------------------------------------- keys


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("scene-operator", "scene-operator/ns/uid-1/scenes/003/abc123-t0.mp4"),
        ("/scene-operator/", "scene-operator/ns/uid-1/scenes/003/abc123-t0.mp4"),
        ("a/b", "a/b/ns/uid-1/scenes/003/abc123-t0.mp4"),
        ("", "ns/uid-1/scenes/003/abc123-t0.mp4"),
        ("/", "ns/uid-1/scenes/003/abc123-t0.mp4"),
    ],
    ids=["plain", "stray-slashes", "nested", "empty", "slash-only"],
)
def test_clip_key_layout(prefix, expected):
    assert clip_key(prefix, "ns", "uid-1", 3, "abc123", 0) == expected
    assert clip_key(prefix, "/ns/", "uid-1/", 3, "abc123", 0) == expected
    assert expected.startswith(project_prefix(prefix, "ns", "uid-1"))
    assert project_prefix(prefix, "ns", "uid-1").endswith("uid-1/")


def test_clip_key_numbers():
    assert clip_key("p", "ns", "u", 12, "h", 7) == "p/ns/u/scenes/012/h-t7.mp4"
    assert clip_key("p", "ns", "u", 999, "h", 0).endswith("/scenes/999/h-t0.mp4")


@pytest.mark.parametrize(
    "args",
    [("", "u", 1, "h", 0), ("ns", "/", 1, "h", 0), ("ns", "u", 1, "", 0),
     ("ns", "u", 1, "a/b", 0), ("ns", "u", -1, "h", 0), ("ns", "u", 1, "h", -1)],
)  # fmt: skip
def test_clip_key_rejects_what_would_collide(args):
    with pytest.raises(ValueError):
        clip_key("p", *args)


# ----------------------------------------------------------------------------- store


def test_from_env_uses_boto3s_endpoint_variable(store, s3):
    assert store.client.meta.endpoint_url == s3.endpoint_url


def test_ensure_bucket_is_idempotent(store, bucket):
    store.ensure_bucket(bucket)
    store.client.head_bucket(Bucket=bucket)


def test_put_clip_then_head_agree(store, bucket, clip):
    key = clip_key("scene-operator", "ns", "uid-1", 1, "abc123", 0)
    fact = store.put_clip(bucket, key, clip, metadata={"Scene": "demo-001", "take": "0"})

    data = clip.read_bytes()
    assert fact.key == key
    assert fact.size == len(data)
    assert fact.sha256 == hashlib.sha256(data).hexdigest()
    assert fact.etag == hashlib.md5(data).hexdigest()  # single part: S3's ETag is the MD5
    assert fact.metadata["scene"] == "demo-001"
    assert store.head(bucket, key) == fact
    raw = store.client.head_object(Bucket=bucket, Key=key)
    assert raw["ContentType"] == "video/mp4"


def test_a_small_clip_is_one_put_on_the_callers_thread(store, bucket, clip):
    # No transfer manager (a thread pool per upload) for what one PutObject does.
    threads: list[str] = []
    store.client.meta.events.register(
        "before-call.s3.PutObject", lambda **_: threads.append(threading.current_thread().name)
    )
    fact = store.put_clip(bucket, "small.mp4", clip, metadata={"scene": "s"})
    assert threads == [threading.current_thread().name]
    assert fact.sha256 == hashlib.sha256(clip.read_bytes()).hexdigest()
    assert store.client.head_object(Bucket=bucket, Key="small.mp4")["ContentType"] == "video/mp4"


def test_s3_timestamps_are_parsed_without_dateutil(s3_env, bucket, clip, monkeypatch):
    # botocore's default parser (dateutil's) was a tenth of a HEAD's CPU; S3 sends two
    # fixed formats, which the store's client parses itself.
    def refuse(value: object) -> None:
        raise AssertionError(f"botocore's default parser got {value!r}")

    monkeypatch.setattr(botocore.parsers, "DEFAULT_TIMESTAMP_PARSER", refuse)
    store = ClipStore.from_env()
    store.put_clip(bucket, "t.mp4", clip, metadata={})
    head = store.client.head_object(Bucket=bucket, Key="t.mp4")  # RFC 7231 header
    listed = store.client.list_objects_v2(Bucket=bucket)["Contents"][0]  # ISO 8601 body
    assert head["LastModified"] == listed["LastModified"]
    assert head["LastModified"].utcoffset() == dt.timedelta(0)
    assert abs(dt.datetime.now(dt.UTC) - head["LastModified"]) < dt.timedelta(hours=1)


def test_put_clip_again_overwrites_the_same_key(store, bucket, clip):
    key = clip_key("p", "ns", "uid", 1, "h", 0)
    first = store.put_clip(bucket, key, clip, metadata={})
    again = store.put_clip(bucket, key, clip, metadata={})
    assert again == first
    assert list(store.list_prefix(bucket, project_prefix("p", "ns", "uid"))) == [key]


def test_metadata_is_made_header_safe(store, bucket, clip):
    fact = store.put_clip(bucket, "k.mp4", clip, metadata={"prompt": "café au lait"})
    assert fact.metadata["prompt"] == "caf%C3%A9 au lait"
    with pytest.raises(ValueError):
        store.put_clip(bucket, "k.mp4", clip, metadata={"bad key": "x"})


def test_verify_spots_missing_and_replaced_objects(store, bucket, clip):
    key = "p/ns/uid/scenes/001/h-t0.mp4"
    fact = store.put_clip(bucket, key, clip, metadata={})
    assert store.verify(bucket, key, size=fact.size, sha256=fact.sha256, etag=fact.etag) == fact
    assert store.verify(bucket, key, size=fact.size, sha256=None, etag=None) == fact
    assert store.verify(bucket, key, size=fact.size + 1, sha256=None, etag=None) is None

    # Someone overwrites the clip with other bytes of the same size.
    corrupted = bytes(b ^ 0xFF for b in clip.read_bytes())
    store.client.put_object(Bucket=bucket, Key=key, Body=corrupted)
    assert store.verify(bucket, key, size=fact.size, sha256=fact.sha256, etag=None) is None
    assert store.verify(bucket, key, size=fact.size, sha256=None, etag=fact.etag) is None
    assert store.head(bucket, key).etag != fact.etag

    store.client.delete_object(Bucket=bucket, Key=key)
    assert store.verify(bucket, key, size=fact.size, sha256=fact.sha256, etag=fact.etag) is None


def test_content_sha256_reads_the_bytes_not_the_metadata(store, bucket, clip):
    """Drift's content check (issue 12 #16): the hash of what is stored, whatever the
    metadata claims; None once the object is gone."""
    key = clip_key("scene-operator", "ns", "uid-1", 3, "abc123", 0)
    store.put_clip(bucket, key, clip, metadata={})
    data = clip.read_bytes()
    assert store.content_sha256(bucket, key) == hashlib.sha256(data).hexdigest()
    store.client.put_object(
        Bucket=bucket, Key=key, Body=b"x" * len(data), Metadata={"sha256": "claimed"}
    )
    assert store.content_sha256(bucket, key) == hashlib.sha256(b"x" * len(data)).hexdigest()
    store.client.delete_object(Bucket=bucket, Key=key)
    assert store.content_sha256(bucket, key) is None


def test_bucket_problem_names_a_missing_bucket(store, bucket):
    assert store.bucket_problem(bucket) is None
    assert (
        store.bucket_problem("no-such-bucket-here") == "bucket 'no-such-bucket-here' does not exist"
    )


def test_head_of_a_missing_key_is_none(store, bucket):
    asked = calls(store, "HeadBucket")
    assert store.head(bucket, "nothing/here.mp4") is None
    assert store.head(bucket, "nor/here.mp4") is None
    assert len(asked) == 1  # the bucket is asked about once, not per missing key


def test_head_in_a_missing_bucket_is_not_a_missing_clip(store, s3):
    # A HEAD 404 reads the same for a missing bucket and a missing key; taken as "no clip
    # yet", it would start a paid job whose upload can only fail.
    name = f"gone-{uuid.uuid4().hex[:12]}"
    for _ in range(2):  # "missing" is not remembered: the bucket may be created meanwhile
        with pytest.raises(StorageError) as err:
            store.head(name, "scenes/001/h-t0.mp4")
        assert (err.value.code, err.value.retryable) == ("NoSuchBucket", False)
        assert name in err.value.message
    store.ensure_bucket(name)
    assert store.head(name, "scenes/001/h-t0.mp4") is None


def test_download_round_trip(store, bucket, clip, tmp_path):
    store.put_clip(bucket, "k.mp4", clip, metadata={})
    store.download(bucket, "k.mp4", tmp_path / "back.mp4")
    assert (tmp_path / "back.mp4").read_bytes() == clip.read_bytes()
    with pytest.raises(StorageError) as err:
        store.download(bucket, "missing.mp4", tmp_path / "none.mp4")
    assert not err.value.retryable


def test_multipart_upload_is_verified(s3_env, bucket, tmp_path):
    store = ClipStore(
        boto3.session.Session().client("s3"), multipart_threshold=5 * MiB, max_concurrency=2
    )
    parts = calls(store, "UploadPart")
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(11 * MiB))

    fact = store.put_clip(bucket, "big.mp4", big, metadata={"scene": "s"})

    assert len(parts) == 3  # 5 + 5 + 1 MiB
    assert fact.etag.endswith("-3")  # S3's multipart ETag
    assert fact.size == 11 * MiB
    assert fact.sha256 == hashlib.sha256(big.read_bytes()).hexdigest()


def test_list_and_delete_a_project_with_more_than_1000_clips(store, bucket):
    mine = project_prefix("p", "ns", "uid1")
    keys = [clip_key("p", "ns", "uid1", i % 999 + 1, f"h{i}", 0) for i in range(1100)]
    others = [
        clip_key("p", "ns", "uid10", 1, "h", 0),  # a UID that extends ours
        clip_key("p", "other", "uid1", 1, "h", 0),
        clip_key("q", "ns", "uid1", 1, "h", 0),
    ]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda k: store.client.put_object(Bucket=bucket, Key=k, Body=b""), keys))
    for key in others:
        store.client.put_object(Bucket=bucket, Key=key, Body=b"x")

    lists = calls(store, "ListObjectsV2")
    heads = calls(store, "HeadObject")
    listed = store.list_prefix(bucket, mine)
    assert sorted(listed) == sorted(keys)
    assert len(lists) == 2  # one request per 1000 keys
    assert heads == []
    fact = listed[keys[0]]
    assert (fact.size, fact.sha256, fact.etag) == (0, None, hashlib.md5(b"").hexdigest())

    deletes = calls(store, "DeleteObjects")
    assert store.delete_prefix(bucket, mine) == 1100
    assert len(deletes) == 2
    assert store.list_prefix(bucket, mine) == {}
    assert all(store.head(bucket, key) is not None for key in others)


def test_delete_prefix_refuses_the_whole_bucket(store, bucket):
    for prefix in ("", "/"):
        with pytest.raises(ValueError):
            store.delete_prefix(bucket, prefix)


def test_delete_of_an_empty_prefix_is_zero(store, bucket):
    assert store.delete_prefix(bucket, "p/ns/none/") == 0


# ----------------------------------------------------------------------------- errors


def test_missing_bucket_is_permanent(store, clip):
    with pytest.raises(StorageError) as err:
        store.list_prefix("no-such-bucket-here", "p/")
    assert (err.value.code, err.value.retryable) == ("NoSuchBucket", False)
    with pytest.raises(StorageError) as err:
        store.put_clip("no-such-bucket-here", "k.mp4", clip, metadata={})
    assert (err.value.code, err.value.retryable) == ("NoSuchBucket", False)


def test_unreachable_endpoint_is_retryable(s3_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value")
    store = ClipStore.from_env(max_attempts=1)
    for action in (
        lambda: store.head("bucket", "key"),
        lambda: store.list_prefix("bucket", "p/"),
    ):
        with pytest.raises(StorageError) as err:
            action()
        assert err.value.retryable
        assert "very-secret-value" not in str(err.value)


def test_a_client_with_a_short_timeout_still_classifies(s3_env):
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    with pytest.raises(StorageError) as err:
        ClipStore(client).head("bucket", "key")
    assert err.value.retryable and err.value.code == "EndpointConnectionError"


def client_error(code: str, status: int) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "PutObject")  # type: ignore[arg-type]


def upload_failure(cause: BaseException) -> S3UploadFailedError:
    """The way boto3's upload_file rewraps a ClientError (implicit chaining)."""
    try:
        try:
            raise cause
        except ClientError as exc:
            raise S3UploadFailedError(f"Failed to upload: {exc}") from None
    except S3UploadFailedError as wrapped:
        wrapped.__context__ = cause
        return wrapped


def _error_id(exc: BaseException) -> str:
    inner = exc.__context__ or exc
    code = inner.response["Error"]["Code"] if isinstance(inner, ClientError) else ""
    return "-".join(filter(None, [type(exc).__name__, code]))


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (client_error("SlowDown", 503), True),
        (client_error("InternalError", 500), True),
        (client_error("RequestTimeout", 400), True),
        (client_error("BadDigest", 400), True),
        (client_error("AccessDenied", 403), False),
        (client_error("NoSuchBucket", 404), False),
        (client_error("InvalidAccessKeyId", 403), False),
        (EndpointConnectionError(endpoint_url="http://s3.example"), True),
        (NoCredentialsError(), False),
        (upload_failure(client_error("SlowDown", 503)), True),
        (upload_failure(client_error("AccessDenied", 403)), False),
    ],
    ids=lambda v: _error_id(v) if isinstance(v, Exception) else str(v),
)
def test_errors_are_classified_once(exc, retryable):
    err = classify(exc, "upload s3://b/k")
    assert err.retryable is retryable
    assert err.message.startswith("upload s3://b/k: ")


@pytest.mark.parametrize(
    "value",
    [
        "Wed, 21 Oct 2015 07:28:00 GMT",
        "2015-10-21T07:28:00.000Z",
        "2015-10-21T07:28:00.123456Z",
        "2015-10-21T07:28:00+02:00",  # not S3's: botocore's parser
        "1445412480",
    ],
)
def test_s3_timestamps_parse_to_the_instants_botocore_gives(value):
    from botocore.utils import parse_timestamp as botocores

    from controller.storage.timestamps import parse_timestamp

    assert parse_timestamp(value) == botocores(value)
    assert parse_timestamp(value).utcoffset() is not None
