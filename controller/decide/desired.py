"""From a Scene spec and its Project to what the clip must be (pure)."""

from __future__ import annotations

from typing import Any

from controller.api.common import RESERVED_PARAMS
from controller.api.keys import project_prefix
from controller.api.project import ProjectSpec
from controller.api.request import VideoRequest
from controller.api.scene import SceneSpec
from controller.decide.edit import edit_of
from controller.decide.hashing import spec_hash
from controller.decide.scene import Desired
from controller.settings import Settings

DEFAULT_MODELS = {
    "replicate": "google/veo-3.1",
    "veo": "veo-3.1-generate-001",
    "local": "local-renderer-v1",
}
# The planners' default models (the providers' `default_model`; a unit test keeps them equal).
DEFAULT_PLANNER_MODELS = {"gemini": "gemini-2.5-pro", "local": "local-shot-list-v1"}


def effective_video(
    scene: SceneSpec, project: ProjectSpec, settings: Settings
) -> tuple[str, str, dict[str, Any]]:
    override = scene.video
    chosen = (
        (override.provider if override and override.provider else None)
        or project.video.provider
        or settings.default_video_provider
    )
    provider = str(chosen)
    model = None
    if override and override.model:
        model = override.model
    elif (
        project.video.model
        and (project.video.provider or settings.default_video_provider) == provider
    ):
        model = project.video.model
    params = {**(project.video.params or {}), **((override.params if override else None) or {})}
    # Validated away already (VideoConfig); dropped here too, so no path reaches a provider.
    params = {k: val for k, val in params.items() if k.lower() not in RESERVED_PARAMS}
    return provider, model or DEFAULT_MODELS.get(provider, provider), params


def desired_for(
    scene: SceneSpec, project: ProjectSpec, namespace: str, project_uid: str, settings: Settings
) -> tuple[Desired, VideoRequest]:
    provider, model, params = effective_video(scene, project, settings)
    duration = scene.duration_seconds or project.duration_seconds()
    aspect = str(scene.aspect_ratio or project.scenes.aspect_ratio)
    fields = {
        "prompt": scene.prompt,
        "negativePrompt": scene.negative_prompt,
        "durationSeconds": duration,
        "aspectRatio": aspect,
        "provider": provider,
        "model": model,
        "params": params,
    }
    h = spec_hash(fields)
    bucket = project.storage.bucket or settings.bucket
    prefix = project.storage.prefix if project.storage.prefix is not None else settings.s3_prefix
    folder = project_prefix(prefix, namespace, project_uid) + f"scenes/{scene.sequence:03d}/"
    desired = Desired(
        spec_hash=h,
        provider=provider,
        model=model,
        duration_seconds=duration,
        bucket=bucket,
        key_prefix=folder,
        edit=edit_of(scene.edit),
    )
    request = VideoRequest(
        prompt=scene.prompt,
        negative_prompt=scene.negative_prompt,
        duration_seconds=duration,
        aspect_ratio=aspect,
        model=model,
        params=params,
        sequence=scene.sequence,
    )
    return desired, request
