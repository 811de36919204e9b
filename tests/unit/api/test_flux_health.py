"""The Flux example's healthCheckExprs, run by a CEL interpreter (cel-python), agree with
kstatus on every status of the kstatus table, and keep waiting where kstatus would not."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml

from controller.api import vocabulary as v
from tests.unit.api.kstatus import CURRENT, FAILED, IN_PROGRESS, compute
from tests.unit.api.test_kstatus import PROJECTS, SCENES, wrap

EXAMPLE = Path(__file__).resolve().parents[3] / "manifests" / "flux" / "videos-kustomization.yaml"
WAITING = "Waiting"  # an expression failed to evaluate: Flux keeps polling until its timeout


def kustomization() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text())


@functools.cache
def program(kind: str, field: str) -> Any:
    (check,) = [c for c in kustomization()["spec"]["healthCheckExprs"] if c["kind"] == kind]
    env = celpy.Environment()
    return env.program(env.compile(check[field]))


def flux_status(obj: dict[str, Any]) -> str:
    """Flux's order: inProgress, failed, current; the first that is true decides."""
    activation = {key: celpy.json_to_cel(value) for key, value in obj.items()}
    for field, result in (("inProgress", IN_PROGRESS), ("failed", FAILED), ("current", CURRENT)):
        try:
            value = program(obj["kind"], field).evaluate(activation)
        except celpy.CELEvalError:
            return WAITING
        if value:
            return result
    return WAITING


def test_the_example_is_a_flux_kustomization_for_both_kinds() -> None:
    doc = kustomization()
    assert (doc["apiVersion"], doc["kind"]) == ("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
    exprs = doc["spec"]["healthCheckExprs"]
    assert {(e["apiVersion"], e["kind"]) for e in exprs} == {
        (v.API_VERSION, v.PROJECT_KIND),
        (v.API_VERSION, v.SCENE_KIND),
    }
    (target,) = doc["spec"]["healthChecks"]
    assert (target["apiVersion"], target["kind"]) == (v.API_VERSION, v.PROJECT_KIND)


@pytest.mark.parametrize(
    ("kind", "case"),
    [(v.SCENE_KIND, c) for c in SCENES] + [(v.PROJECT_KIND, c) for c in PROJECTS],
    ids=lambda x: str(x),
)
def test_flux_agrees_with_kstatus(kind: str, case: str) -> None:
    make, want, _, _ = (SCENES if kind == v.SCENE_KIND else PROJECTS)[case]
    obj = wrap(kind, make())
    assert flux_status(obj) == compute(obj)[0] == want


def test_a_stale_generation_is_in_progress() -> None:
    obj = wrap(v.PROJECT_KIND, PROJECTS["completed"][0](), generation=2)
    assert flux_status(obj) == IN_PROGRESS


def test_an_object_the_operator_has_not_seen_yet_is_not_current() -> None:
    obj = {"apiVersion": v.API_VERSION, "kind": v.PROJECT_KIND, "metadata": {"generation": 1}}
    assert compute(obj)[0] == CURRENT  # kstatus's gap, which the expressions close
    assert flux_status(obj) == WAITING
