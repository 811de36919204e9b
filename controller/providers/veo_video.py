"""The `veo` video provider: google-genai's `generate_videos` in Vertex AI mode.

google-genai 3.x serves Veo only through Vertex AI (express mode with an API key, or
project/location with Google credentials). The operation name is the job id; polling
POSTs `{model resource}:fetchPredictOperation`, and the finished video comes back inline
as bytes (no `output_gcs_uri` is set unless params ask for one).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pydantic
from google import genai
from google.genai import types

from controller.api.request import VideoRequest
from controller.providers import errors, fetch
from controller.providers.base import JobState, JobStatus, ProviderError

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_MODEL = "veo-3.1-generate-001"

# google.rpc.Code of a failed operation → the HTTP status it stands for.
_RPC_TO_HTTP = {
    1: 499,  # CANCELLED
    2: 500,  # UNKNOWN
    3: 400,  # INVALID_ARGUMENT
    4: 504,  # DEADLINE_EXCEEDED
    5: 404,  # NOT_FOUND
    6: 409,  # ALREADY_EXISTS
    7: 403,  # PERMISSION_DENIED
    8: 429,  # RESOURCE_EXHAUSTED
    9: 400,  # FAILED_PRECONDITION
    10: 409,  # ABORTED
    11: 400,  # OUT_OF_RANGE
    12: 501,  # UNIMPLEMENTED
    13: 500,  # INTERNAL
    14: 503,  # UNAVAILABLE
    15: 500,  # DATA_LOSS
    16: 401,  # UNAUTHENTICATED
}
# Config fields that params may set. One video per job, returned inline as bytes: a GCS
# destination would make the output unfetchable here.
_PARAM_FIELDS = frozenset(types.GenerateVideosConfig.model_fields) - {
    "http_options",
    "number_of_videos",
    "output_gcs_uri",
}


class VeoVideoProvider:
    name = "veo"

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        default_model: str = DEFAULT_MODEL,
        timeout: float = 60.0,
        *,
        project: str | None = None,
        location: str | None = None,
        fetch_rules: fetch.FetchRules | None = None,
    ) -> None:
        self.default_model = default_model
        self.fetch_rules = fetch_rules or fetch.FetchRules()  # the size cap of inline output
        self._timeout = timeout
        self._api_key: str | None = None
        base_url = base_url or os.environ.get("GOOGLE_VERTEX_BASE_URL") or None
        http_options = types.HttpOptions(
            base_url=base_url,
            timeout=int(timeout * 1000),
            # The caller owns retries: without this the SDK silently re-sends a request
            # (a create too) after a dropped connection, 1-10 s later.
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        if project or location:
            self._client = genai.Client(
                vertexai=True, project=project, location=location, http_options=http_options
            )
            return
        self._api_key = (
            api_key or os.environ.get("GOOGLE_API_KEY") or os.environ.get("GEMINI_API_KEY")
        )
        if not self._api_key and not base_url:  # a gateway at base_url may add auth itself
            raise ProviderError(
                "Unauthorized",
                "no API key for Veo: set GOOGLE_API_KEY (or pass project/location)",
                retryable=False,
            )
        self._client = genai.Client(vertexai=True, api_key=self._api_key, http_options=http_options)

    async def aclose(self) -> None:
        await self._client.aio.aclose()

    # ------------------------------------------------------------------ VideoProvider

    async def start(self, request: VideoRequest) -> str:
        config = self.build_config(request)
        operation = await self._call(
            self._client.aio.models.generate_videos(
                model=request.model or self.default_model,
                source=types.GenerateVideosSource(prompt=request.prompt),
                config=config,
            )
        )
        if not operation.name:
            raise ProviderError("InvalidResponse", "Veo returned no operation name", retryable=True)
        return operation.name

    async def poll(self, job_id: str, request: VideoRequest) -> JobState:
        with errors.lost_if_not_found(f"Veo operation {job_id}"):
            # `name` is a field (model_fields has it); the SDK's alias generator hides it from
            # the pydantic mypy plugin.
            pending = types.GenerateVideosOperation(name=job_id)  # type: ignore[call-arg]
            operation = await self._call(self._client.aio.operations.get(pending))
        return self.job_state(job_id, operation)

    async def cancel(self, job_id: str) -> bool:
        """Veo cannot cancel: the Gemini API has no cancel for video operations (and the
        google-genai SDK none at all). A job abandoned here runs to its end and is paid."""
        return False

    async def fetch(self, job_id: str, state: JobState, request: VideoRequest, dest: Path) -> None:
        if state.status == JobStatus.SUCCEEDED and state.output_bytes is None:
            state = await self.poll(job_id, request)  # the bytes were not kept: ask again
        if state.status != JobStatus.SUCCEEDED:
            raise ProviderError("NotReady", f"job {job_id} is {state.status}", retryable=True)
        if state.output_bytes is None:
            raise ProviderError(
                "UnsupportedOutput",
                f"Veo returned a URI ({state.output_url}) but no video bytes",
                retryable=False,
            )
        await asyncio.to_thread(fetch.write_bytes, state.output_bytes, Path(dest), self.fetch_rules)

    # ------------------------------------------------------------------ mapping

    def build_config(self, request: VideoRequest) -> types.GenerateVideosConfig:
        fields: dict[str, Any] = {
            "number_of_videos": 1,
            "duration_seconds": request.duration_seconds,
            "aspect_ratio": request.aspect_ratio,
            "negative_prompt": request.negative_prompt,
            "seed": request.seed,
        }
        unknown = sorted(set(request.params) - _PARAM_FIELDS)
        if unknown:
            log.debug("veo ignores params it does not take: %s", unknown)
        fields.update({k: v for k, v in request.params.items() if k in _PARAM_FIELDS})
        try:
            return types.GenerateVideosConfig(**fields)
        except pydantic.ValidationError as exc:
            message = (
                f"invalid Veo parameters: {exc.error_count()} error(s): {exc.errors()[0]['msg']}"
            )
            raise ProviderError("InvalidRequest", message, retryable=False) from exc

    @staticmethod
    def job_state(job_id: str, operation: types.GenerateVideosOperation) -> JobState:
        if not operation.done:  # None while running: the API omits "done"
            return JobState(status=JobStatus.RUNNING)
        if operation.error:
            return JobState(status=JobStatus.FAILED, error=_operation_error(operation.error))
        response = operation.response or operation.result
        videos = (response.generated_videos if response else None) or []
        video = videos[0].video if videos else None
        if video is not None and video.video_bytes:
            return JobState(status=JobStatus.SUCCEEDED, output_bytes=video.video_bytes)
        if video is not None and video.uri:
            return JobState(status=JobStatus.SUCCEEDED, output_url=video.uri)
        if response is not None and response.rai_media_filtered_count:
            reasons = "; ".join(response.rai_media_filtered_reasons or []) or "no reason given"
            return JobState(status=JobStatus.FAILED, error=errors.safety_blocked(reasons))
        error = ProviderError(
            "NoOutput", f"Veo operation {job_id} produced no video", retryable=True
        )
        return JobState(status=JobStatus.FAILED, error=error)

    # ------------------------------------------------------------------ errors

    async def _call(self, awaitable: Awaitable[T]) -> T:
        """Await an SDK call, turning every failure into a ProviderError."""
        with errors.genai_failures(self._timeout, self._redact):
            return await awaitable

    def _redact(self, text: str) -> str:
        return errors.redact(text, self._api_key)


def _operation_error(error: dict[str, Any]) -> ProviderError:
    """A failed operation carries a google.rpc.Status. Like any failed job it is retried,
    unless it was canceled or its input refused (INVALID_ARGUMENT, FAILED_PRECONDITION,
    OUT_OF_RANGE: HTTP 400) or its text says a safety filter stopped it."""
    code = error.get("code")
    status = _RPC_TO_HTTP.get(code) if isinstance(code, int) and code < 100 else code
    status = status if isinstance(status, int) else 500
    message = str(error.get("message") or f"Veo operation failed with code {code}")
    if status == 499:
        return errors.canceled(message)
    if status == 400:
        return errors.invalid_input(message)
    return errors.job_failure(errors.reason_for_status(status), message)
