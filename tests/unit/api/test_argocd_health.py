"""The Argo CD health script, run by a real Lua 5.4 (lupa), on Project and Scene shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lupa import lua54

SCRIPT = (Path(__file__).resolve().parents[3] / "manifests" / "argocd" / "health.lua").read_text()


def health(obj: dict[str, Any]) -> tuple[str, str]:
    lua = lua54.LuaRuntime(unpack_returned_tuples=True)

    def table(value: Any) -> Any:
        if isinstance(value, dict):
            return lua.table_from({k: table(v) for k, v in value.items()})
        if isinstance(value, list):
            return lua.table_from([table(v) for v in value])
        return value

    lua.globals().obj = table(obj)
    hs = lua.execute(SCRIPT)
    return hs["status"], hs["message"]


def obj(phase: str | None, ready: tuple[str, str, str] | None, observed: int | None = 1, **st):
    status: dict[str, Any] = dict(st)
    if phase:
        status["phase"] = phase
    if observed is not None:
        status["observedGeneration"] = observed
    if ready:
        s, reason, message = ready
        status["conditions"] = [
            {"type": "Ready", "status": s, "reason": reason, "message": message}
        ]
    return {"metadata": {"generation": 1}, "status": status}


@pytest.mark.parametrize(
    ("o", "expected"),
    [
        (obj("Completed", ("True", "Completed", "clips ready")), ("Healthy", "clips ready")),
        (
            obj("Completed", ("True", "Completed", "old"), observed=0),
            ("Progressing", "Waiting for the operator to observe generation 1"),
        ),
        (obj("Processing", ("False", "InProgress", "2 of 3")), ("Progressing", "2 of 3")),
        (
            obj(
                "Failed",
                ("False", "RetriesExhausted", "x"),
                lastError={"reason": "RetriesExhausted", "message": "3 attempts used"},
            ),
            ("Degraded", "RetriesExhausted: 3 attempts used"),
        ),
        (
            obj("Completed", ("False", "ClipMissing", "1 clip missing from S3")),
            ("Degraded", "1 clip missing from S3"),
        ),
        (
            obj(None, None, observed=None),
            ("Progressing", "Waiting for the operator to observe generation 1"),
        ),
    ],
    ids=["ready", "stale", "in-progress", "failed", "clip-missing-ignored", "new"],
)
def test_health(o: dict[str, Any], expected: tuple[str, str]) -> None:
    assert health(o) == expected
