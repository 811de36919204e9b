"""The `replicate` video provider: `predictions.create`, then `predictions.get`, then a
plain HTTP download of the output file.

The replicate client is synchronous, so every call runs in a bounded thread pool and the
event loop never blocks. `create` is a POST, which the client never retries; neither do
we: a failed create raises a classified ProviderError and the caller decides.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pydantic
import replicate
from pydantic import v1 as pydantic_v1
from replicate.exceptions import ReplicateError

from controller.api.request import VideoRequest
from controller.providers import errors, fetch
from controller.providers.base import JobState, JobStatus, ProviderError

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.replicate.com"
VEO_31 = "google/veo-3.1"
VEO_31_DEFAULTS: dict[str, Any] = {"resolution": "720p", "generate_audio": True}

# replicate.Prediction is a pydantic v1 model; an unknown status (e.g. "aborted") fails it.
_VALIDATION_ERRORS: tuple[type[Exception], ...] = (
    pydantic.ValidationError,
    pydantic_v1.ValidationError,
)
_RUNNING = frozenset({"starting", "processing"})
# The client retries GETs on 429/503/504 in the worker thread, sleeping Retry-After
# uncapped; cap it so a long Retry-After cannot pin pool threads for minutes.
_MAX_CLIENT_RETRY_WAIT = 10.0
# Finding a job whose id was never recorded: how far back to read the prediction list.
FIND_MAX_PAGES = 10
# Hosts that may receive the API token on download, besides the API's own origin.
_TOKEN_HOST_SUFFIXES = (".replicate.com", ".replicate.delivery")

# The Retry-After of the last response seen by the current worker thread: the client's
# ReplicateError drops headers, and each call runs wholly in one thread.
_last_response = threading.local()


class _ClientTransport(httpx.HTTPTransport):
    """Fills two gaps of replicate 1.0.7's HTTP layer:
    - creates are sent with `timeout=None`, i.e. no timeout at all: apply ours instead;
    - ReplicateError drops headers: remember Retry-After (per thread) for classification,
      and cap it for the client's own GET retries."""

    def __init__(self, timeout: httpx.Timeout) -> None:
        super().__init__()
        self._timeout = timeout.as_dict()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout") or {}
        if all(value is None for value in timeouts.values()):
            request.extensions["timeout"] = self._timeout
        response = super().handle_request(request)
        retry_after = errors.parse_retry_after(response.headers.get("Retry-After"))
        _last_response.retry_after = retry_after
        if retry_after is not None and retry_after > _MAX_CLIENT_RETRY_WAIT:
            response.headers["Retry-After"] = str(int(_MAX_CLIENT_RETRY_WAIT))
        return response


class ReplicateVideoProvider:
    name = "replicate"

    def __init__(
        self,
        api_token: str | None = None,
        base_url: str | None = None,
        default_model: str = VEO_31,
        timeout: float = 30.0,
        max_workers: int = 16,
        fetch_rules: fetch.FetchRules | None = None,
        webhook: str | None = None,
    ) -> None:
        self._webhook = webhook  # the operator's receiver URL: webhooks on (see webhooks/)
        # Resolved once here (same variables the client reads) so downloads and redaction
        # use exactly the token the client sends.
        self._token = api_token or os.environ.get("REPLICATE_API_TOKEN") or None
        self._base_url = base_url or os.environ.get("REPLICATE_BASE_URL") or DEFAULT_BASE_URL
        self.default_model = default_model
        # Outputs come from Replicate's delivery hosts, or from the API's own origin.
        rules = fetch_rules or fetch.FetchRules()
        api = fetch.origin_of(self._base_url)
        self.fetch_rules = dataclasses.replace(
            rules, origins=(*rules.origins, *([api] if api else []))
        )
        timeouts = httpx.Timeout(timeout)
        self._client = replicate.Client(
            api_token=self._token,
            base_url=self._base_url,
            timeout=timeouts,
            transport=_ClientTransport(timeouts),
        )
        self._http = httpx.Client(timeout=timeouts, follow_redirects=False)  # fetch checks each hop
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="replicate")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._http.close()

    # ------------------------------------------------------------------ VideoProvider

    async def start(self, request: VideoRequest) -> str:
        model, version = self.model_ref(request)
        payload = self.build_input(request, model)
        hook: dict[str, Any] = {}
        if self._webhook:  # Replicate calls back once, when the prediction is done
            hook = {"webhook": self._webhook, "webhook_events_filter": ["completed"]}
        if version:
            create = functools.partial(
                self._client.predictions.create, version=version, input=payload, **hook
            )
        else:
            create = functools.partial(
                self._client.predictions.create, model=model, input=payload, **hook
            )
        prediction = await self._run(create)
        log.debug("replicate prediction %s created for %s", prediction.id, model)
        return str(prediction.id)

    async def poll(self, job_id: str, request: VideoRequest) -> JobState:
        with errors.lost_if_not_found(f"replicate prediction {job_id}"):
            data = await self._run(self._get_prediction, job_id)
        return self.job_state(job_id, data)

    async def find_job(
        self, request: VideoRequest, since: datetime, exclude: frozenset[str]
    ) -> str | None:
        """Search the account's predictions (newest first) for one this request created:
        same model (or version) and exactly the same input, created after `since`."""
        model, version = self.model_ref(request)
        payload = self.build_input(request, model)
        return await self._run(self._find, model, version, payload, since, exclude)

    async def fetch(self, job_id: str, state: JobState, request: VideoRequest, dest: Path) -> None:
        if state.status == JobStatus.SUCCEEDED and not state.output_url:
            state = await self.poll(job_id, request)  # a state rebuilt without the URL
        if state.status != JobStatus.SUCCEEDED or not state.output_url:
            raise ProviderError("NotReady", f"job {job_id} is {state.status}", retryable=True)
        await self._run(self._download, job_id, state.output_url, Path(dest))

    async def cancel(self, job_id: str) -> bool:
        """POST /v1/predictions/{id}/cancel. Canceling a prediction that has ended
        changes nothing (Replicate answers with it as it is)."""
        with errors.lost_if_not_found(f"replicate prediction {job_id}"):
            await self._run(self._client.predictions.cancel, job_id)
        log.debug("replicate prediction %s canceled", job_id)
        return True

    def webhook_secret(self) -> str:
        """The account's webhook signing secret (`whsec_...`), blocking: callers run it
        in a thread. Never log it."""
        return str(self._client.webhooks.default.secret().key)

    # ------------------------------------------------------------------ mapping

    def model_ref(self, request: VideoRequest) -> tuple[str, str | None]:
        """(owner/name, version id or None) from `owner/name[:version]`."""
        model, _, version = (request.model or self.default_model).partition(":")
        return model, version or None

    @staticmethod
    def build_input(request: VideoRequest, model: str) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "prompt": request.prompt,
            "duration": request.duration_seconds,
            "aspect_ratio": request.aspect_ratio,
        }
        if request.negative_prompt is not None:
            payload["negative_prompt"] = request.negative_prompt
        if request.seed is not None:
            payload["seed"] = request.seed
        if model == VEO_31:
            payload.update(VEO_31_DEFAULTS)
        payload.update(request.params)  # explicit params win over everything
        return payload

    @staticmethod
    def job_state(job_id: str, data: dict[str, Any]) -> JobState:
        status = data.get("status")
        if status in _RUNNING:
            return JobState(status=JobStatus.RUNNING)
        if status == "succeeded":
            url = _first_output(data.get("output"))
            if url is None:
                error = ProviderError(
                    "NoOutput", f"prediction {job_id} has no output", retryable=True
                )
                return JobState(status=JobStatus.FAILED, error=error)
            return JobState(status=JobStatus.SUCCEEDED, output_url=url, ran_seconds=_ran(data))
        if status in ("failed", "canceled", "aborted"):
            return JobState(status=JobStatus.FAILED, error=_failure(status, data.get("error")))
        # A status this code does not know yet: keep observing; predictions time out anyway.
        log.warning("replicate prediction %s has unknown status %r", job_id, status)
        return JobState(status=JobStatus.RUNNING)

    # ------------------------------------------------------------------ worker-thread code

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(self._call, fn, *args))

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn` and turn every client/transport failure into a ProviderError."""
        _last_response.retry_after = None
        try:
            return fn(*args)
        except ProviderError:
            raise
        except ReplicateError as exc:
            message = exc.detail or exc.title or f"HTTP {exc.status}"
            retry_after = getattr(_last_response, "retry_after", None)
            raise errors.classify_status(exc.status, self._redact(message), retry_after) from exc
        except httpx.TimeoutException as exc:
            raise errors.connection_error(self._redact(f"timed out: {exc}")) from exc
        except httpx.TransportError as exc:
            raise errors.transport_error(exc, self._redact) from exc
        except _VALIDATION_ERRORS as exc:
            message = self._redact(f"unexpected response from Replicate: {exc}")
            raise ProviderError("InvalidResponse", message, retryable=True) from exc

    def _get_prediction(self, job_id: str) -> dict[str, Any]:
        try:
            prediction = self._client.predictions.get(job_id)
        except _VALIDATION_ERRORS:
            # e.g. status "aborted", which replicate 1.0.7's model rejects: read the raw JSON.
            response = self._client._request("GET", f"/v1/predictions/{job_id}")
            data = response.json()
            return data if isinstance(data, dict) else {}
        return {
            "status": prediction.status,
            "output": prediction.output,
            "error": prediction.error,
            "created_at": prediction.created_at,
            "completed_at": prediction.completed_at,
        }

    def _find(
        self,
        model: str,
        version: str | None,
        payload: dict[str, Any],
        since: datetime,
        exclude: frozenset[str],
    ) -> str | None:
        # Raw JSON, not predictions.list(): one "aborted" prediction would fail the
        # client's model for the whole page.
        cursor, found = "/v1/predictions", None
        for _ in range(FIND_MAX_PAGES):
            page = self._client._request("GET", cursor).json()
            older, passed = match_prediction(
                page.get("results") or [],
                model,
                version,
                payload,
                since,
                exclude,
            )
            found = older or found  # pages go back in time: keep the oldest match
            if passed or not page.get("next"):
                return found
            cursor = page["next"]
        log.warning("stopped searching predictions after %d pages", FIND_MAX_PAGES)
        return found

    def _download(self, job_id: str, url: str, dest: Path) -> None:
        headers = {"Authorization": f"Bearer {self._token}"}
        fetch.download(
            self._http,
            url,
            dest,
            self.fetch_rules,
            headers_for=lambda hop: headers if self._sends_token(hop) else {},
            what=f"output of replicate prediction {job_id}",
        )

    def _sends_token(self, url: str) -> bool:
        """The token goes to the API's origin and Replicate's own hosts, nowhere else."""
        if not self._token:
            return False
        target, api = urlsplit(url), urlsplit(self._base_url)
        host = (target.hostname or "").lower()
        same_origin = (target.scheme, target.netloc) == (api.scheme, api.netloc)
        return same_origin or (target.scheme == "https" and host.endswith(_TOKEN_HOST_SUFFIXES))

    def _redact(self, text: str) -> str:
        return errors.redact(text, self._token)


def match_prediction(
    predictions: list[dict[str, Any]],
    model: str,
    version: str | None,
    payload: dict[str, Any],
    since: datetime,
    exclude: frozenset[str],
) -> tuple[str | None, bool]:
    """(the oldest prediction of `predictions` (newest first, as listed) that this
    request created at or after `since`, or None; whether the list reached back before
    `since`, so older pages need not be read)."""
    wanted = json.loads(json.dumps(payload))  # compare as the API echoes it back
    found: str | None = None
    for p in predictions:
        created = _parse_time(p.get("created_at"))
        if created is not None and created < since:
            return found, True
        same_model = p.get("version") == version if version else p.get("model") == model
        pid = str(p.get("id") or "")
        if pid and pid not in exclude and same_model and p.get("input") == wanted:
            found = pid  # keep going: the oldest match is the first create after `since`
    return found, False


def _parse_time(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _ran(data: dict[str, Any]) -> float | None:
    """Seconds from created to completed, on Replicate's clock (queueing included: the
    wait the operator sees too)."""
    created, completed = _parse_time(data.get("created_at")), _parse_time(data.get("completed_at"))
    if created is None or completed is None or completed < created:
        return None
    return (completed - created).total_seconds()


def _first_output(output: Any) -> str | None:
    """Video models answer one URL; some answer a list of them."""
    if isinstance(output, list):
        output = output[0] if output else None
    return output if isinstance(output, str) and output else None


def _failure(status: str, error: Any) -> ProviderError:
    text = str(error) if error else f"prediction {status}"
    if status == "aborted":
        return ProviderError("Aborted", text, retryable=True)
    if status == "canceled":
        return errors.canceled(text)
    return errors.job_failure("GenerationFailed", text)  # retried unless known permanent
