"""An offline planner: deterministic shot lists from the concept, no network, no key.

The concept is split into beats (its sentences), spread in order over exactly N scenes;
each scene gets a shot type, camera move and lighting chosen by its index, so the same
request always yields the same plan and neighbouring clips still look different.
"""

from __future__ import annotations

import re

from controller.providers.base import PlannedScene, PlanRequest

MAX_PROMPT = 5000
MAX_NEGATIVE = 1000
MAX_BEAT = 3000  # leaves room for the shot, style, character and product text

OPENING = "Opening wide establishing shot"
CLOSING = "Closing wide shot"
MIDDLE_SHOTS = (
    "Medium shot",
    "Close-up detail shot",
    "Tracking shot",
    "Low-angle hero shot",
    "Overhead aerial shot",
    "Over-the-shoulder shot",
)
CAMERAS = (
    "slow push-in",
    "steady handheld follow",
    "shallow depth of field with a rack focus",
    "smooth dolly alongside the subject",
    "slow tilt up",
    "gentle drone glide",
    "subtle parallax orbit",
)
LIGHTS = (
    "soft morning light",
    "natural daylight",
    "warm practical light",
    "golden-hour backlight",
    "dramatic rim light",
    "diffused overcast light",
    "cool blue-hour light",
    "neon night light",
)
MOODS = {
    "MusicVideo": "Cut to the rhythm and mood of the music.",
    "AdCreative": "Polished commercial look.",
}
NEGATIVE = "blurry, low quality, distorted faces, extra limbs, text artifacts, watermark, logo"
# With a product to show, "logo" would fight its branding: ban only other brands.
NEGATIVE_WITH_PRODUCT = (
    "blurry, low quality, distorted faces, extra limbs, text artifacts, watermark, "
    "other brands' logos, deformed or misspelled product branding"
)

_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")


class LocalPlanner:
    name = "local"
    default_model = "local-shot-list-v1"

    async def plan(self, request: PlanRequest) -> list[PlannedScene]:
        return plan_scenes(request)


def plan_scenes(request: PlanRequest) -> list[PlannedScene]:
    count = max(1, request.count)
    beats = split_beats(request.prompt, count)
    negative = _negative(request)
    return [
        PlannedScene(
            prompt=_prompt(request, i, count, beats[i])[:MAX_PROMPT], negative_prompt=negative
        )
        for i in range(count)
    ]


def split_beats(concept: str, count: int) -> list[str]:
    """`count` beats in story order: sentences grouped when there are more than scenes,
    repeated over consecutive scenes when there are fewer."""
    pieces = (" ".join(s.split()).strip(" .;!?") for s in _SENTENCE.split(concept.strip()))
    sentences = [s for s in pieces if s] or ["the concept"]
    n = len(sentences)
    beats = []
    for i in range(count):
        start, end = i * n // count, max((i + 1) * n // count, i * n // count + 1)
        beats.append("; ".join(sentences[start:end])[:MAX_BEAT])
    return beats


def _prompt(request: PlanRequest, i: int, count: int, beat: str) -> str:
    if i == 0:
        shot = OPENING
    elif i == count - 1:
        shot = CLOSING
    else:
        shot = MIDDLE_SHOTS[(i - 1) % len(MIDDLE_SHOTS)]
    # Different strides so camera and light do not repeat in lockstep with the shot.
    camera = CAMERAS[(i * 2) % len(CAMERAS)]
    light = LIGHTS[(i * 3) % len(LIGHTS)]
    parts = [f"{shot}: {beat}.", f"Camera: {camera}. Lighting: {light}."]
    if request.character_description:
        parts.append(f"Featuring {request.character_description}.")
    if request.product_description:
        if request.mode == "AdCreative" and i == count - 1:
            parts.append(
                f"Hero shot of the product, {request.product_description}, centred and sharp."
            )
        elif request.mode == "AdCreative" or i == count - 1:
            parts.append(f"The product, {request.product_description}, is clearly visible.")
    if request.style:
        parts.append(f"Style: {request.style}.")
    if mood := MOODS.get(request.mode):
        parts.append(mood)
    parts.append(f"{request.duration_seconds} seconds, {request.aspect_ratio} framing.")
    return " ".join(parts)


def _negative(request: PlanRequest) -> str:
    negative = NEGATIVE_WITH_PRODUCT if request.product_description else NEGATIVE
    if request.character_description:
        negative += ", inconsistent character appearance"
    return negative[:MAX_NEGATIVE]
