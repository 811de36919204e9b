"""Operator-level limits on what a Project may use (pure): allow-lists of buckets and
models, a default budget for Projects that set none, and the pause annotation.

A Project outside the limits is InvalidSpec before anything is planned or started, so
it costs nothing; the message names the value and the setting that refuses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from controller.api import vocabulary as v
from controller.api.project import ProjectSpec
from controller.decide.desired import DEFAULT_MODELS, DEFAULT_PLANNER_MODELS
from controller.decide.scene import Desired
from controller.settings import Settings


def allow_list(value: str) -> frozenset[str]:
    """A comma-separated setting as a set; empty means no limit."""
    return frozenset(item.strip() for item in value.split(",") if item.strip())


def _refused(what: str, value: str, allowed: str, setting: str) -> str | None:
    names = allow_list(allowed)
    if not names or value in names:
        return None
    return f"{what} {value!r} is not allowed by the operator (SCENE_OPERATOR_{setting}: {', '.join(sorted(names))})"


def bucket_problem(bucket: str, settings: Settings) -> str | None:
    return _refused("bucket", bucket, settings.allowed_buckets, "ALLOWED_BUCKETS")


def audio_unreadable(bucket: str, key: str) -> str:
    """The one message for an audio object that is missing, unreadable or not allowed: a
    Project must not learn whether someone else's object exists."""
    return f"audio object s3://{bucket}/{key} cannot be read: missing or not allowed"


def audio_problem(
    bucket: str,
    key: str,
    namespace: str,
    clip_buckets: set[str],
    prefixes: set[str],
    settings: Settings,
) -> str | None:
    """None when a Project in `namespace` may have this audio object read with the
    operator's credentials: its bucket passes SCENE_OPERATOR_ALLOWED_BUCKETS, and inside a
    bucket the operator keeps clips in, a key under the operator's prefixes is under the
    Project's own namespace (not another tenant's clips or films)."""
    refused = bucket_problem(bucket, settings) is not None
    if bucket in clip_buckets:
        for prefix in (p.strip("/") for p in prefixes):
            if (
                prefix
                and key.startswith(f"{prefix}/")
                and not key.startswith(f"{prefix}/{namespace}/")
            ):
                refused = True
    return audio_unreadable(bucket, key) if refused else None


def model_problem(model: str, settings: Settings, what: str = "model") -> str | None:
    return _refused(what, model, settings.allowed_models, "ALLOWED_MODELS")


def project_problem(spec: ProjectSpec, settings: Settings) -> str | None:
    """Why the operator refuses this Project (bucket, planner or video model), or None."""
    bucket = spec.storage.bucket or settings.bucket
    planner = str(spec.planner.provider or settings.default_planner)
    video = str(spec.video.provider or settings.default_video_provider)
    return (
        bucket_problem(bucket, settings)
        or model_problem(
            spec.planner.model or DEFAULT_PLANNER_MODELS.get(planner, planner),
            settings,
            "planner model",
        )
        or model_problem(
            spec.video.model or DEFAULT_MODELS.get(video, video), settings, "video model"
        )
    )


def scene_problem(desired: Desired, settings: Settings) -> str | None:
    """Why the operator refuses what this Scene would generate (its own override of the
    video model included), or None."""
    return bucket_problem(desired.bucket, settings) or model_problem(
        desired.model, settings, "video model"
    )


def with_defaults(spec: ProjectSpec, settings: Settings) -> ProjectSpec:
    """The spec with the operator's default budget when the Project sets none."""
    if spec.budget.max_generations is not None or settings.default_max_generations is None:
        return spec
    budget = spec.budget.model_copy(update={"max_generations": settings.default_max_generations})
    return spec.model_copy(update={"budget": budget})


def paused_by_annotation(annotations: Mapping[str, str] | None) -> bool:
    return (annotations or {}).get(v.ANNOTATION_PAUSED) == "true"


def with_pause(spec: ProjectSpec, annotations: Mapping[str, str] | None) -> ProjectSpec:
    """The pause annotation pauses exactly as spec.paused does: a person can hold a
    Project whose spec a GitOps tool owns (and would set back)."""
    if spec.paused or not paused_by_annotation(annotations):
        return spec
    return spec.model_copy(update={"paused": True})


def project_spec(
    raw: Any,
    settings: Settings,
    limits: bool = True,
    annotations: Mapping[str, str] | None = None,
) -> tuple[ProjectSpec | None, str | None]:
    """A Project's spec as the operator acts on it: validated, defaults applied, paused by
    its annotation too, within the operator's limits (unless `limits` is False: a job
    already paid for is finished whatever the allow-lists say now). (spec, None), or
    (None, why not)."""
    try:
        spec = ProjectSpec.model_validate(raw or {})
    except ValidationError as e:
        return None, short_error(e)
    problem = project_problem(spec, settings) if limits else None
    if problem:
        return None, problem
    return with_pause(with_defaults(spec, settings), annotations), None


def short_error(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
