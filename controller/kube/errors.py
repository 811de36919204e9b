"""What the Kubernetes API answered that is not a success: `ApiError` (with the
status, reason and any Retry-After), `NotLeaderError` for a write refused before it was
sent, and which answers are retried (client-go's policy: 429 and 5xx, a few times)."""

from __future__ import annotations

from controller.decide.retry_after import KUBE_MAX_SECONDS, bounded

MAX_ATTEMPTS = 4  # one call and up to three retries of a 429 or 5xx answer
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def retry_delay(status: int, retry_after: float | None, attempt: int) -> float | None:
    """How long to wait before retrying a call that got `status` on its `attempt`-th try,
    or None to give up: only throttling (429) and server trouble (5xx) are retried, after
    the server's Retry-After when it sent one (bounded), else 0.5 s, 1 s, 2 s."""
    if status not in RETRY_STATUS or attempt >= MAX_ATTEMPTS:
        return None
    asked = bounded(retry_after, KUBE_MAX_SECONDS)
    return asked if asked is not None else 0.5 * 2 ** (attempt - 1)


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, reason: str = "", *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def not_found(self) -> bool:
        return self.status == 404


class NotLeaderError(RuntimeError):
    """A write refused before it was sent: this process does not hold the Lease (any more)."""
