"""Deterministic S3 keys: one key per clip (retries overwrite it, takes never collide),
all of a Project's objects under one prefix."""

from __future__ import annotations


def _part(value: str, what: str) -> str:
    part = value.strip("/")
    if not part:
        raise ValueError(f"{what} must not be empty")
    return part


def project_prefix(prefix: str, namespace: str, project_uid: str) -> str:
    """`{prefix}/{namespace}/{project_uid}/`; an empty prefix gives no leading slash."""
    parts = [prefix.strip("/"), _part(namespace, "namespace"), _part(project_uid, "project_uid")]
    return "/".join(p for p in parts if p) + "/"


def clip_key(
    prefix: str, namespace: str, project_uid: str, sequence: int, spec_hash: str, take: int
) -> str:
    """The one key a clip can have: retries overwrite it, takes never collide."""
    if sequence < 0 or take < 0:
        raise ValueError("sequence and take must not be negative")
    spec = _part(spec_hash, "spec_hash")
    if "/" in spec:
        raise ValueError("spec_hash must not contain '/'")
    base = project_prefix(prefix, namespace, project_uid)
    return f"{base}scenes/{sequence:03d}/{spec}-t{take}.mp4"
