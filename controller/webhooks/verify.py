"""Verification of Replicate's signed webhooks (the Standard Webhooks scheme), pure.

Replicate signs `<webhook-id>.<webhook-timestamp>.<body>` with HMAC-SHA256 under the
account's signing secret (`whsec_<base64>`) and sends `webhook-signature: v1,<base64> ...`.
The HMAC itself is the replicate SDK's `Webhooks.validate`; this module adds what the SDK
leaves to the receiver (its own tolerance check reads the wall clock, so ours is used): a timestamp tolerance (a captured request is useless after five
minutes), replay protection (a webhook-id is accepted once within that window), and a
classification of every failure into a named outcome with its HTTP answer. Nothing here
logs: the SDK puts the secret into some of its error messages, so they are never shown.
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

from replicate.webhook import Webhooks, WebhookSigningSecret

TOLERANCE_SECONDS = 300.0  # Standard Webhooks' default, and the issue's 5 minutes
MAX_BODY_BYTES = 1 << 20  # a prediction with its input, output URL and logs is far smaller
SECRET_PREFIX = "whsec_"
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
    STANDBY = "standby"  # not the leader: Replicate retries, and reaches the leader
    NO_SECRET = "no_secret"  # the signing secret could not be fetched (or is malformed)


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
    Outcome.NO_SECRET: 503,
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
    sent = {"webhook-id": webhook_id, "webhook-timestamp": stamp, "webhook-signature": signature}
    try:  # replicate 1.0.7 returns None when valid and raises (a ValueError) otherwise
        Webhooks.validate(headers=sent, body=text, secret=WebhookSigningSecret(key=secret))
    except ValueError:  # InvalidSignatureError, or undecodable base64 (binascii.Error)
        return Checked(Outcome.BAD_SIGNATURE)
    if replays.seen(webhook_id, now):
        return Checked(Outcome.REPLAY, webhook_id, timestamp)
    replays.remember(webhook_id, timestamp, now)
    return Checked(None, webhook_id, timestamp)


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header Replicate would send (for the test server)."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    content = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
