"""Wiring of leader election into `python -m controller run`: who we are, which Lease,
what happens on election (shard claims checked, an Event on the Lease) and on loss
(exit at once for a restart). The protocol itself is in controller/leaderelection/elector.py."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller import webhooks
from controller.api import vocabulary as v
from controller.kube.client import KubeApi
from controller.leaderelection import shards
from controller.leaderelection.elector import ElectionConfig, LeaderElector
from controller.settings import Settings

log = logging.getLogger("scene_operator")

SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
EXIT_LOST_LEADERSHIP = 75  # EX_TEMPFAIL: restart me, as a standby
EXIT_SHARD_CONFLICT = 78  # EX_CONFIG: a configuration error, restarting will not help


def in_cluster() -> bool:
    """Running in a pod (the service account is mounted) without a KUBECONFIG."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and not os.environ.get("KUBECONFIG")


def election_enabled(flag: bool | None, settings: Settings) -> bool:
    """--leader-elect / --no-leader-elect, else SCENE_OPERATOR_LEADER_ELECT, else on in a
    cluster (where a second replica may well be running) and off with a kubeconfig."""
    if flag is not None:
        return flag
    if settings.leader_elect is not None:
        return settings.leader_elect
    return in_cluster()


def pod_namespace() -> str:
    try:
        return SA_NAMESPACE_FILE.read_text().strip() or "default"
    except OSError:
        return os.environ.get("POD_NAMESPACE") or "default"


def identity() -> str:
    """Pod name (the hostname in a pod) and a random suffix, as client-go users do: two
    processes in one pod, or a restarted container, never share an identity."""
    name = os.environ.get("POD_NAME") or socket.gethostname() or "scene-operator"
    return f"{name}_{secrets.token_hex(4)}"


def election_config(settings: Settings, namespaces: list[str]) -> ElectionConfig:
    return ElectionConfig(
        namespace=settings.leader_elect_namespace or pod_namespace(),
        name=settings.leader_elect_id,
        identity=identity(),
        lease_duration=settings.leader_elect_lease_duration_seconds,
        renew_deadline=settings.leader_elect_renew_deadline_seconds,
        retry_period=settings.leader_elect_retry_period_seconds,
        labels={**shards.LABELS, v.LABEL_MANAGED_BY: v.MANAGER},
        annotations={
            v.ANNOTATION_NAMESPACES: shards.claim_value(namespaces),
            **webhooks.lease_annotations(settings),  # the leader's receiver, for forwarding
        },
    )


def exit_now(code: int, message: str, **fields: Any) -> None:
    """Stop everything at once: no worker, thread or pending write runs after this."""
    log.critical(message, extra=fields)
    logging.shutdown()  # flush the line above
    os._exit(code)


def lost(reason: str) -> None:
    exit_now(
        EXIT_LOST_LEADERSHIP,
        "lost the leader-election Lease: exiting for a restart as a standby",
        error=reason,
    )


def elector(
    api: KubeApi,
    config: ElectionConfig,
    on_elected: Callable[[str | None], Awaitable[None]] | None = None,
) -> LeaderElector:
    """An elector on its own API client (renewals never queue behind the work's requests)
    that checks the shard claims and posts the hand-over Event once elected, after
    `on_elected(previous holder)` (the webhook routing label)."""

    async def acquired(lease: dict[str, Any]) -> None:
        leases = await api.list_leases(config.namespace, shards.SELECTOR)
        claim = config.annotations[v.ANNOTATION_NAMESPACES]
        problems = shards.conflicts(claim, config.name, leases, datetime.now(UTC))
        if problems:
            await chosen.release()
            exit_now(
                EXIT_SHARD_CONFLICT,
                shards.conflict_message(config.name, problems),
                lease=f"{config.namespace}/{config.name}",
            )
        if on_elected is not None:
            await on_elected(chosen.previous_holder)
        spec = lease.get("spec") or {}
        message = f"{config.identity} became leader"
        log.info(
            message,
            extra={
                "reason": v.Reason.LEADER_ELECTION,
                "lease": f"{config.namespace}/{config.name}",
                "identity": config.identity,
                "transitions": spec.get("leaseTransitions"),
            },
        )
        try:
            await api.post_event(lease, reason=v.Reason.LEADER_ELECTION, message=message)
        except Exception as e:  # Events are best effort
            log.warning(
                "event not posted", extra={"reason": v.Reason.LEADER_ELECTION, "error": str(e)}
            )

    chosen = LeaderElector(api, config, on_lost=lost, on_acquired=acquired)
    api.write_guard = chosen.may_write
    return chosen


def election_ended(task: asyncio.Task[None]) -> None:
    """The elector returns only through its exits (and is cancelled only after this
    callback is removed): anything else, e.g. a bug, or kopf cancelling a task of ours
    while it restarts, stops the process at once rather than run on without renewing."""
    error = "cancelled" if task.cancelled() else repr(task.exception())
    exit_now(EXIT_LOST_LEADERSHIP, "leader election stopped", error=error)
