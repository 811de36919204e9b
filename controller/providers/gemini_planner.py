"""The `gemini` planner: google-genai `generate_content` with structured output.

The SDK sends the pydantic model below as `responseSchema` and parses the answer into it,
but it swallows invalid or non-conforming JSON (`parsed` is None) and reports a blocked
prompt as a normal 200 (`promptFeedback.blockReason`), so both are checked here. Retries
of 408/429/5xx and dropped connections are left to the SDK (`HttpRetryOptions`); what
still fails is classified once into a ProviderError for the caller's own backoff.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from pydantic import AfterValidator, BaseModel, WithJsonSchema

from controller.providers import errors
from controller.providers.base import PlannedScene, PlanRequest, ProviderError

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_MODEL = "gemini-2.5-pro"
MAX_DESCRIPTION = 5000  # the old app's schema bounds, also the Scene spec's limits
MAX_NEGATIVE = 1000
MAX_MESSAGE = 2000  # status.lastError.message is bounded; provider error pages are not
TEMPERATURE = 0.8  # creative variety between scenes without drifting off the brief
RETRY_STATUS_CODES = [408, 429, 500, 502, 503, 504]

# A candidate that stopped for one of these has no usable text: the output was blocked.
_SAFETY_FINISH = frozenset(
    {
        types.FinishReason.SAFETY,
        types.FinishReason.RECITATION,
        types.FinishReason.BLOCKLIST,
        types.FinishReason.PROHIBITED_CONTENT,
        types.FinishReason.SPII,
    }
)

MODES = {
    "MusicVideo": (
        "a music video: visually driven scenes cut to the rhythm and mood of a song, "
        "favouring performance, atmosphere and striking imagery over dialogue"
    ),
    "AdCreative": (
        "an advertising creative: a short commercial that shows the product in use, makes "
        "its benefit obvious and ends on a clear hero shot of the product"
    ),
}


def _truncate(limit: int) -> Callable[[str], str]:
    return lambda value: value[:limit]


# Strings the schema bounds for the model but parsing truncates instead of rejecting:
# one over-long description must not throw away an otherwise good plan.
Description = Annotated[
    str,
    AfterValidator(_truncate(MAX_DESCRIPTION)),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": MAX_DESCRIPTION,
            "description": "A concrete, self-contained shot description for a video model.",
        }
    ),
]
NegativeDescription = Annotated[
    str,
    AfterValidator(_truncate(MAX_NEGATIVE)),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": MAX_NEGATIVE,
            "description": "Comma-separated things the video model must avoid.",
        }
    ),
]


class SceneSchema(BaseModel):
    description: Description
    negative_description: NegativeDescription


class ScenePlan(BaseModel):
    scenes: list[SceneSchema]


def system_instruction(request: PlanRequest) -> str:
    n = request.count
    plural = "scene" if n == 1 else "scenes"
    kind = MODES.get(request.mode, request.mode)
    lines = [
        f"You are a storyboard director planning {kind}.",
        f"Plan exactly {n} {plural} for the concept the user gives. Each scene becomes one "
        f"{request.duration_seconds}-second clip in {request.aspect_ratio} aspect ratio, made "
        "independently by a text-to-video model that sees nothing but that scene's text.",
    ]
    if request.style:
        lines.append(f"Visual style for every scene: {request.style}.")
    if request.character_description:
        lines.append(
            f"Recurring character: {request.character_description}. Describe them the same "
            "way in every scene they appear in; the video model has no memory between scenes."
        )
    if request.product_description:
        lines.append(
            f"Product: {request.product_description}. Show it clearly and accurately "
            "wherever it appears, and make it the focus of at least one scene."
        )
    lines += [
        "Together the scenes tell the concept from beginning to end, in order.",
        f"For each scene write `description` (at most {MAX_DESCRIPTION} characters): one "
        "concrete shot in present tense with subject and action, setting, camera framing "
        "and movement, lighting, mood and style, achievable within the clip's duration. "
        "No scene numbers, no references to other scenes, no on-screen text unless the "
        "concept asks for it.",
        f"Write `negative_description` (at most {MAX_NEGATIVE} characters): a comma-"
        "separated list of what the video model must avoid in that shot.",
        f'Answer with JSON only: {{"scenes": [...]}} holding exactly {n} {plural}.',
    ]
    return "\n".join(lines)


class GeminiPlanner:
    name = "gemini"
    default_model = DEFAULT_MODEL

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout_seconds: float = 60,
        attempts: int = 4,
        initial_delay: float = 1.0,
        max_delay: float = 30.0,
    ) -> None:
        self._api_key = (
            api_key or os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
        )
        self._timeout = timeout_seconds
        base_url = base_url or os.environ.get("GOOGLE_GEMINI_BASE_URL") or None
        self._http_options = types.HttpOptions(
            base_url=base_url,
            api_version="v1beta",  # 3.x would default to v1; keep the documented path
            timeout=int(timeout_seconds * 1000),
            retry_options=types.HttpRetryOptions(
                attempts=attempts,
                initial_delay=initial_delay,
                max_delay=max_delay,
                # The SDK's default jitter adds up to 1 s per retry whatever the delay;
                # scale it with the delay instead.
                jitter=initial_delay,
                http_status_codes=RETRY_STATUS_CODES,
            ),
        )
        # Without a key the client is not built: the failure surfaces from plan() as a
        # permanent ProviderError, where the caller handles it, not from the registry.
        self._client = (
            genai.Client(api_key=self._api_key, http_options=self._http_options)
            if self._api_key
            else None
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aio.aclose()

    async def plan(self, request: PlanRequest) -> list[PlannedScene]:
        if request.count < 1:
            raise ProviderError(
                "InvalidRequest",
                f"scene count must be at least 1, got {request.count}",
                retryable=False,
            )
        if self._client is None:
            raise ProviderError(
                "Unauthorized",
                "no API key for Gemini: set GEMINI_API_KEY (or GOOGLE_API_KEY)",
                retryable=False,
            )
        config = types.GenerateContentConfig(
            system_instruction=system_instruction(request),
            response_mime_type="application/json",
            response_schema=ScenePlan,
            temperature=TEMPERATURE,
        )
        # The concept goes in as user content, apart from the instructions.
        response = await self._call(
            self._client.aio.models.generate_content(
                model=request.model or self.default_model,
                contents=request.prompt,
                config=config,
            )
        )
        return self.scenes_from(response, request.count)

    # ------------------------------------------------------------------ response

    def scenes_from(
        self, response: types.GenerateContentResponse, count: int
    ) -> list[PlannedScene]:
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason:
            reason = _enum_text(feedback.block_reason)
            detail = f" ({feedback.block_reason_message})" if feedback.block_reason_message else ""
            raise ProviderError(
                "PromptBlocked",
                self._bound(f"Gemini blocked the prompt: {reason}{detail}"),
                retryable=False,
            )
        plan = response.parsed
        if not isinstance(plan, ScenePlan):
            finish = _finish_reason(response)
            if finish in _SAFETY_FINISH:
                raise errors.safety_blocked(f"Gemini stopped the plan: {_enum_text(finish)}")
            raise ProviderError("InvalidPlan", self._invalid_message(response), retryable=False)
        scenes = [
            PlannedScene(
                prompt=s.description.strip()[:MAX_DESCRIPTION],
                negative_prompt=s.negative_description.strip()[:MAX_NEGATIVE],
            )
            for s in plan.scenes
            if s.description.strip()  # an empty shot is no scene at all
        ]
        if not scenes:
            raise ProviderError(
                "InvalidPlan", "Gemini returned a plan with no scenes", retryable=False
            )
        if len(scenes) > count:
            log.info("gemini planned %d scenes, %d asked: keeping the first", len(scenes), count)
            scenes = scenes[:count]
        elif len(scenes) < count:
            log.warning("gemini planned %d scenes, %d asked", len(scenes), count)
        return scenes

    def _invalid_message(self, response: types.GenerateContentResponse) -> str:
        finish = _finish_reason(response)
        try:
            text = response.text or ""
        except ValueError:  # non-text parts only
            text = ""
        message = (
            "Gemini returned no valid plan (JSON missing, malformed or not matching the schema"
        )
        message += f"; finish reason {_enum_text(finish)})" if finish else ")"
        if text:
            message += f": {text[:300]!r}"
        return self._bound(message)

    # ------------------------------------------------------------------ errors

    async def _call(self, awaitable: Awaitable[T]) -> T:
        """Await an SDK call, turning every failure into a ProviderError."""
        try:
            with errors.genai_failures(self._timeout, self._bound):
                return await awaitable
        except genai_errors.UnknownApiResponseError as exc:  # a 200 whose body is not JSON
            message = self._bound(f"Gemini answered with a body that is not JSON: {exc}")
            raise ProviderError("InvalidResponse", message, retryable=True) from exc

    def _bound(self, text: str) -> str:
        """Redacted (the key must never reach status, Events or logs) and bounded."""
        text = errors.redact(text, self._api_key)
        return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def _finish_reason(response: types.GenerateContentResponse) -> types.FinishReason | None:
    candidates = response.candidates or []
    return candidates[0].finish_reason if candidates else None


def _enum_text(value: object) -> str:
    return str(getattr(value, "value", value))
