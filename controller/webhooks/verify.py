"""Verification of Replicate's signed webhooks (the Standard Webhooks scheme), pure.

Replicate signs `<webhook-id>.<webhook-timestamp>.<body>` with HMAC-SHA256 under the
account's signing secret (`whsec_<base64>`) and sends `webhook-signature: v1,<base64> ...`.
The HMAC is checked here, as the Standard Webhooks specification says, rather than by the
replicate SDK's `Webhooks.validate`: the SDK ignores the version of each entry (it accepts
`v9,<valid>`) and rejects the whole header at the first entry without a comma, so one
malformed entry voids a valid one beside it. Here only `v1,<base64>` entries count, any
other entry is skipped, and one matching entry is enough. Around it: a timestamp tolerance
(a captured request is useless after five minutes), replay protection (a webhook-id is
accepted once within that window), and a classification of every failure into a named
outcome with its HTTP answer. Nothing here logs, and the secret is never in a message.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

TOLERANCE_SECONDS = 300.0  # Standard Webhooks' default, and the issue's 5 minutes
MAX_BODY_BYTES = 1 << 20  # a prediction with its input, output URL and logs is far smaller
SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"  # HMAC-SHA256, the only scheme Standard Webhooks defines
MAX_SIGNATURES = 16  # entries looked at in one header (a rotation sends two or three)
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


class Outcome(StrEnum):
    """The `outcome` label of scene_operator_webhooks_total."""

    ACCEPTED = "accepted"  # verified, and its Scene was woken
    UNKNOWN = "unknown"  # verified, but no Scene of this process waits for that prediction
    PENDING = "pending"  # verified, for a job started here whose id is not recorded yet
    IGNORED = "ignored"  # verified, but not a completion (only "completed" is subscribed)
    REPLAY = "replay"  # verified, but its webhook-id was already accepted: dropped
    BAD_SIGNATURE = "bad_signature"
    STALE = "stale"  # timestamp outside the tolerance (too old, or in the future)
    MALFORMED = "malformed"  # headers or body missing or unparsable
    TOO_LARGE = "too_large"
    METHOD = "method_not_allowed"
    MEDIA_TYPE = "unsupported_media_type"
    NOT_FOUND = "not_found"
    STANDBY = "standby"  # not the leader, and no leader to forward to: Replicate retries
    FORWARDED = "forwarded"  # not the leader: passed to the leader, its answer relayed
    NO_SECRET = "no_secret"  # the signing secret could not be fetched (or is malformed)
    # Connections, not requests (see server.py): closed before a request was read.
    HEADER_TIMEOUT = "header_timeout"  # its headers were not complete in time: closed
    TOO_MANY_CONNECTIONS = "too_many_connections"  # over the cap: a fixed 503, closed


# HTTP answers: 4xx for a request that is wrong (Replicate gives up or it was never
# Replicate's), 503 for "not now" (Replicate retries), 200 for anything verified.
STATUS = {
    Outcome.ACCEPTED: 200,
    Outcome.UNKNOWN: 200,
    Outcome.PENDING: 503,  # Replicate retries; by then the Scene records the job
    Outcome.IGNORED: 200,
    Outcome.REPLAY: 200,  # a duplicate delivery is answered like the first (idempotent)
    Outcome.BAD_SIGNATURE: 401,
    Outcome.STALE: 400,
    Outcome.MALFORMED: 400,
    Outcome.TOO_LARGE: 413,
    Outcome.METHOD: 405,
    Outcome.MEDIA_TYPE: 415,
    Outcome.NOT_FOUND: 404,
    Outcome.STANDBY: 503,
    Outcome.FORWARDED: 200,  # nominal: the leader's own answer is relayed
    Outcome.NO_SECRET: 503,
    Outcome.HEADER_TIMEOUT: 408,  # nominal: the connection is closed without an answer
    Outcome.TOO_MANY_CONNECTIONS: 503,
}


def secret_is_well_formed(key: str) -> bool:
    """`whsec_` followed by non-empty standard base64 (what Replicate serves)."""
    if not key.startswith(SECRET_PREFIX) or key.count("_") != 1:
        return False
    try:
        return bool(base64.b64decode(key[len(SECRET_PREFIX) :], validate=True))
    except (binascii.Error, ValueError):
        return False


class ReplayGuard:
    """The webhook-ids accepted in the last tolerance window. Only verified requests are
    remembered, so a forger cannot fill it; each id is kept until its timestamp leaves
    the window (and at least as long from now, for timestamps in the future)."""

    def __init__(self, window: float = TOLERANCE_SECONDS) -> None:
        self.window = window
        self._expiry: dict[str, float] = {}
        self._order: collections.deque[tuple[float, str]] = collections.deque()

    def __len__(self) -> int:
        return len(self._expiry)

    def seen(self, webhook_id: str, now: float) -> bool:
        self._prune(now)
        return webhook_id in self._expiry

    def remember(self, webhook_id: str, timestamp: float, now: float) -> None:
        expiry = max(now, timestamp) + self.window
        self._expiry[webhook_id] = expiry
        self._order.append((expiry, webhook_id))

    def forget(self, webhook_id: str) -> None:
        """The request was authentic but answered "retry" (503): its retry, with the
        same webhook-id, must not count as a replay."""
        self._expiry.pop(webhook_id, None)

    def _prune(self, now: float) -> None:
        # Expiries arrive almost in order; an out-of-order one is only dropped a bit late.
        # Kept through the window's last second: a request exactly at the tolerance passes
        # the timestamp check, so its id must still be known.
        while self._order and self._order[0][0] < now:
            expiry, webhook_id = self._order.popleft()
            if self._expiry.get(webhook_id) == expiry:
                del self._expiry[webhook_id]


@dataclass(frozen=True)
class Checked:
    """The verdict on one request: an outcome, and for an authentic one its webhook-id."""

    outcome: Outcome | None  # None: authentic and new; the body may be acted on
    webhook_id: str = ""
    timestamp: float = 0.0

    @property
    def authentic(self) -> bool:
        return self.outcome is None


def check(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    now: float,
    replays: ReplayGuard,
    tolerance: float = TOLERANCE_SECONDS,
) -> Checked:
    """Verify one request: headers, timestamp, signature, then replay. Only an authentic,
    new request returns `authentic` (and is then remembered against replays)."""
    lower = {k.lower(): v for k, v in headers.items()}
    webhook_id, stamp, signature = (lower.get(h, "").strip() for h in HEADERS)
    if len(body) > MAX_BODY_BYTES:
        return Checked(Outcome.TOO_LARGE)
    if not (webhook_id and stamp and signature):
        return Checked(Outcome.MALFORMED)
    if not secret_is_well_formed(secret):
        return Checked(Outcome.NO_SECRET)
    try:
        timestamp = float(int(stamp))
        text = body.decode("utf-8")
    except ValueError:  # also UnicodeDecodeError
        return Checked(Outcome.MALFORMED)
    if abs(now - timestamp) > tolerance:
        return Checked(Outcome.STALE)
    if not text:
        return Checked(Outcome.MALFORMED)
    expected = _digest(secret, f"{webhook_id}.{stamp}.".encode() + body)
    if not any(hmac.compare_digest(expected, sent) for sent in v1_signatures(signature)):
        return Checked(Outcome.BAD_SIGNATURE)
    if replays.seen(webhook_id, now):
        return Checked(Outcome.REPLAY, webhook_id, timestamp)
    replays.remember(webhook_id, timestamp, now)
    return Checked(None, webhook_id, timestamp)


def v1_signatures(header: str) -> list[bytes]:
    """The decoded `v1,<base64>` entries of a `webhook-signature` header (space-delimited):
    an entry of another version, without a comma, with more than one, or whose signature
    is not standard base64 is skipped, not an error."""
    found = []
    for entry in header.split()[:MAX_SIGNATURES]:
        version, _, encoded = entry.partition(",")
        if version != SIGNATURE_VERSION or not encoded or "," in encoded:
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def _digest(secret: str, content: bytes) -> bytes:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    return hmac.new(key, content, hashlib.sha256).digest()


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header Replicate would send (for the test server)."""
    content = f"{webhook_id}.{timestamp}.".encode() + body
    return f"{SIGNATURE_VERSION}," + base64.b64encode(_digest(secret, content)).decode()
