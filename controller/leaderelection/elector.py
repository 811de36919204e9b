"""Leader election on a coordination.k8s.io/v1 Lease, the protocol of client-go's
`tools/leaderelection` (kube-controller-manager, controller-runtime).

Why not a library: kopf's peering is its own CRD (not a Lease) and does not fence work
(it pauses handlers, not our work queue); kubernetes_asyncio's elector needs that client,
and the sync `kubernetes` package's elector runs in a thread with its own client. The
protocol is small, so it lives here, with the decisions as pure functions.

- The Lease records holderIdentity, leaseDurationSeconds, acquireTime, renewTime and
  leaseTransitions. Every write carries the resourceVersion that was read, so two
  candidates cannot both win (the loser gets 409).
- A candidate takes a Lease held by someone else only when the record it observes has not
  changed for leaseDurationSeconds, timed on its own monotonic clock from the moment it
  first saw that record (no comparison of clocks across machines).
- The leader renews every retry period. It holds leadership only until `renew deadline`
  after the start of its last successful renew: `is_leader()` turns False at that instant
  on the monotonic clock (which keeps counting while a process is frozen), before any
  other candidate may take over (lease duration > renew deadline). Then `on_lost` runs:
  the operator exits for a restart.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from controller.kube.errors import ApiError
from controller.observability import metrics as m

log = logging.getLogger("scene_operator")

JITTER = 1.2  # client-go's JitterFactor: candidates retry after retry period x [1, 1.2)


@dataclass(frozen=True)
class ElectionConfig:
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)  # e.g. the shard's claim

    def __post_init__(self) -> None:
        # client-go's checks: a leader must give up before anyone may take over.
        if not self.lease_duration > self.renew_deadline > self.retry_period * JITTER > 0:
            raise ValueError(
                "leader election needs lease duration > renew deadline > retry period x 1.2 "
                f"(got {self.lease_duration}, {self.renew_deadline}, {self.retry_period})"
            )


class LeaseApi(Protocol):
    """What the elector needs from the API server (controller.kube.client.KubeApi has it)."""

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    async def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...
    async def replace_lease(
        self, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]: ...


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def now(self) -> datetime: ...
    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def micro_time(t: datetime) -> str:
    """metav1.MicroTime, as the API server stores it."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ------------------------------------------------------------------ pure decisions


def held_by_other(
    spec: dict[str, Any], identity: str, observed_at: float, now: float, default: float
) -> bool:
    """client-go: a Lease with another holder is taken only after its record has stayed the
    same for leaseDurationSeconds since this candidate first observed it."""
    holder = spec.get("holderIdentity") or ""
    duration = spec.get("leaseDurationSeconds") or default
    return bool(holder) and holder != identity and observed_at + duration > now


def next_spec(
    spec: dict[str, Any], identity: str, lease_duration: float, now: datetime
) -> dict[str, Any]:
    """The record written to acquire or renew: the holder keeps acquireTime and the
    transition count; a new holder sets acquireTime and counts one more transition."""
    ours = spec.get("holderIdentity") == identity
    stamp = micro_time(now)
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": math.ceil(lease_duration),
        "acquireTime": spec.get("acquireTime") if ours else stamp,
        "renewTime": stamp,
        "leaseTransitions": int(spec.get("leaseTransitions") or 0) + (0 if ours else 1),
    }


def released_spec(spec: dict[str, Any], now: datetime) -> dict[str, Any]:
    """client-go's ReleaseOnCancel: no holder, 1 s duration, so a standby takes over at its
    next retry instead of waiting out the lease."""
    stamp = micro_time(now)
    return {
        "holderIdentity": None,
        "leaseDurationSeconds": 1,
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": int(spec.get("leaseTransitions") or 0),
    }


def with_spec(
    lease: dict[str, Any], spec: dict[str, Any], config: ElectionConfig
) -> dict[str, Any]:
    meta = dict(lease.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), **config.labels}
    meta["annotations"] = {**(meta.get("annotations") or {}), **config.annotations}
    return {**lease, "metadata": meta, "spec": spec}


def new_lease(config: ElectionConfig, spec: dict[str, Any]) -> dict[str, Any]:
    meta = {"name": config.name, "namespace": config.namespace}
    return with_spec({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta},
                     spec, config)  # fmt: skip


# ------------------------------------------------------------------ the elector


