"""Push, not poll: Replicate calls back when a prediction completes.

On when SCENE_OPERATOR_WEBHOOK_URL is set: predictions are created with
`webhook=<url>/webhooks/replicate` and `webhook_events_filter=["completed"]`, the
receiver listens on SCENE_OPERATOR_WEBHOOK_PORT, and Replicate jobs are polled only every
SCENE_OPERATOR_WEBHOOK_POLL_SECONDS as a safety net. A verified completion wakes its
Scene in the urgent lane; the Scene then finishes exactly as after a poll.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from controller.informer.cache import Body, Key
from controller.settings import Settings

if TYPE_CHECKING:  # aiohttp loads only when webhooks are on
    from controller.webhooks.receiver import Receiver

log = logging.getLogger("scene_operator.webhooks")

PROVIDER = "replicate"  # the only provider that calls back


def enabled(settings: Settings) -> bool:
    return bool(settings.webhook_url)


def endpoint(settings: Settings) -> str | None:
    """The URL Replicate is asked to call, or None when webhooks are off."""
    from controller.webhooks.receiver import PATH

    return settings.webhook_url.rstrip("/") + PATH if settings.webhook_url else None


def poll_delay(settings: Settings, generation: Any, default: float) -> float:
    """The delay before the next poll of the job recorded in `generation` (a
    GenerationInfo, or None): the slow safety net for a recorded job of a provider that
    calls back while webhooks are on; else the usual interval (also for a marker without
    a job id, whose orphan search must not wait for a webhook that cannot come)."""
    if (
        generation is not None
        and generation.job_id
        and generation.provider == PROVIDER
        and enabled(settings)
    ):
        return settings.webhook_poll_seconds
    return default


def gated(provider: Any, settings: Settings) -> Any:
    """The provider the runtime polls: with webhooks on, a job it started is read only
    after its webhook or when the safety-net poll is due (see gate.py)."""
    if not enabled(settings):
        return provider
    from controller.webhooks.gate import PushedJobs

    return PushedJobs(provider, settings.webhook_poll_seconds)


class PushedProvider(Protocol):
    """The Replicate provider as the runtime polls it, behind the gate (gate.PushedJobs)."""

    def webhook_secret(self) -> str: ...

    def started_here(self, job_id: str) -> bool: ...

    def completed(self, job_id: str) -> None: ...


async def start(
    settings: Settings,
    *,
    provider: PushedProvider,
    scenes: Callable[[], Mapping[Key, Body]],
    wake_scene: Callable[[Key], None],
    is_leader: Callable[[], bool] | None = None,
) -> Receiver | None:
    """Fetch the signing secret and start the receiver (None when webhooks are off).
    `scenes` (the cache's Scenes) maps predictions to Scenes, and `wake_scene` makes one
    due (in the urgent lane: it has a job in flight); `is_leader` lets a standby answer
    503."""
    if not enabled(settings):
        return None
    from controller.webhooks.mapping import JobIndex, Waker
    from controller.webhooks.receiver import Receiver, SigningSecret

    wake = Waker(JobIndex(scenes, PROVIDER), provider, wake_scene)
    secret = SigningSecret(provider.webhook_secret)
    receiver = Receiver(secret, wake, **({"is_leader": is_leader} if is_leader else {}))
    await secret.get()  # at start; a failure is retried when a webhook arrives
    await receiver.start("0.0.0.0", settings.webhook_port)
    if not settings.webhook_url.startswith("https://"):  # type: ignore[union-attr]
        log.warning("SCENE_OPERATOR_WEBHOOK_URL is not https: use TLS outside tests")
    # The URL is not logged: some put a token in it.
    log.info("webhook receiver listening", extra={"port": settings.webhook_port})
    return receiver
