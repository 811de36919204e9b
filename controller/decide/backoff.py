"""Exponential backoff with jitter (pure: the random draw is an argument)."""

from __future__ import annotations

from controller.api.project import Backoff


def backoff_seconds(attempt: int, policy: Backoff, jitter: float) -> float:
    """Delay before attempt `attempt + 1`, after `attempt` attempts (>= 1) failed.

    `jitter` in [0, 1) spreads retries over the upper half of the interval ("equal jitter"),
    so a burst of failures does not retry in lockstep.
    """
    base = policy.initial_seconds * policy.factor ** max(attempt - 1, 0)
    capped = min(base, policy.max_seconds)
    return capped / 2 + capped / 2 * min(max(jitter, 0.0), 1.0)
