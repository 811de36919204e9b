"""A fake clip store: objects in a dict, with the ClipStore's verbs and fault hooks."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from controller.storage.clips import ObjectFact, StorageError


@dataclass
class FakeClips:
    objects: dict[tuple[str, str], ObjectFact] = field(default_factory=dict)
    data: dict[tuple[str, str], bytes] = field(default_factory=dict)
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    # Called before every operation with (operation, bucket, key); raise to fail it.
    before: list[Callable[[str, str, str], None]] = field(default_factory=list)
    missing_buckets: set[str] = field(default_factory=set)

    def _call(self, op: str, bucket: str, key: str) -> None:
        self.calls.append((op, bucket, key))
        for hook in list(self.before):
            hook(op, bucket, key)

    def put(self, bucket: str, key: str, data: bytes, sha256: str | None = None) -> ObjectFact:
        """An object written by someone else (or an earlier run)."""
        fact = ObjectFact(
            key=key,
            size=len(data),
            etag=hashlib.md5(data).hexdigest(),
            sha256=sha256 if sha256 is not None else hashlib.sha256(data).hexdigest(),
            metadata={},
        )
        self.objects[(bucket, key)] = fact
        self.data[(bucket, key)] = data
        return fact

    def keys(self) -> list[str]:
        return sorted(k for _, k in self.objects)

    # ------------------------------------------------------------------ ClipStorage
    def head(self, bucket: str, key: str) -> ObjectFact | None:
        self._call("head", bucket, key)
        return self.objects.get((bucket, key))

    def put_clip(
        self, bucket: str, key: str, path: Path, *, metadata: dict[str, str]
    ) -> ObjectFact:
        self._call("put", bucket, key)
        fact = self.put(bucket, key, Path(path).read_bytes())
        self.objects[(bucket, key)] = ObjectFact(
            fact.key, fact.size, fact.etag, fact.sha256, dict(metadata)
        )
        return self.objects[(bucket, key)]

    def list_prefix(self, bucket: str, prefix: str) -> dict[str, ObjectFact]:
        self._call("list", bucket, prefix)
        return {
            k: ObjectFact(f.key, f.size, f.etag, None, {})
            for (b, k), f in self.objects.items()
            if b == bucket and k.startswith(prefix)
        }

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        self._call("delete", bucket, prefix)
        if bucket in self.missing_buckets:
            raise StorageError(
                False, f"delete s3://{bucket}/{prefix}: NoSuchBucket", code="NoSuchBucket"
            )
        doomed = [bk for bk in self.objects if bk[0] == bucket and bk[1].startswith(prefix)]
        for bk in doomed:
            del self.objects[bk]
            self.data.pop(bk, None)
        return len(doomed)

    def download(self, bucket: str, key: str, dest: Path) -> None:
        self._call("download", bucket, key)
        if (bucket, key) not in self.data:  # as S3 answers a GET of a missing key
            raise StorageError(False, f"download s3://{bucket}/{key}: NoSuchKey", code="NoSuchKey")
        Path(dest).write_bytes(self.data[(bucket, key)])

    def content_sha256(self, bucket: str, key: str) -> str | None:
        self._call("get", bucket, key)
        fact = self.objects.get((bucket, key))
        return fact.sha256 if fact is not None else None  # the fake's bytes hash to it

    def bucket_problem(self, bucket: str) -> str | None:
        self._call("head-bucket", bucket, "")
        return f"bucket {bucket!r} does not exist" if bucket in self.missing_buckets else None
