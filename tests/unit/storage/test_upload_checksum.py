"""An upload proven by its own PUT: the SHA-256 travels with the body, S3 checks it and
echoes it, and no HEAD follows; where the answer cannot prove it (a store that keeps no
checksum, a multipart upload), the object is read back as before. Against the real S3
server (moto over HTTP); botocore's event hooks on the store's own client see what goes
on the wire and stand in for a store that answers differently.

moto echoes the checksum it is sent without computing it (AWS computes it and fails the
PUT with BadDigest on a mismatch), so a body damaged on the way is shown here through a
store that reports the checksum of the bytes it got.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from controller.demo.free_ports import free_port
from controller.storage.clips import ClipStore, ClipVerificationError, MiB, StorageError
from controller.storage.objects import answered_sha256, b64_sha256
from tests.unit.storage.test_clip_store import (  # noqa: F401  (fixtures)
    bucket,
    calls,
    clip,
    s3,
    s3_env,
    store,
)

CHECKSUM = "x-amz-checksum-sha256"


def sent(clips: ClipStore, operation: str) -> list[Any]:
    """Every request of `operation` as it leaves the client, retries included."""
    seen: list[Any] = []
    clips.client.meta.events.register(
        f"before-send.s3.{operation}", lambda request, **_: seen.append(request)
    )
    return seen


def on_put_answer(clips: ClipStore, change: Callable[[Any], None]) -> None:
    """The store answers the PUT with `change`d headers (before botocore parses them)."""

    def hook(response_dict: dict[str, Any], **_: Any) -> None:
        change(response_dict["headers"])

    clips.client.meta.events.register("before-parse.s3.PutObject", hook)


def damage_on_the_way(clips: ClipStore, operation: str, damage: Callable[[bytes], bytes]) -> None:
    """The body arrives `damage`d: what the server stores is not what was hashed."""

    def hook(request: Any, **_: Any) -> None:
        body = request.body
        data = body.read() if hasattr(body, "read") else bytes(body)
        request.body = damage(data)
        request.headers["Content-Length"] = str(len(request.body))

    clips.client.meta.events.register(f"before-send.s3.{operation}", hook)


def flipped(data: bytes) -> bytes:
    return bytes(b ^ 0xFF for b in data[:64]) + data[64:]


def header(request: Any, name: str) -> str | None:
    value = request.headers.get(name)
    return value.decode() if isinstance(value, bytes) else value


# ----------------------------------------------------------------------------- small


def test_a_small_upload_is_proven_by_its_put_and_makes_no_head(store, bucket, clip):  # noqa: F811
    heads, puts = sent(store, "HeadObject"), sent(store, "PutObject")
    data = clip.read_bytes()
    sha = hashlib.sha256(data).hexdigest()

    fact = store.put_clip(bucket, "k.mp4", clip, metadata={"scene": "  ns/s-001 ", "take": "0"})

    assert heads == []
    assert len(puts) == 1
    assert header(puts[0], CHECKSUM) == base64.b64encode(hashlib.sha256(data).digest()).decode()
    # Plain HTTP signs the body too (botocore always does there); over TLS it does not.
    assert header(puts[0], "X-Amz-Content-SHA256") == sha
    assert (fact.size, fact.sha256) == (len(data), sha)
    assert fact.etag == hashlib.md5(data).hexdigest()
    # The fact from the PUT's answer is the one a HEAD reads back, metadata included.
    assert store.head(bucket, "k.mp4") == fact
    assert fact.metadata == {"scene": "ns/s-001", "take": "0", "sha256": sha}
    stored = store.client.head_object(Bucket=bucket, Key="k.mp4", ChecksumMode="ENABLED")
    assert stored["ChecksumSHA256"] == b64_sha256(sha)


def test_a_store_that_answers_without_a_checksum_is_read_back(store, bucket, clip):  # noqa: F811
    on_put_answer(store, lambda headers: headers.pop(CHECKSUM, None))
    heads = sent(store, "HeadObject")

    fact = store.put_clip(bucket, "k.mp4", clip, metadata={})

    assert len(heads) == 1
    assert fact == store.head(bucket, "k.mp4")
    assert fact.sha256 == hashlib.sha256(clip.read_bytes()).hexdigest()


def test_a_body_damaged_on_the_way_is_refused_by_the_puts_answer(store, bucket, clip):  # noqa: F811
    # A store that answers with the checksum of the bytes it got (S3 itself would fail
    # the PUT with BadDigest).
    damage_on_the_way(store, "PutObject", flipped)
    got = flipped(clip.read_bytes())
    on_put_answer(
        store, lambda h: h.update({CHECKSUM: b64_sha256(hashlib.sha256(got).hexdigest())})
    )
    heads = sent(store, "HeadObject")

    with pytest.raises(ClipVerificationError) as err:
        store.put_clip(bucket, "k.mp4", clip, metadata={})

    assert err.value.retryable
    assert hashlib.sha256(got).hexdigest() in err.value.message
    assert heads == []  # the answer settled it
    # moto kept the damaged bytes (under the checksum it was sent, which botocore's own
    # check of a GET would then refuse: read them without it).
    raw = boto3.session.Session().client(
        "s3", config=Config(response_checksum_validation="when_required")
    )
    assert raw.get_object(Bucket=bucket, Key="k.mp4")["Body"].read() == got


def test_a_store_without_checksums_still_catches_a_short_upload(store, bucket, clip):  # noqa: F811
    damage_on_the_way(store, "PutObject", lambda data: data[:-100])
    on_put_answer(store, lambda headers: headers.pop(CHECKSUM, None))

    with pytest.raises(ClipVerificationError) as err:
        store.put_clip(bucket, "k.mp4", clip, metadata={})

    size = clip.stat().st_size
    assert f"size {size - 100} in S3, {size} uploaded" in err.value.message


def test_uploads_told_to_send_checksums_only_when_required_are_read_back(
    s3_env,  # noqa: F811
    bucket,  # noqa: F811
    clip,  # noqa: F811
    monkeypatch,
):
    # For S3-compatible stores that refuse checksum headers (botocore's own setting).
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
    clips = ClipStore.from_env()
    heads, puts = sent(clips, "HeadObject"), sent(clips, "PutObject")

    fact = clips.put_clip(bucket, "k.mp4", clip, metadata={})

    assert not clips.send_checksum
    assert [h for h in puts[0].headers if h.lower().startswith("x-amz-checksum-")] == []
    assert len(heads) == 1
    assert fact.sha256 == hashlib.sha256(clip.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- over TLS


class Unsent(Exception):
    """Stops a request once it is signed: no TLS server is needed to see what it carries."""


@pytest.mark.parametrize(
    ("calculation", "payload"),
    [("when_supported", "UNSIGNED-PAYLOAD"), ("when_required", "sha256")],
)
def test_over_tls_the_body_is_hashed_once(
    s3_env,  # noqa: F811
    clip,  # noqa: F811
    monkeypatch,
    calculation,
    payload,
):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"https://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", calculation)
    clips = ClipStore.from_env(max_attempts=1)
    puts: list[Any] = []

    def stop(request: Any, **_: Any) -> None:
        puts.append(request)
        raise Unsent

    clips.client.meta.events.register("before-send.s3.PutObject", stop)
    with pytest.raises(StorageError):
        clips.put_clip("bucket", "k.mp4", clip, metadata={})

    sha = hashlib.sha256(clip.read_bytes()).hexdigest()
    (put,) = puts
    if payload == "sha256":  # no checksum of ours: botocore signs the body, as before
        assert header(put, CHECKSUM) is None
        assert header(put, "X-Amz-Content-SHA256") == sha
    else:  # ours, in a signed header that S3 checks; nothing else hashes the body
        assert header(put, CHECKSUM) == b64_sha256(sha)
        assert header(put, "X-Amz-Content-SHA256") == payload
        assert header(put, "Content-Length") == str(len(clip.read_bytes()))
        assert "Content-Encoding" not in put.headers  # not aws-chunked: no trailer checksum


# ----------------------------------------------------------------------------- multipart


@pytest.fixture
def multipart(s3_env) -> ClipStore:  # noqa: F811
    return ClipStore(
        boto3.session.Session().client("s3"), multipart_threshold=5 * MiB, max_concurrency=2
    )


@pytest.fixture
def big(tmp_path: Path) -> Path:
    path = tmp_path / "big.mp4"
    path.write_bytes(os.urandom(6 * MiB))
    return path


def test_a_multipart_upload_is_still_read_back(multipart, bucket, big):  # noqa: F811
    heads, parts = sent(multipart, "HeadObject"), calls(multipart, "UploadPart")

    fact = multipart.put_clip(bucket, "big.mp4", big, metadata={})

    assert len(parts) == 2
    assert len(heads) == 1
    assert fact.size == 6 * MiB
    assert fact.sha256 == hashlib.sha256(big.read_bytes()).hexdigest()


def test_a_multipart_upload_short_of_bytes_is_refused(multipart, bucket, big):  # noqa: F811
    # The last part (1 MiB) a byte short: S3 refuses a shorter part before it.
    damage_on_the_way(
        multipart, "UploadPart", lambda data: data[:-1] if len(data) < MiB + 1 else data
    )

    with pytest.raises(ClipVerificationError) as err:
        multipart.put_clip(bucket, "big.mp4", big, metadata={})

    assert f"in S3, {6 * MiB} uploaded" in err.value.message


# ----------------------------------------------------------------------------- answers


def test_only_a_sha256_in_base64_counts_as_an_answer():
    sha = hashlib.sha256(b"clip").hexdigest()
    assert answered_sha256(b64_sha256(sha)) == sha
    assert answered_sha256(None) is None
    assert answered_sha256("") is None
    assert answered_sha256(f"{b64_sha256(sha)}-3") is None  # a multipart composite
    assert answered_sha256(sha) is None  # hex, not base64
    assert answered_sha256(base64.b64encode(b"crc!").decode()) is None  # another length
