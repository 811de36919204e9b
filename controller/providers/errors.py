"""Error classification in one place: retryable vs permanent."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from controller.providers.base import ProviderError

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def reason_for_status(status: int | None) -> str:
    if status is None:
        return "ConnectionError"
    if status == 429:
        return "RateLimited"
    if status >= 500:
        return "ProviderUnavailable"
    if status in (401, 403):
        return "Unauthorized"
    if status == 404:
        return "NotFound"
    return "InvalidRequest"


def is_retryable_status(status: int | None) -> bool:
    """None means no HTTP answer at all (timeout, refused, reset): retryable."""
    return status is None or status in RETRYABLE_STATUS


def classify_status(
    status: int | None, message: str, retry_after: float | None = None
) -> ProviderError:
    return ProviderError(
        reason_for_status(status),
        message,
        retryable=is_retryable_status(status),
        status_code=status,
        retry_after=retry_after,
    )


def connection_error(message: str) -> ProviderError:
    return ProviderError("ConnectionError", message, retryable=True)


def safety_blocked(message: str) -> ProviderError:
    return ProviderError("SafetyBlocked", message, retryable=False)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None if absent/bad."""
    if not value or not (value := value.strip()):
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def redact(text: str, *secrets: str | None) -> str:
    """`text` with every non-empty secret replaced, so messages can be logged safely."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
