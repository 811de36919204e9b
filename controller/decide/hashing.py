"""The spec hash: what decides a clip's content. Part of the S3 key."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def spec_hash(fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]
