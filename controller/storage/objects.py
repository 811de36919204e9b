"""What S3 says about an object, and the local side of an upload: the file's checksum
and the user metadata S3 can carry."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

MiB = 1024 * 1024
_META_KEY = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True)
class ObjectFact:
    """What S3 says about one object."""

    key: str
    size: int
    etag: str  # without the quotes S3 puts around it
    sha256: str | None  # from our metadata; None when unknown (listings, foreign objects)
    metadata: dict[str, str]


def bare_etag(raw: str | None) -> str:
    return (raw or "").strip('"')


def file_sha256(path: Path) -> tuple[str, int]:
    """(hex sha256, size) of a local file, read in chunks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def b64_sha256(hex_sha256: str) -> str:
    """A hex SHA-256 in the base64 form of S3's `x-amz-checksum-sha256` header."""
    return base64.b64encode(bytes.fromhex(hex_sha256)).decode("ascii")


def answered_sha256(value: str | None) -> str | None:
    """The hex SHA-256 an S3 answer's ChecksumSHA256 names; None if it names none: absent,
    a multipart upload's composite `<b64>-<parts>`, or not base64 of 32 bytes."""
    if not value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == hashlib.sha256().digest_size else None


def clean_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """S3 user metadata travels in HTTP headers: lower-case keys, ASCII values. What this
    returns is what a HEAD reads back."""
    clean: dict[str, str] = {}
    for key, value in metadata.items():
        k = key.lower()
        if not _META_KEY.match(k):
            raise ValueError(f"metadata key {key!r} must be letters, digits and '-'")
        v = str(value).strip()  # HTTP drops a header value's outer spaces: S3 stores none
        clean[k] = v if v.isascii() and v.isprintable() else quote(v, safe=" /:=,.-_@")
    return clean
