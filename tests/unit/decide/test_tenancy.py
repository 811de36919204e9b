"""Operator-level limits (issue 12 #14): allow-lists of buckets and models, a default
budget, and video.params that cannot reach around the bounded prompt and duration."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from controller.api.project import ProjectSpec
from controller.api.scene import SceneSpec
from controller.decide import tenancy
from controller.decide.desired import DEFAULT_PLANNER_MODELS, desired_for
from controller.providers.gemini_planner import GeminiPlanner
from controller.providers.local_planner import LocalPlanner
from controller.providers.replicate_video import ReplicateVideoProvider
from controller.settings import Settings

BASE: dict[str, Any] = {
    "prompt": "A lighthouse at dusk",
    "planner": {"provider": "gemini", "model": "gemini-2.5-pro"},
    "video": {"provider": "replicate", "model": "google/veo-3.1"},
    "storage": {"bucket": "team-a-clips"},
}


def settings(**kw: Any) -> Settings:
    return Settings(**kw)


def spec(**kw: Any) -> dict[str, Any]:
    return {**BASE, **kw}


@pytest.mark.parametrize(
    ("raw", "limits", "refused"),
    [
        pytest.param(spec(), {}, None, id="no-limits-allows-any"),
        pytest.param(
            spec(),
            {
                "allowed_buckets": "team-a-clips, other",
                "allowed_models": "google/veo-3.1,gemini-2.5-pro",
            },
            None,
            id="listed-bucket-and-models-allowed",
        ),
        pytest.param(
            spec(), {"allowed_buckets": "other"}, "bucket 'team-a-clips'", id="bucket-not-listed"
        ),
        pytest.param(
            spec(storage={}),
            {"allowed_buckets": "team-a-clips", "bucket": "shared"},
            "bucket 'shared'",
            id="the-default-bucket-is-checked-too",
        ),
        pytest.param(
            spec(video={"provider": "replicate", "model": "acme/expensive"}),
            {"allowed_models": "google/veo-3.1,gemini-2.5-pro"},
            "video model 'acme/expensive'",
            id="video-model-not-listed",
        ),
        pytest.param(
            spec(video={"provider": "replicate"}),
            {"allowed_models": "gemini-2.5-pro"},
            "video model 'google/veo-3.1'",
            id="a-default-video-model-is-checked-too",
        ),
        pytest.param(
            spec(planner={"provider": "gemini", "model": "gemini-ultra"}),
            {"allowed_models": "google/veo-3.1,gemini-2.5-pro"},
            "planner model 'gemini-ultra'",
            id="planner-model-not-listed",
        ),
    ],
)
def test_allow_lists(raw: dict[str, Any], limits: dict[str, Any], refused: str | None) -> None:
    parsed, problem = tenancy.project_spec(raw, settings(**limits))
    if refused is None:
        assert parsed is not None and problem is None
    else:
        assert parsed is None and problem is not None
        assert refused in problem and "SCENE_OPERATOR_ALLOWED_" in problem


def test_a_scene_override_of_the_model_is_checked() -> None:
    s = settings(allowed_models="google/veo-3.1,gemini-2.5-pro")
    pspec, problem = tenancy.project_spec(spec(), s)
    assert pspec is not None and problem is None
    scene = SceneSpec.model_validate(
        {
            "projectRef": {"name": "p"},
            "sequence": 1,
            "prompt": "x",
            "video": {"model": "acme/expensive"},
        }
    )
    desired, _ = desired_for(scene, pspec, "ns", "uid", s)
    assert "video model 'acme/expensive'" in (tenancy.scene_problem(desired, s) or "")


@pytest.mark.parametrize(
    ("own", "default", "expected"),
    [
        pytest.param(None, None, None, id="no-default-unlimited"),
        pytest.param(None, 5, 5, id="default-applies-when-unset"),
        pytest.param(2, 5, 2, id="own-budget-wins"),
        pytest.param(0, 5, 0, id="own-zero-budget-wins"),
    ],
)
def test_default_max_generations(
    own: int | None, default: int | None, expected: int | None
) -> None:
    raw = spec(budget={"maxGenerations": own} if own is not None else {})
    parsed, _ = tenancy.project_spec(raw, settings(default_max_generations=default))
    assert parsed is not None and parsed.budget.max_generations == expected


def test_settings_read_the_issue_s_variable_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCENE_OPERATOR_ALLOWED_BUCKETS", "a,b")
    monkeypatch.setenv("SCENE_OPERATOR_ALLOWED_MODELS", "m1, m2")
    monkeypatch.setenv("SCENE_OPERATOR_DEFAULT_MAX_GENERATIONS", "7")
    s = Settings()
    assert tenancy.allow_list(s.allowed_buckets) == {"a", "b"}
    assert tenancy.allow_list(s.allowed_models) == {"m1", "m2"}
    assert s.default_max_generations == 7


@pytest.mark.parametrize(
    "params",
    [
        {"prompt": "ignore the spec"},
        {"negative_prompt": "x"},
        {"duration": 600},
        {"duration_seconds": 0},
        {"durationSeconds": 999},
        {"seconds": 120},
        {"aspect_ratio": "21:9"},
        {"Prompt": "case does not matter"},
    ],
)
def test_params_cannot_override_the_prompt_or_the_duration(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="params may not set"):
        ProjectSpec.model_validate(spec(video={"provider": "replicate", "params": params}))
    scene = {"projectRef": {"name": "p"}, "sequence": 1, "prompt": "x", "video": {"params": params}}
    with pytest.raises(ValidationError, match="params may not set"):
        SceneSpec.model_validate(scene)
    _, problem = tenancy.project_spec(spec(video={"params": params}), settings())
    assert problem is not None and "params may not set" in problem


def test_what_reaches_the_provider_keeps_the_spec_prompt_and_duration() -> None:
    pspec = ProjectSpec.model_validate(
        spec(video={"provider": "replicate", "params": {"seed": 7, "resolution": "1080p"}})
    )
    # A spec built around validation (model_construct) still cannot pass them on.
    pspec.video.params = {"prompt": "other", "duration": 600, "seed": 7}
    scene = SceneSpec.model_validate(
        {"projectRef": {"name": "p"}, "sequence": 1, "prompt": "the scene", "durationSeconds": 4}
    )
    _, request = desired_for(scene, pspec, "ns", "uid", settings())
    payload = ReplicateVideoProvider.build_input(request, "acme/model")
    assert payload["prompt"] == "the scene" and payload["duration"] == 4
    assert payload["seed"] == 7


def test_default_planner_models_match_the_planners() -> None:
    assert {
        "gemini": GeminiPlanner.default_model,
        "local": LocalPlanner.default_model,
    } == DEFAULT_PLANNER_MODELS


def test_limits_can_be_waived_for_a_job_already_paid_for() -> None:
    s = settings(allowed_buckets="other", default_max_generations=3)
    assert tenancy.project_spec(spec(), s)[0] is None
    parsed, problem = tenancy.project_spec(spec(), s, limits=False)
    assert problem is None and parsed is not None and parsed.budget.max_generations == 3
    # Validation itself is never waived.
    assert tenancy.project_spec({"prompt": ""}, s, limits=False)[0] is None


@pytest.mark.parametrize(
    "params",
    [
        {"num_outputs": 4},  # Replicate
        {"num_videos": 2},  # Replicate
        {"number_of_videos": 4},  # Veo's GenerateVideosConfig
        {"numberOfVideos": 4},  # Veo, camelCase
        {"sample_count": 4},  # Veo on Vertex AI (REST)
        {"sampleCount": 4},
        {"NUM-OUTPUTS": 4},  # spelling does not matter
    ],
)
def test_params_that_multiply_the_cost_of_a_generation_are_refused(
    params: dict[str, Any],
) -> None:
    with pytest.raises(ValidationError, match="multiply the cost"):
        ProjectSpec.model_validate(spec(video={"provider": "replicate", "params": params}))
    scene = {"projectRef": {"name": "p"}, "sequence": 1, "prompt": "x", "video": {"params": params}}
    with pytest.raises(ValidationError, match="multiply the cost"):
        SceneSpec.model_validate(scene)
    _, problem = tenancy.project_spec(spec(video={"params": params}), settings())
    assert problem is not None and "multiply the cost" in problem


def test_params_are_bounded_in_count_and_in_size() -> None:
    from controller.api.common import MAX_PARAMS, MAX_PARAMS_BYTES

    many = {f"k{i}": i for i in range(MAX_PARAMS + 1)}
    with pytest.raises(ValidationError):
        ProjectSpec.model_validate(spec(video={"params": many}))
    ProjectSpec.model_validate(spec(video={"params": dict(list(many.items())[:MAX_PARAMS])}))
    # Few keys, but one huge value (the schema cannot bound a free-form value's size).
    big = {"style": "x" * MAX_PARAMS_BYTES}
    _, problem = tenancy.project_spec(spec(video={"params": big}), settings())
    assert problem is not None and "params" in problem and str(MAX_PARAMS_BYTES) in problem
    nested = {"a": [{"b": "y" * (MAX_PARAMS_BYTES // 4)}] * 4}
    with pytest.raises(ValidationError, match="bytes"):
        ProjectSpec.model_validate(spec(video={"params": nested}))


def test_the_drift_interval_is_at_least_ten_seconds() -> None:
    with pytest.raises(ValidationError):
        ProjectSpec.model_validate(spec(repair={"intervalSeconds": 9}))
    assert (
        ProjectSpec.model_validate(spec(repair={"intervalSeconds": 10})).repair.interval_seconds
        == 10
    )


def test_tests_may_scale_the_drift_interval_down_but_production_does_not() -> None:
    from controller.controllers.project.reconciler import drift_interval

    pspec = ProjectSpec.model_validate(spec(repair={"intervalSeconds": 10}))
    assert 9 <= drift_interval(pspec) <= 11  # jittered by +-10 %
    assert (
        1.8 <= drift_interval(pspec, settings(drift_interval_scale=0.2).drift_interval_scale) <= 2.2
    )
    assert settings().drift_interval_scale == 1.0
    with pytest.raises(ValidationError):
        settings(drift_interval_scale=2)  # never slower than the spec asks


def test_audio_from_a_bucket_outside_the_allow_list_is_refused() -> None:
    from controller.decide.tenancy import audio_problem, audio_unreadable

    s = Settings(allowed_buckets="clips,music")
    assert audio_problem("music", "a.mp3", "team", {"clips"}, {"scene-operator"}, s) is None
    refused = audio_problem("other", "a.mp3", "team", {"clips"}, {"scene-operator"}, s)
    assert refused == audio_unreadable("other", "a.mp3")


def test_audio_under_the_operators_prefix_must_be_the_projects_own_namespace() -> None:
    from controller.decide.tenancy import audio_problem, audio_unreadable

    s = Settings()
    mine = "scene-operator/team/uid/final/x.mp4"
    theirs = "scene-operator/other-team/uid/final/x.mp4"
    assert audio_problem("clips", mine, "team", {"clips"}, {"scene-operator"}, s) is None
    assert audio_problem("clips", theirs, "team", {"clips"}, {"scene-operator"}, s) == (
        audio_unreadable("clips", theirs)
    )
    # "team" is not a prefix match for "team-b": the namespace is a whole path segment
    other = "scene-operator/team-b/uid/final/x.mp4"
    assert audio_problem("clips", other, "team", {"clips"}, {"scene-operator"}, s) is not None
    # outside the clip buckets, the prefix is only a name
    assert audio_problem("music", theirs, "team", {"clips"}, {"scene-operator"}, s) is None


def test_missing_and_refused_audio_say_the_same() -> None:
    from controller.decide.tenancy import audio_unreadable

    assert "missing or not allowed" in audio_unreadable("b", "k")
