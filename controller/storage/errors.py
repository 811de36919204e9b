"""S3 failures classified once: retryable or permanent, with a message that never
carries credentials. boto3's transfer layer rewraps errors; the root cause decides."""

from __future__ import annotations

import botocore.exceptions as bce
from boto3.exceptions import RetriesExceededError

MAX_MESSAGE = 500

# Codes worth another try (throttling, transient server trouble, bytes damaged in
# transit); everything else from S3, e.g. AccessDenied or NoSuchBucket, is permanent.
RETRYABLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "OperationAborted",
        "BadDigest",
        "IncompleteBody",
        "XAmzContentSHA256Mismatch",
    }
)
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


class StorageError(Exception):
    """A classified S3 failure; `retryable` is decided once, here."""

    def __init__(self, retryable: bool, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.message = message
        self.code = code


class ClipVerificationError(StorageError):
    """The object read back does not match what was uploaded; uploading again may fix it."""

    def __init__(self, message: str) -> None:
        super().__init__(True, message, code="ClipVerificationFailed")


def _root_cause(exc: BaseException) -> BaseException:
    """boto3's transfer layer rewraps ClientErrors (S3UploadFailedError, RetriesExceeded)."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, bce.ClientError | bce.BotoCoreError):
            return exc
        if isinstance(exc, RetriesExceededError) and exc.last_exception is not None:
            nxt: BaseException | None = exc.last_exception
        else:
            nxt = exc.__cause__ or exc.__context__
        if nxt is None:
            break
        exc = nxt
    return exc


def classify(exc: BaseException, action: str) -> StorageError:
    """Turn any boto3/botocore failure into a StorageError (message free of credentials)."""
    cause = _root_cause(exc)
    if isinstance(cause, bce.ClientError):
        err = cause.response.get("Error", {})
        code = str(err.get("Code") or "Unknown")
        status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        retryable = code in RETRYABLE_CODES or (
            status is not None and (status >= 500 or status == 429)
        )
        detail = f"{code} (HTTP {status}): {err.get('Message') or 'no message'}"
    elif isinstance(
        cause,
        bce.ConnectionError  # refused, DNS, connect timeout, TLS, proxy
        | bce.HTTPClientError  # read timeout, connection closed, broken stream
        | bce.ChecksumError
        | bce.FlexibleChecksumError
        | bce.IncompleteReadError
        | bce.CredentialRetrievalError,  # the credential endpoint was briefly unavailable
    ):
        code, retryable, detail = type(cause).__name__, True, str(cause)
    elif isinstance(cause, bce.BotoCoreError):  # no credentials, invalid parameters, ...
        code, retryable, detail = type(cause).__name__, False, str(cause)
    elif isinstance(cause, OSError):  # the local file side
        code, retryable, detail = type(cause).__name__, True, str(cause)
    else:
        code, retryable, detail = type(cause).__name__, False, str(cause)
    return StorageError(retryable, f"{action}: {detail}"[:MAX_MESSAGE], code=code)


def error_code(exc: bce.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_not_found(exc: bce.ClientError) -> bool:
    code = error_code(exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in _NOT_FOUND_CODES or (status == 404 and code != "NoSuchBucket")
