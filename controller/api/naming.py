"""Names and label values the operator derives from a Project's name (pure).

A Project name may be any DNS subdomain of up to 253 characters, but a label value holds
at most 63 and `<project>-scene-NNN` adds 10: near those limits the API server would
refuse the Scene create (422) on every pass. Here, a name that fits is used as is; one
that does not is shortened deterministically (a prefix plus a hash of the whole name),
so a restart derives the same names and two long names never share one.
"""

from __future__ import annotations

import hashlib
import re

MAX_NAME = 253  # metadata.name of a custom resource: a DNS-1123 subdomain
MAX_LABEL_VALUE = 63
HASH_CHARS = 10
_SCENE_SUFFIX = "-scene-{:03d}"
_TRIM = re.compile(r"[^a-z0-9]+$")  # a shortened name must end alphanumeric
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:HASH_CHARS]


def shortened(name: str, limit: int) -> str:
    """`name` if it fits in `limit`, else a prefix of it and a hash of all of it."""
    if len(name) <= limit:
        return name
    head = _TRIM.sub("", name[: limit - HASH_CHARS - 1])
    return f"{head}-{_digest(name)}" if head else _digest(name)


def project_label(project: str) -> str:
    """The value of the project label on Scenes the operator creates (at most 63)."""
    return shortened(project, MAX_LABEL_VALUE)


def scene_name(project: str, sequence: int) -> str:
    """`<project>-scene-NNN`, with the project part shortened when the whole is too long."""
    suffix = _SCENE_SUFFIX.format(sequence)
    return shortened(project, MAX_NAME - len(suffix)) + suffix


def event_name(object_name: str, unique: str) -> str:
    """An Event name `<object>.<unique>` that is a valid DNS subdomain whatever the
    object's name (a cut must not leave a trailing '-' or '.')."""
    return f"{shortened(object_name, MAX_NAME - len(unique) - 1)}.{unique}"


MAX_FILE_NAME = 255  # bytes, on Linux file systems


def download_file_name(namespace: str, name: str, job_id: str) -> str:
    """The local file a clip is downloaded to: unique per Scene and job, and short enough
    for the file system whatever the names (a namespace, 63, and a Scene name, 253,
    together are not)."""
    suffix = f"-{job_id[-12:]}.mp4"
    return shortened(f"{namespace}-{name}", 200 - len(suffix)) + suffix


def is_subdomain(name: str) -> bool:
    return len(name) <= MAX_NAME and bool(_SUBDOMAIN.match(name))
