"""Error classification in one place: retryable vs permanent."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import httpx

from controller.decide.retry_after import parse_retry_after
from controller.providers.base import JobLostError, ProviderError

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


def http_error(
    status: int | None, message: str, headers: Mapping[str, str] | None = None
) -> ProviderError:
    """An HTTP error answer, classified by status, with its Retry-After if it sent one."""
    retry_after = parse_retry_after(headers.get("Retry-After")) if headers else None
    return classify_status(status, message, retry_after)


def connection_error(message: str) -> ProviderError:
    return ProviderError("ConnectionError", message, retryable=True)


def transport_error(exc: BaseException, clean: Callable[[str], str]) -> ProviderError:
    """No HTTP answer (refused, reset, broken stream): `clean` redacts the message."""
    return connection_error(clean(f"{type(exc).__name__}: {exc}"))


@contextmanager
def lost_if_not_found(job: str) -> Iterator[None]:
    """A 404 from a call in the block means the provider no longer knows `job`."""
    try:
        yield
    except ProviderError as exc:
        if exc.status_code == 404:
            raise JobLostError(f"{job} not found") from exc
        raise


@contextmanager
def genai_failures(timeout: float, clean: Callable[[str], str]) -> Iterator[None]:
    """Turns a google-genai failure in the block into a ProviderError. `clean` redacts
    (and may bound) the texts taken from the error; `timeout` is the client's, in seconds."""
    from google.genai import errors as genai_errors  # here: only genai providers load the SDK

    try:
        yield
    except genai_errors.APIError as exc:
        message = clean(exc.message or exc.status or f"HTTP {exc.code}")
        raise http_error(exc.code, message, getattr(exc.response, "headers", None)) from exc
    except TimeoutError as exc:  # aiohttp's total timeout carries no text
        raise connection_error(f"timed out: no answer within {timeout:g}s") from exc
    except _genai_transport_errors() as exc:
        raise transport_error(exc, clean) from exc


@functools.cache
def _genai_transport_errors() -> tuple[type[BaseException], ...]:
    """Transport failures, whichever HTTP stack google-genai picked (aiohttp when
    installed, which kopf guarantees; httpx2 otherwise)."""
    found: tuple[type[BaseException], ...] = (httpx.TransportError,)
    try:
        import httpx2

        found += (httpx2.TransportError,)
    except ImportError:  # pragma: no cover - google-genai 3.x depends on it
        pass
    try:
        import aiohttp

        found += (aiohttp.ClientError,)
    except ImportError:  # pragma: no cover
        pass
    return found


def safety_blocked(message: str) -> ProviderError:
    return ProviderError("SafetyBlocked", message, retryable=False)


# ----------------------------------------------------------------------------- failed jobs
# A job the provider ran and that failed is retried up to the Project's retry.limit, with
# backoff, like a Kubernetes Job's backoffLimit: worker faults ("CUDA error: an illegal
# memory access was encountered"), timeouts and unknown errors alike. Only the failures
# below are permanent, because another attempt would fail the same way or must not be
# made (the README lists them under "What the operator refuses"):
PERMANENT_FAILURES = {
    "SafetyBlocked": "refused by the provider's safety filter (NSFW, sensitive content)",
    "InvalidRequest": "the provider rejected the input (validation error)",
    "Canceled": "canceled at the provider (by a user)",
}
_SAFETY_TEXT = re.compile(
    r"\bnsfw\b|\bsafety\b|flagged|sensitive|responsible ai|content (polic|moderation|filter)"
    r"|usage (guidelines|polic)|prohibited content|violates",
    re.IGNORECASE,
)
_INPUT_TEXT = re.compile(
    r"input validation|validation (error|failed)|failed validation|validationerror"
    r"|invalid (input|parameter|prompt)|unprocessable",
    re.IGNORECASE,
)


def job_failure(reason: str, message: str) -> ProviderError:
    """A failed job: permanent if its text says the input was refused (safety, validation),
    otherwise retryable under `reason`."""
    if _SAFETY_TEXT.search(message):
        return safety_blocked(message)
    if _INPUT_TEXT.search(message):
        return invalid_input(message)
    return ProviderError(reason, message, retryable=True)


def invalid_input(message: str) -> ProviderError:
    return ProviderError("InvalidRequest", message, retryable=False)


def canceled(message: str) -> ProviderError:
    return ProviderError("Canceled", message, retryable=False)


def redact(text: str, *secrets: str | None) -> str:
    """`text` with every non-empty secret replaced, so messages can be logged safely."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
