"""The S3 clip store: deterministic keys, verified uploads, prefix listing.

Synchronous boto3 on purpose: the operator runs these calls in its bounded thread pool.
What is in S3 is the truth, so no upload counts before S3 has shown it holds our bytes:
a single PutObject carries the file's SHA-256, which S3 checks before storing the object
and echoes in its answer; a multipart upload, or a store that answers without the
checksum, is read back with a HEAD (size and the sha256 in the object's metadata).

Endpoint, credentials and region come from boto3's own environment variables
(AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, or
any other source of boto3's chain), never from here; no message carries them.

The parts: keys.py (where a clip goes), errors.py (S3 failures classified once),
objects.py (what S3 says about an object; checksums and metadata of an upload).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions as bce
import botocore.session
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from controller.api.keys import clip_key, project_prefix
from controller.storage.errors import (
    ClipVerificationError,
    StorageError,
    classify,
    error_code,
    is_not_found,
)
from controller.storage.objects import (
    MiB,
    ObjectFact,
    answered_sha256,
    b64_sha256,
    bare_etag,
    clean_metadata,
    file_sha256,
)
from controller.storage.purge import purge_prefix
from controller.storage.timestamps import parse_timestamp

# The public names, importable from here as before the split.
__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_MULTIPART_THRESHOLD",
    "SHA256_META",
    "ClipStore",
    "ClipVerificationError",
    "MiB",
    "ObjectFact",
    "StorageError",
    "classify",
    "clip_key",
    "file_sha256",
    "project_prefix",
]

DEFAULT_MULTIPART_THRESHOLD = 16 * MiB
CONTENT_TYPE = "video/mp4"
SHA256_META = "sha256"


def sends_checksums(client: Any) -> bool:
    """Whether uploads carry our SHA-256: not for a client told to send checksums only where
    S3 requires them (AWS_REQUEST_CHECKSUM_CALCULATION=when_required, for stores that
    refuse the headers); its uploads are verified with a HEAD."""
    config = getattr(client.meta, "config", None)
    return getattr(config, "request_checksum_calculation", None) != "when_required"


class ClipStore:
    """Clips in S3, through one thread-safe boto3 client."""

    def __init__(
        self,
        client: Any,
        *,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        multipart_chunksize: int | None = None,
        max_concurrency: int = 4,
    ) -> None:
        self.client = client
        # S3 refuses parts under 5 MiB (except the last), whatever the threshold.
        chunk = multipart_chunksize or max(5 * MiB, multipart_threshold)
        self.transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=chunk,
            max_concurrency=max_concurrency,
            preferred_transfer_client="classic",
        )
        # Buckets whose existence head() has settled (a HEAD 404 cannot tell a missing
        # bucket from a missing key): asked once each, unless the answer was "missing".
        self._buckets_checked: set[str] = set()
        self.send_checksum = sends_checksums(client)

    @classmethod
    def from_env(
        cls,
        max_pool_connections: int = 32,
        *,
        max_attempts: int = 5,
        addressing_style: str | None = None,
        **store_options: Any,
    ) -> ClipStore:
        """A store whose endpoint, credentials and region come from boto3's own chain.

        `addressing_style="path"` helps S3-compatible stores reached by a plain host name
        (e.g. MinIO in-cluster); AWS and IP endpoints work with the default.
        """
        s3: dict[str, Any] = {"addressing_style": addressing_style} if addressing_style else {}
        config = Config(
            retries={"max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=max_pool_connections,
            s3=s3 or None,
        )
        # A fresh session: boto3's default session is shared global state, not thread-safe.
        core = botocore.session.get_session()
        core.get_component("response_parser_factory").set_parser_defaults(
            timestamp_parser=parse_timestamp  # S3's two formats without dateutil
        )
        session = boto3.session.Session(botocore_session=core)
        client = session.client("s3", config=config)
        if client.meta.endpoint_url.startswith("https://") and sends_checksums(client):
            # Over TLS an upload's body is guarded by its signed SHA-256 header, which S3
            # checks; signing the body as well would hash it a second time (botocore skips
            # that only for checksums it computed itself). Plain HTTP stays signed.
            unsigned = Config(s3={**s3, "payload_signing_enabled": False})
            client = session.client("s3", config=config.merge(unsigned))
        return cls(client, **store_options)

    # ------------------------------------------------------------------------- buckets

    def ensure_bucket(self, bucket: str) -> None:
        """Create `bucket` if it does not exist (demo and tests; production pre-creates)."""
        try:
            self.client.head_bucket(Bucket=bucket)
            return
        except bce.ClientError as exc:
            if not is_not_found(exc) and error_code(exc) != "NoSuchBucket":
                raise classify(exc, f"head bucket {bucket}") from exc
        except Exception as exc:
            raise classify(exc, f"head bucket {bucket}") from exc
        args: dict[str, Any] = {"Bucket": bucket}
        region = self.client.meta.region_name
        if region and region != "us-east-1":  # us-east-1 rejects an explicit constraint
            args["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**args)
        except bce.ClientError as exc:
            if error_code(exc) != "BucketAlreadyOwnedByYou":  # lost a race with ourselves: fine
                raise classify(exc, f"create bucket {bucket}") from exc
        except Exception as exc:
            raise classify(exc, f"create bucket {bucket}") from exc

    def bucket_problem(self, bucket: str) -> str | None:
        """None if `bucket` exists and answers us; else why not, naming it (a missing
        bucket, denied access, or an S3 error), for a condition before any job is paid."""
        try:
            self.client.head_bucket(Bucket=bucket)
            return None
        except bce.ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404 or error_code(exc) in ("NoSuchBucket", "404", "NotFound"):
                return f"bucket {bucket!r} does not exist"
            if status == 403 or error_code(exc) in ("403", "AccessDenied", "Forbidden"):
                return f"access to bucket {bucket!r} is denied"
            return f"bucket {bucket!r} could not be checked: {classify(exc, 'head').message}"
        except Exception as exc:
            return f"bucket {bucket!r} could not be checked: {classify(exc, 'head').message}"

    # ------------------------------------------------------------------------- objects

    def put_clip(
        self, bucket: str, key: str, path: Path, *, metadata: dict[str, str]
    ) -> ObjectFact:
        """Upload `path` to `key` and return the object only once S3 shows the same bytes.

        Raises ClipVerificationError (retryable) if S3 names another checksum or the object
        read back differs in size or checksum, StorageError for transport/permission
        failures (a body damaged on the way fails S3's own check: BadDigest, retryable).
        """
        sha256, size = file_sha256(Path(path))
        meta = {**clean_metadata(metadata), SHA256_META: sha256}
        target = f"s3://{bucket}/{key}"
        if size < self.transfer_config.multipart_threshold:
            fact = self._put_single(bucket, key, Path(path), size, sha256, meta)
            if fact is not None:
                return fact
        else:  # managed transfer: streams from disk, in parts
            try:
                self.client.upload_file(
                    str(path),
                    bucket,
                    key,
                    ExtraArgs={"ContentType": CONTENT_TYPE, "Metadata": meta},
                    Config=self.transfer_config,
                )
            except Exception as exc:
                raise classify(exc, f"upload {target}") from exc

        fact = self.head(bucket, key)
        if fact is None:
            raise ClipVerificationError(f"verify {target}: object missing right after upload")
        if fact.size != size:
            raise ClipVerificationError(f"verify {target}: size {fact.size} in S3, {size} uploaded")
        if fact.sha256 != sha256:
            raise ClipVerificationError(
                f"verify {target}: sha256 {fact.sha256} in S3, {sha256} uploaded"
            )
        return fact

    def _put_single(
        self, bucket: str, key: str, path: Path, size: int, sha256: str, meta: dict[str, str]
    ) -> ObjectFact | None:
        """One PutObject on this thread (the managed transfer would make the same request
        through a transfer manager of its own: a thread pool started and joined per upload,
        and botocore's context deep-copied per task). The object, if S3's answer proves
        it; None if only a HEAD can tell."""
        target = f"s3://{bucket}/{key}"
        args: dict[str, Any] = {"ContentType": CONTENT_TYPE, "Metadata": meta}
        if self.send_checksum:
            # Precomputed, so botocore computes no checksum of its own. S3 ignores the
            # algorithm beside a value; moto echoes the value only when it is named.
            args |= {"ChecksumAlgorithm": "SHA256", "ChecksumSHA256": b64_sha256(sha256)}
        try:
            with path.open("rb") as body:
                resp = self.client.put_object(Bucket=bucket, Key=key, Body=body, **args)
        except Exception as exc:
            raise classify(exc, f"upload {target}") from exc
        answered = answered_sha256(resp.get("ChecksumSHA256"))
        if answered is None:  # a store that keeps no checksum, or an unreadable one
            return None
        if answered != sha256:
            raise ClipVerificationError(
                f"verify {target}: S3 answered sha256 {answered}, {sha256} uploaded"
            )
        # S3 checked the bytes it received against our checksum before storing them:
        # the object is our file, whose size and metadata we know.
        return ObjectFact(
            key=key, size=size, etag=bare_etag(resp.get("ETag")), sha256=sha256, metadata=dict(meta)
        )

    def _require_bucket(self, bucket: str, key: str) -> None:
        """Raise a permanent NoSuchBucket StorageError if `bucket` does not exist. Any other
        answer (e.g. 403 for credentials without s3:ListBucket) settles nothing: proceed."""
        if bucket in self._buckets_checked:
            return
        try:
            self.client.head_bucket(Bucket=bucket)
        except bce.ClientError as exc:
            if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                raise StorageError(
                    False,
                    f"head s3://{bucket}/{key}: NoSuchBucket: the bucket does not exist",
                    code="NoSuchBucket",
                ) from exc
        except Exception:  # unreachable: the next HEAD will tell
            return
        self._buckets_checked.add(bucket)

    def head(self, bucket: str, key: str) -> ObjectFact | None:
        """The object at `key`, or None if there is none."""
        try:
            resp = self.client.head_object(Bucket=bucket, Key=key)
        except bce.ClientError as exc:
            # HEAD has no body: a missing bucket also reads as a plain 404, and "no clip
            # here" would then start a paid job whose upload can only fail. Ask the bucket.
            if is_not_found(exc):
                self._require_bucket(bucket, key)
                return None
            raise classify(exc, f"head s3://{bucket}/{key}") from exc
        except Exception as exc:
            raise classify(exc, f"head s3://{bucket}/{key}") from exc
        metadata = dict(resp.get("Metadata") or {})
        return ObjectFact(
            key=key,
            size=int(resp["ContentLength"]),
            etag=bare_etag(resp.get("ETag")),
            sha256=metadata.get(SHA256_META),
            metadata=metadata,
        )

    def verify(
        self, bucket: str, key: str, *, size: int, sha256: str | None, etag: str | None
    ) -> ObjectFact | None:
        """The object if it is still the one recorded; None if missing or different.

        A given `sha256` must match the object's recorded checksum (an object without one
        cannot be vouched for); a given `etag` must match exactly.
        """
        fact = self.head(bucket, key)
        if fact is None or fact.size != size:
            return None
        if sha256 is not None and fact.sha256 != sha256:
            return None
        if etag is not None and fact.etag != bare_etag(etag):
            return None
        return fact

    def content_sha256(self, bucket: str, key: str) -> str | None:
        """The SHA-256 of the object's bytes, read back (streamed); None if it is gone.
        For drift: an ETag can change while the bytes do not (a copy onto itself)."""
        target = f"s3://{bucket}/{key}"
        digest = hashlib.sha256()
        try:
            body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
            for chunk in body.iter_chunks(MiB):
                digest.update(chunk)
        except bce.ClientError as exc:
            if is_not_found(exc):
                return None
            raise classify(exc, f"read {target}") from exc
        except Exception as exc:
            raise classify(exc, f"read {target}") from exc
        return digest.hexdigest()

    def list_prefix(self, bucket: str, prefix: str) -> dict[str, ObjectFact]:
        """Every object under `prefix`, by key: one ListObjectsV2 call per 1000 keys."""
        facts: dict[str, ObjectFact] = {}
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": 1000}
            )
            for page in pages:
                for obj in page.get("Contents", ()):
                    facts[obj["Key"]] = ObjectFact(
                        key=obj["Key"],
                        size=int(obj["Size"]),
                        etag=bare_etag(obj.get("ETag")),
                        sha256=None,  # listings carry no user metadata
                        metadata={},
                    )
        except Exception as exc:
            raise classify(exc, f"list s3://{bucket}/{prefix}") from exc
        return facts

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under `prefix`, versions and delete markers included, until
        a LIST finds nothing (controller/storage/purge.py); returns how many went."""
        return purge_prefix(self.client, bucket, prefix)

    def download(self, bucket: str, key: str, dest: Path) -> None:
        """Copy an object to a local file (written aside and renamed by boto3)."""
        try:
            self.client.download_file(bucket, key, str(dest), Config=self.transfer_config)
        except Exception as exc:
            raise classify(exc, f"download s3://{bucket}/{key}") from exc
