"""Deliveries reach the leader: only it acts on a webhook.

- **A label on the leader's Pod.** The leader sets `video.scene-operator.io/leader:
  <Lease name>` on its own Pod once elected, and removes it from the Pod of the holder
  it took the Lease from (that process exited or froze: it cannot remove its own). Every
  process removes it from its own Pod at start (a restarted container keeps its Pod's
  labels), and the leader on a normal stop, before it releases the Lease. The webhook
  Service selects that label, so its endpoints are the leader's. The value is the Lease
  name: shards sharing a namespace never touch each other's label. Only merge patches of
  known Pod names: RBAC `patch` on pods in the operator's namespace, no `list`.
- **Forwarding from a standby.** Endpoints follow a label change after a moment (the
  endpoints controller, then kube-proxy or the ingress), and without the label's RBAC
  the Service selects every Pod. A standby that still receives a delivery forwards it,
  unverified (it has no secret), to the leader's receiver, named in the Lease
  (`video.scene-operator.io/webhook-endpoint`, written by the leader with every renewal),
  and relays the answer: the delivery is acted on at once instead of waiting for
  Replicate's retry, whose schedule is Replicate's. A forwarded request is never
  forwarded again; when no leader is known or it cannot be reached, 503 and Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from controller.api import vocabulary as v

log = logging.getLogger("scene_operator.webhooks")

LABEL_LEADER = f"{v.GROUP}/leader"
ANNOTATION_ENDPOINT = f"{v.GROUP}/webhook-endpoint"
FORWARDED = "X-Scene-Operator-Forwarded"  # set on a forwarded request: no second hop
FORWARD_TIMEOUT = 5.0  # the leader answers in milliseconds; a hung one is given up
LOOKUP_TTL = 1.0  # a burst of deliveries to the standby reads the Lease once a second
PATCH_TIMEOUT = 3.0  # each label write; the renewals wait for none of it for long
RELAYED = ("content-type", "webhook-id", "webhook-timestamp", "webhook-signature")


def own_endpoint(port: int) -> str:
    """This process's receiver as the other replicas reach it (the Pod IP from the
    downward API), or "" when unknown (outside a cluster without POD_IP)."""
    ip = os.environ.get("POD_IP", "")
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}" if ip else ""


def pod_name(identity: str | None) -> str | None:
    """The Pod of a leader-election identity (`<pod name>_<random suffix>`)."""
    if not identity or "_" not in identity:
        return None
    return identity.rsplit("_", 1)[0] or None


class LeaderLabel:
    """The leader label on Pods of this Deployment, written with `api` (a KubeApi)."""

    def __init__(self, api: Any, namespace: str, pod: str, value: str) -> None:
        self.api = api
        self.namespace = namespace
        self.pod = pod
        self.value = value
        self.writes = 0

    async def clear_own(self) -> None:
        await self._set(self.pod, None)

    async def claim(self, previous_holder: str | None) -> None:
        """Elected: label this Pod, and unlabel the Pod of the holder before us."""
        await self._set(self.pod, self.value)
        previous = pod_name(previous_holder)
        if previous and previous != self.pod:
            await self._set(previous, None)

    async def release(self) -> None:
        await self._set(self.pod, None)

    async def _set(self, pod: str, value: str | None) -> None:
        path = f"/api/v1/namespaces/{self.namespace}/pods/{pod}"
        patch = {"metadata": {"labels": {LABEL_LEADER: value}}}
        try:
            async with asyncio.timeout(PATCH_TIMEOUT):
                await self.api.request(
                    "PATCH", path, json=patch, content_type="application/merge-patch+json"
                )
            self.writes += 1
        except Exception as e:  # a 404 (Pod gone), a 403 (no RBAC): forwarding still routes
            status = getattr(e, "status", None)
            if status != 404:
                log.warning(
                    "leader label not written",
                    extra={"object": f"{self.namespace}/{pod}", "error": str(e) or repr(e)},
                )


class LeaderLookup:
    """The leader's receiver endpoint, read from the Lease (cached for LOOKUP_TTL)."""

    def __init__(self, api: Any, namespace: str, name: str, own: str) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.own = own
        self._cached: tuple[float, str | None] | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> str | None:
        async with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < LOOKUP_TTL:
                return self._cached[1]
            endpoint = await self._read()
            self._cached = (now, endpoint)
            return endpoint

    async def _read(self) -> str | None:
        try:
            lease = await self.api.get_lease(self.namespace, self.name)
        except Exception as e:
            log.debug("lease not read for forwarding", extra={"error": str(e) or repr(e)})
            return None
        if not lease or not (lease.get("spec") or {}).get("holderIdentity"):
            return None  # released, or never held
        annotations = (lease.get("metadata") or {}).get("annotations") or {}
        endpoint = annotations.get(ANNOTATION_ENDPOINT) or None
        return endpoint if endpoint != self.own else None


async def forward(
    session: aiohttp.ClientSession, endpoint: str, path: str, headers: Any, body: bytes
) -> tuple[int, bytes, dict[str, str]] | None:
    """POST the delivery to the leader; its status, body and Retry-After, or None when it
    could not be reached or did not answer in time."""
    sent = {k: headers[k] for k in RELAYED if k in headers}
    sent[FORWARDED] = "1"
    try:
        timeout = aiohttp.ClientTimeout(total=FORWARD_TIMEOUT)
        async with session.post(endpoint + path, data=body, headers=sent, timeout=timeout) as r:
            answer = await r.content.read(64 * 1024)
            retry = {"Retry-After": r.headers["Retry-After"]} if "Retry-After" in r.headers else {}
            return r.status, answer, retry
    except (aiohttp.ClientError, TimeoutError) as e:
        log.debug("delivery not forwarded", extra={"error": str(e) or repr(e)})
        return None


@dataclass
class Routing:
    """Both halves, as the operator wires them (see webhooks.leader_routing)."""

    label: LeaderLabel | None  # None outside a Pod (no POD_NAME)
    lookup: LeaderLookup
    _claim: asyncio.Task[None] | None = None

    @classmethod
    def create(cls, api: Any, namespace: str, lease: str, port: int) -> Routing:
        pod = os.environ.get("POD_NAME")
        label = LeaderLabel(api, namespace, pod, lease) if pod else None
        return cls(label, LeaderLookup(api, namespace, lease, own_endpoint(port)))

    async def startup(self) -> None:
        if self.label is not None:
            await self.label.clear_own()

    async def elected(self, previous_holder: str | None) -> None:
        """Called by the elector before it renews again: the writes run on their own, so
        a slow API server delays the label, never a renewal."""
        if self.label is not None:
            self._claim = asyncio.create_task(self.label.claim(previous_holder))

    async def stopping(self, leading: bool) -> None:
        if self._claim is not None and not self._claim.done():
            self._claim.cancel()
        if self.label is not None and leading:
            await self.label.release()