class LeaderElector:
    """Acquire, renew, and give up on time. `is_leader()` is the guard checked right before
    every provider call and API write (see controller.leaderelection.guard)."""

    def __init__(
        self,
        api: LeaseApi,
        config: ElectionConfig,
        *,
        on_lost: Callable[[str], None],
        on_acquired: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.api = api
        self.config = config
        self.on_lost = on_lost
        self.on_acquired = on_acquired
        self.clock = clock or SystemClock()
        self._observed: dict[str, Any] | None = None  # the last spec seen
        self._observed_at = 0.0  # when it was first seen (monotonic)
        self._valid_until = -math.inf  # leadership ends here (monotonic)
        self._leading = False
        self._lost = False
        self.leading = asyncio.Event()
        self.lease: dict[str, Any] | None = None  # the Lease as last written by us
        self.previous_holder: str | None = None  # who held it before our last write
        m.LEADER.set(0)

    def is_leader(self) -> bool:
        return self._leading and self.clock.monotonic() < self._valid_until

    def lease_left(self) -> float:
        """Seconds this process still leads, on its monotonic clock (0 when it does not):
        the fence before a provider create or an S3 PUT (controller.leaderelection.guard)."""
        if not self._leading:
            return 0.0
        return max(self._valid_until - self.clock.monotonic(), 0.0)

    def may_write(self) -> bool:
        """The guard of the elector's own writes: a candidate's, or a leader's before its
        deadline; never one that a frozen leader had under way when it resumed."""
        return not self._lost and (not self._leading or self.is_leader())

    async def wait_leading(self) -> None:
        await self.leading.wait()

    async def run(self) -> None:
        """Campaign until elected, then renew until the deadline passes (then `on_lost`)."""
        while not await self._attempt():
            await self.clock.sleep(self.config.retry_period * random.uniform(1.0, JITTER))
        self._leading = True
        m.LEADER.set(1)
        log.info(
            "became leader",
            extra={"identity": self.config.identity, "lease": self._lease_ref()},
        )
        if self.on_acquired is not None:
            await self.on_acquired(self.lease or {})
        self.leading.set()
        await self._renew_until_lost()

    async def _renew_until_lost(self) -> None:
        while True:
            remaining = self._valid_until - self.clock.monotonic()
            if remaining <= 0:
                return self._lose("the lease was not renewed before the renew deadline")
            await self.clock.sleep(min(self.config.retry_period, remaining))
            remaining = self._valid_until - self.clock.monotonic()
            if remaining <= 0:
                return self._lose("the lease was not renewed before the renew deadline")
            try:
                # asyncio.timeout, not wait_for: no extra task (kopf cancels tasks it did
                # not see before its start when it stops or restarts).
                async with asyncio.timeout(remaining):
                    renewed = await self._attempt()
            except TimeoutError:
                renewed = False
            if not renewed and self._observed is not None and self._holder() not in (
                None, self.config.identity
            ):  # fmt: skip
                return self._lose(f"the lease is held by {self._holder()}")

    def _lose(self, reason: str) -> None:
        if self._lost:
            return
        self._lost = True
        self._leading = False
        m.LEADER.set(0)
        log.critical(
            "lost leadership: stopping all work",
            extra={"identity": self.config.identity, "lease": self._lease_ref(), "error": reason},
        )
        self.on_lost(reason)

    def _holder(self) -> str | None:
        return (self._observed or {}).get("holderIdentity") or None

    def _lease_ref(self) -> str:
        return f"{self.config.namespace}/{self.config.name}"

    async def _attempt(self) -> bool:
        """client-go's tryAcquireOrRenew: one GET and at most one write."""
        started = self.clock.monotonic()
        cfg = self.config
        try:
            lease = await self.api.get_lease(cfg.namespace, cfg.name)
            if lease is None:
                spec = next_spec({}, cfg.identity, cfg.lease_duration, self.clock.now())
                spec["leaseTransitions"] = 0  # the first holder is no transition
                written = await self.api.create_lease(cfg.namespace, new_lease(cfg, spec))
                return self._won(written, started)
            spec = lease.get("spec") or {}
            self._observe(spec)
            if held_by_other(
                spec, cfg.identity, self._observed_at, self.clock.monotonic(), cfg.lease_duration
            ):
                return False
            if self._leading and not self.is_leader():
                return False  # frozen past the renew deadline mid-attempt: write nothing
            new = next_spec(spec, cfg.identity, cfg.lease_duration, self.clock.now())
            written = await self.api.replace_lease(
                cfg.namespace, cfg.name, with_spec(lease, new, cfg)
            )
            return self._won(written, started)
        except ApiError as e:
            if not e.conflict:  # 409: another candidate wrote first; just retry
                log.warning(
                    "leader election: lease not acquired or renewed",
                    extra={"lease": self._lease_ref(), "error": str(e)},
                )
            return False
        except Exception as e:  # unreachable, timed out: retry until the deadline
            log.warning(
                "leader election: API server unreachable",
                extra={"lease": self._lease_ref(), "error": str(e) or type(e).__name__},
            )
            return False

    def _observe(self, spec: dict[str, Any]) -> None:
        if spec != self._observed:
            self._observed = spec
            self._observed_at = self.clock.monotonic()
        transitions = spec.get("leaseTransitions")
        if isinstance(transitions, int):
            m.LEASE_TRANSITIONS.set(transitions)

    def _won(self, written: dict[str, Any], started: float) -> bool:
        self.lease = written
        self.previous_holder = self._holder()
        spec = written.get("spec") or {}
        self._observe(spec)
        # From the start of this attempt: whoever saw our record saw it after that.
        self._valid_until = started + self.config.renew_deadline
        return True

    async def release(self) -> None:
        """Give the Lease up on a normal stop (work already stopped): a standby takes over
        at its next retry. Only while still the leader: never clear someone else's."""
        if not self.is_leader():
            return
        self._leading = False
        m.LEADER.set(0)
        cfg = self.config
        try:
            lease = await self.api.get_lease(cfg.namespace, cfg.name)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != cfg.identity:
                return
            spec = released_spec(lease["spec"], self.clock.now())
            await self.api.replace_lease(cfg.namespace, cfg.name, with_spec(lease, spec, cfg))
            log.info("released the lease", extra={"lease": self._lease_ref()})
        except Exception as e:  # best effort: the lease then simply expires
            log.warning("lease not released", extra={"lease": self._lease_ref(), "error": str(e)})


class AlwaysLeader:
    """Leader election off: one process, always allowed to work."""

    def is_leader(self) -> bool:
        return True

    def lease_left(self) -> float:
        return math.inf

    async def wait_leading(self) -> None:
        return None
