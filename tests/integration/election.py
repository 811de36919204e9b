"""Helpers of the leader-election tests: a Replicate account that tells which operator
process called, the Lease as the API server has it, and the provider's view of
concurrency."""

from __future__ import annotations

import secrets
import time
from typing import Any

from kubernetes import client as k8s

from tests.integration.helpers import Cluster
from tests.support.replicate_server import ReplicateServer, Reply


class TaggedReplicate(ReplicateServer):
    """One Replicate account, one API token per operator process: `calls` records
    (time received, process label, route) for every request, so a test can prove which
    process called the provider, and when."""

    def __init__(self, labels: list[str], **kw: Any) -> None:
        super().__init__(**kw)
        self.tokens = {f"r8_{label}_{secrets.token_hex(8)}": label for label in labels}
        self.calls: list[tuple[float, str, str]] = []

    def env_for(self, label: str) -> dict[str, str]:
        (token,) = [t for t, name in self.tokens.items() if name == label]
        return {"REPLICATE_API_TOKEN": token, "REPLICATE_BASE_URL": self.base_url}

    def _label(self, headers: dict[str, str]) -> str:
        auth = {k.lower(): val for k, val in headers.items()}.get("authorization", "")
        return self.tokens.get(auth.removeprefix("Bearer "), "?")

    def authorized(self, headers: dict[str, str]) -> bool:
        return self._label(headers) != "?"

    def dispatch(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> Reply | None:
        route = (self.route(method, path) or ("unknown",))[0]
        with self.lock:
            self.calls.append((time.time(), self._label(headers), route))
        return super().dispatch(method, path, headers, body)

    def calls_by(self, label: str, since: float = 0.0) -> list[tuple[float, str, str]]:
        with self.lock:
            return [c for c in self.calls if c[1] == label and c[0] >= since]


def election_env(
    lease_namespace: str, lease_id: str, lease_seconds: float = 15.0
) -> dict[str, str]:
    """Leader election on, with client-go's ratios (15/10/2) scaled to `lease_seconds`,
    and the fence likewise (5 of 15)."""
    return {
        "SCENE_OPERATOR_LEADER_ELECT": "true",
        "SCENE_OPERATOR_LEADER_ELECT_NAMESPACE": lease_namespace,
        "SCENE_OPERATOR_LEADER_ELECT_ID": lease_id,
        "SCENE_OPERATOR_LEADER_ELECT_LEASE_DURATION_SECONDS": str(lease_seconds),
        "SCENE_OPERATOR_LEADER_ELECT_RENEW_DEADLINE_SECONDS": str(lease_seconds * 2 / 3),
        "SCENE_OPERATOR_LEADER_ELECT_RETRY_PERIOD_SECONDS": str(lease_seconds * 2 / 15),
        "SCENE_OPERATOR_LEADER_ELECT_FENCE_SECONDS": str(lease_seconds / 3),
    }


def lease_spec(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """The Lease's spec as the API server has it ({} while it does not exist)."""
    api = k8s.CoordinationV1Api(cluster.core.api_client)
    try:
        lease = api.read_namespaced_lease(name, namespace)
    except k8s.ApiException as e:
        if e.status == 404:
            return {}
        raise
    return cluster.core.api_client.sanitize_for_serialization(lease.spec) or {}


def max_running(created: list[dict[str, Any]], latency: float) -> int:
    """The most jobs running at once at the provider: each runs from its create for
    `latency` seconds (the provider's own clock)."""
    edges = sorted(
        [(job["time"], 1) for job in created] + [(job["time"] + latency, -1) for job in created]
    )
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak
