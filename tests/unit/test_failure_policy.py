"""Failure policy like a Kubernetes Job's: a failed job is retried up to retry.limit,
except the named permanent failures (safety refusals, input validation, canceled).
Per provider, through the real SDKs against the local protocol servers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from controller.api.request import VideoRequest
from controller.providers import errors
from controller.providers.base import JobState, JobStatus, ProviderError, VideoProvider
from controller.providers.local_video import LocalVideoProvider
from controller.providers.replicate_video import ReplicateVideoProvider
from controller.providers.veo_video import VeoVideoProvider
from tests.support.replicate_server import ReplicateServer
from tests.support.veo_server import VeoServer

CUDA = "CUDA error: an illegal memory access was encountered"
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/src/predict.py", line 88, in predict\n'
    "    video = self.pipe(prompt).frames\n"
    f"RuntimeError: {CUDA}\n"
    "CUDA kernel errors might be asynchronously reported at some other API call."
)
REQUEST = VideoRequest(prompt="A heron lands on a jetty", duration_seconds=4, aspect_ratio="16:9")

RETRIED = [
    pytest.param(CUDA, id="cuda-fault"),
    pytest.param(TRACEBACK, id="cuda-traceback"),
    pytest.param("Prediction failed: the model raised an error", id="unknown-error"),
    pytest.param("worker crashed (OOMKilled)", id="oom"),
    pytest.param("CUDA error: invalid argument", id="cuda-invalid-argument"),
]
PERMANENT = [
    pytest.param("The input prompt was flagged as sensitive (E005)", "SafetyBlocked", id="e005"),
    pytest.param("NSFW content detected. Try a different prompt.", "SafetyBlocked", id="nsfw"),
    pytest.param("Output blocked by the safety filter", "SafetyBlocked", id="safety"),
    pytest.param(
        "Prediction input failed validation: duration must be one of 4, 6, 8",
        "InvalidRequest",
        id="input-validation",
    ),
    pytest.param("ValidationError: 1 validation error for Input", "InvalidRequest", id="cog"),
]


@pytest.mark.parametrize("text", RETRIED)
def test_job_failures_are_retried_by_default(text: str) -> None:
    e = errors.job_failure("GenerationFailed", text)
    assert (e.reason, e.retryable) == ("GenerationFailed", True)


@pytest.mark.parametrize(("text", "reason"), PERMANENT)
def test_named_permanent_failures_are_not_retried(text: str, reason: str) -> None:
    e = errors.job_failure("GenerationFailed", text)
    assert (e.reason, e.retryable) == (reason, False)
    assert e.reason in errors.PERMANENT_FAILURES


# ----------------------------------------------------------------------------- replicate


async def failure_of(provider: VideoProvider) -> ProviderError:
    """Start one job and poll it to its end, which must be a failure."""
    job_id = await provider.start(REQUEST)
    deadline = time.monotonic() + 5
    while (state := await provider.poll(job_id, REQUEST)).status == JobStatus.RUNNING:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert state.status == JobStatus.FAILED and state.error is not None
    return state.error


def replicate_outcome(outcome: str) -> ProviderError:
    with ReplicateServer(latency_seconds=0.1) as server:
        provider = ReplicateVideoProvider(api_token=server.token, base_url=server.base_url)
        server.prediction_outcomes = [outcome]
        try:
            return asyncio.run(failure_of(provider))
        finally:
            provider.close()


@pytest.mark.parametrize("text", RETRIED)
def test_replicate_failed_predictions_are_retried(text: str) -> None:
    e = replicate_outcome(f"failed:{text}")
    assert (e.reason, e.retryable, e.message) == ("GenerationFailed", True, text)


@pytest.mark.parametrize(("text", "reason"), PERMANENT)
def test_replicate_permanent_failures(text: str, reason: str) -> None:
    e = replicate_outcome(f"failed:{text}")
    assert (e.reason, e.retryable) == (reason, False)


@pytest.mark.parametrize(
    ("outcome", "reason", "retryable"),
    [("canceled", "Canceled", False), ("aborted", "Aborted", True)],
)
def test_replicate_canceled_is_permanent_aborted_is_retried(
    outcome: str, reason: str, retryable: bool
) -> None:
    e = replicate_outcome(outcome)
    assert (e.reason, e.retryable) == (reason, retryable)


# ----------------------------------------------------------------------------- veo


def veo_outcome(outcome: str) -> ProviderError:
    with VeoServer(latency_seconds=0.1) as server:
        server.outcomes = [outcome]

        async def scenario() -> ProviderError:
            provider = VeoVideoProvider(api_key=server.api_key, base_url=server.base_url)
            try:
                return await failure_of(provider)
            finally:
                await provider.aclose()

        return asyncio.run(scenario())


@pytest.mark.parametrize(
    ("outcome", "reason", "retryable"),
    [
        pytest.param(f"failed:13:{CUDA}", "ProviderUnavailable", True, id="internal-cuda"),
        pytest.param("failed:2", "ProviderUnavailable", True, id="unknown"),
        pytest.param("failed:4", "ProviderUnavailable", True, id="deadline-exceeded"),
        pytest.param("failed:8", "RateLimited", True, id="resource-exhausted"),
        pytest.param("failed:14", "ProviderUnavailable", True, id="unavailable"),
        pytest.param("failed:3:duration must be 4, 6 or 8", "InvalidRequest", False, id="invalid"),
        pytest.param("failed:9", "InvalidRequest", False, id="failed-precondition"),
        pytest.param("failed:11", "InvalidRequest", False, id="out-of-range"),
        pytest.param("failed:1", "Canceled", False, id="canceled"),
        pytest.param(
            "failed:13:Video blocked: it violates Vertex AI's usage guidelines",
            "SafetyBlocked",
            False,
            id="usage-guidelines",
        ),
        pytest.param("filtered", "SafetyBlocked", False, id="rai-filtered"),
    ],
)
def test_veo_failed_operations(outcome: str, reason: str, retryable: bool) -> None:
    e = veo_outcome(outcome)
    assert (e.reason, e.retryable) == (reason, retryable)


# ----------------------------------------------------------------------------- local


def test_local_render_fault_is_retried_invalid_input_is_not(tmp_path: Path) -> None:
    provider = LocalVideoProvider()
    job_id = asyncio.run(provider.start(REQUEST))
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(ProviderError) as fault:
        asyncio.run(
            provider.fetch(job_id, JobState(JobStatus.SUCCEEDED), REQUEST, blocker / "c.mp4")
        )
    assert (fault.value.reason, fault.value.retryable) == ("RenderFailed", True)
    bad = VideoRequest(prompt="p", duration_seconds=4, aspect_ratio="21:1")
    with pytest.raises(ProviderError) as refused:
        asyncio.run(provider.start(bad))
    assert (refused.value.reason, refused.value.retryable) == ("InvalidRequest", False)
