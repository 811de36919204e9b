"""A Project's spec is validated once per generation (controller/controllers/specs.py)."""

from __future__ import annotations

from controller.controllers.specs import ProjectSpecs
from controller.settings import Settings


def project(generation: int, prompt: str, uid: str = "u1") -> dict:
    return {
        "metadata": {"namespace": "ns", "name": "p", "uid": uid, "generation": generation},
        "spec": {"prompt": prompt, "scenes": {"count": 2}},
    }


def test_the_same_generation_is_validated_once_and_a_new_one_again() -> None:
    specs, settings = ProjectSpecs(), Settings(allowed_models="")
    first, problem = specs.of(project(1, "a lighthouse"), settings)
    assert problem is None and first is not None
    again, _ = specs.of(project(1, "a lighthouse"), settings)
    assert again is first  # not validated again
    changed, _ = specs.of(project(2, "a harbour"), settings)
    assert changed is not None and changed.prompt == "a harbour"
    other, _ = specs.of(project(2, "a harbour", uid="u2"), settings)  # recreated Project
    assert other is not changed


def test_limits_and_invalid_specs_are_kept_apart() -> None:
    specs, settings = ProjectSpecs(), Settings(allowed_models="only-this")
    body = project(1, "a lighthouse")
    body["spec"]["video"] = {"provider": "replicate", "model": "another"}
    spec, problem = specs.of(body, settings)
    assert spec is None and problem and "SCENE_OPERATOR_ALLOWED_MODELS" in problem
    unlimited, problem = specs.of(body, settings, limits=False)
    assert unlimited is not None and problem is None
    specs.forget(("ns", "p"))
    assert specs.of(body, settings)[0] is None


def test_a_spec_within_the_limits_is_kept_once_for_both_uses() -> None:
    """A Project within the operator's limits is the same spec without them: one copy per
    Project (1,000 of them at 10,000 Scenes), not one per use; a new generation is not
    taken from the old one."""
    specs, settings = ProjectSpecs(), Settings(allowed_models="")
    within, _ = specs.of(project(1, "a lighthouse"), settings)
    unlimited, problem = specs.of(project(1, "a lighthouse"), settings, limits=False)
    assert unlimited is within and problem is None
    newer, _ = specs.of(project(2, "a harbour"), settings, limits=False)
    assert newer is not None and newer.prompt == "a harbour"
