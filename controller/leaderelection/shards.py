"""Shards that cannot overlap: one Deployment per group of namespaces, each with its own
Lease. The elected leader of a shard records its namespaces on its Lease (annotation
`video.scene-operator.io/namespaces`, `*` for all) and, before any work, lists the other
shards' Leases: if a live one (holder set, renewed within its lease duration) claims a
namespace this shard claims, this shard refuses to run and says which namespace.

Race-free between two shards that start at once: each writes its claim (acquiring its
Lease) before it reads the others', so at least one of them sees the other's claim.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from controller.api import vocabulary as v
from controller.decide.timeutil import parse_rfc3339

ALL = "*"
LABELS = {v.LABEL_LEADER_ELECTION: "true"}
SELECTOR = f"{v.LABEL_LEADER_ELECTION}=true"


class ShardConflict(Exception):
    """Two shards claim the same namespace: configuration error, refuse to run."""


def claim_value(namespaces: list[str]) -> str:
    """What the Lease records: the sorted namespaces, or `*` (all namespaces)."""
    return ",".join(sorted(set(namespaces))) if namespaces else ALL


def parse_claim(value: str) -> frozenset[str] | None:
    """The namespaces of a recorded claim; None means all namespaces."""
    if value.strip() == ALL:
        return None
    return frozenset(ns.strip() for ns in value.split(",") if ns.strip())


def is_live(lease: dict[str, Any], now: datetime) -> bool:
    spec = lease.get("spec") or {}
    renewed = parse_rfc3339(spec.get("renewTime") or "")
    if not spec.get("holderIdentity") or renewed is None:
        return False
    return renewed + timedelta(seconds=spec.get("leaseDurationSeconds") or 0) > now


def conflicts(ours: str, name: str, leases: list[dict[str, Any]], now: datetime) -> list[str]:
    """Why this shard (Lease `name`, claim `ours`) must not run: one line per live shard
    that claims one of our namespaces, naming the namespaces."""
    mine = parse_claim(ours)
    problems = []
    for lease in leases:
        meta = lease.get("metadata") or {}
        value = (meta.get("annotations") or {}).get(v.ANNOTATION_NAMESPACES)
        if meta.get("name") == name or value is None or not is_live(lease, now):
            continue
        theirs = parse_claim(value)
        other = f"shard {meta.get('name')!r} (Lease {meta.get('namespace')}/{meta.get('name')})"
        if mine is None and theirs is None:
            problems.append(f"all namespaces: both this shard and {other} watch all namespaces")
        elif theirs is None:
            listed = ", ".join(repr(ns) for ns in sorted(mine or ()))
            problems.append(f"namespace {listed}: {other} watches all namespaces")
        else:
            common = sorted(theirs if mine is None else mine & theirs)
            if common:
                listed = ", ".join(repr(ns) for ns in common)
                word = "namespace" if len(common) == 1 else "namespaces"
                problems.append(f"{word} {listed} already served by {other}")
    return problems


def conflict_message(name: str, problems: list[str]) -> str:
    return (
        f"shards must not overlap: this shard (Lease {name!r}) claims "
        + "; ".join(problems)
        + ". Give each Deployment its own --namespace set (and its own "
        "SCENE_OPERATOR_LEADER_ELECT_ID); refusing to start"
    )
