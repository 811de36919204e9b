"""The offline planner: deterministic, exact count, bounded, weaves in the creative inputs."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from controller.providers.base import PlannedScene, Planner, PlanRequest
from controller.providers.local_planner import LocalPlanner

REQUEST = PlanRequest(
    prompt="A lighthouse keeper finds a message in a bottle. She sails into the storm! "
    "At dawn she reaches the island.",
    mode="AdCreative",
    count=4,
    duration_seconds=8,
    aspect_ratio="16:9",
    style="35mm film, muted teal",
    character_description="an old woman in a yellow raincoat",
    product_description="a brass pocket compass",
)


def plan(request: PlanRequest = REQUEST) -> list[PlannedScene]:
    return asyncio.run(LocalPlanner().plan(request))


def test_is_a_planner() -> None:
    planner: Planner = LocalPlanner()
    assert (planner.name, planner.default_model) == ("local", "local-shot-list-v1")


def test_same_input_same_output() -> None:
    assert plan() == plan()


@pytest.mark.parametrize("count", [1, 2, 3, 7, 50])
def test_exactly_the_requested_count(count: int) -> None:
    scenes = plan(dataclasses.replace(REQUEST, count=count))
    assert len(scenes) == count
    assert len({s.prompt for s in scenes}) == count  # no two shots alike


def test_reads_like_a_shot_list() -> None:
    scenes = plan()
    assert scenes[0].prompt.startswith("Opening wide establishing shot")
    assert scenes[-1].prompt.startswith("Closing wide shot")
    assert all("Camera:" in s.prompt and "Lighting:" in s.prompt for s in scenes)
    # The concept's beats are told in order.
    assert "lighthouse keeper" in scenes[0].prompt
    assert "reaches the island" in scenes[-1].prompt


def test_weaves_in_style_character_and_product() -> None:
    scenes = plan()
    assert all("35mm film, muted teal" in s.prompt for s in scenes)
    assert all("yellow raincoat" in s.prompt for s in scenes)
    assert all("brass pocket compass" in s.prompt for s in scenes)  # an ad shows it throughout
    assert all("8 seconds, 16:9" in s.prompt for s in scenes)


def test_music_video_shows_the_product_at_the_end_only() -> None:
    scenes = plan(dataclasses.replace(REQUEST, mode="MusicVideo"))
    assert "brass pocket compass" in scenes[-1].prompt
    assert not any("brass pocket compass" in s.prompt for s in scenes[:-1])


def test_negative_prompt_is_sensible() -> None:
    plain = plan(
        PlanRequest(
            prompt="Rain", mode="MusicVideo", count=2, duration_seconds=4, aspect_ratio="1:1"
        )
    )
    assert all("blurry" in s.negative_prompt and "watermark" in s.negative_prompt for s in plain)
    # With a product, "logo" must not fight its branding.
    assert all("other brands' logos" in s.negative_prompt for s in plan())


def test_bounds_hold_for_huge_inputs() -> None:
    huge = dataclasses.replace(
        REQUEST, prompt="word " * 2000, style="s" * 2000, character_description="c" * 2000
    )
    for scene in plan(huge):
        assert 0 < len(scene.prompt) <= 5000
        assert 0 < len(scene.negative_prompt) <= 1000


def test_blank_concept_still_plans() -> None:
    scenes = plan(dataclasses.replace(REQUEST, prompt="   ", count=2))
    assert len(scenes) == 2 and all(s.prompt for s in scenes)
