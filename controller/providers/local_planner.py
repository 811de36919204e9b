"""An offline planner: deterministic shot lists from the concept, no network, no key."""

from __future__ import annotations

from controller.providers.base import PlannedScene, PlanRequest

SHOTS = (
    ("Opening wide establishing shot", "slow push-in", "soft morning light"),
    ("Medium shot", "steady handheld follow", "natural daylight"),
    ("Close-up detail shot", "shallow depth of field, rack focus", "warm practical light"),
    ("Tracking shot", "smooth dolly alongside the subject", "golden-hour backlight"),
    ("Low-angle hero shot", "slow tilt up", "dramatic rim light"),
    ("Overhead aerial shot", "gentle drone glide", "diffused overcast light"),
    ("Over-the-shoulder shot", "subtle parallax", "cool blue-hour light"),
    ("Closing wide shot", "slow pull-back to reveal the scene", "fading sunset light"),
)
NEGATIVE = "blurry, low quality, distorted faces, extra limbs, text artifacts, watermark, logo"


class LocalPlanner:
    name = "local"
    default_model = "local-shot-list-v1"

    async def plan(self, request: PlanRequest) -> list[PlannedScene]:
        return plan_scenes(request)


def plan_scenes(request: PlanRequest) -> list[PlannedScene]:
    count = max(1, request.count)
    concept = " ".join(request.prompt.split())
    scenes = []
    for i in range(count):
        shot, camera, light = (
            SHOTS[0]
            if i == 0
            else SHOTS[-1]
            if i == count - 1
            else SHOTS[1 + (i - 1) % (len(SHOTS) - 2)]
        )
        parts = [
            f"Scene {i + 1} of {count}. {shot} of: {concept}.",
            f"Camera: {camera}. Lighting: {light}.",
        ]
        if request.character_description:
            parts.append(f"Featuring {request.character_description}.")
        if request.product_description and (request.mode == "AdCreative" or i == count - 1):
            parts.append(f"The product, {request.product_description}, is clearly visible.")
        if request.style:
            parts.append(f"Style: {request.style}.")
        parts.append(f"{request.duration_seconds} seconds, {request.aspect_ratio} framing.")
        scenes.append(PlannedScene(prompt=" ".join(parts)[:5000], negative_prompt=NEGATIVE))
    return scenes
