"""The Veo provider, driving the real google-genai client (Vertex mode) against a local server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from controller.api.request import VideoRequest
from controller.providers.base import (
    JobLostError,
    JobState,
    JobStatus,
    ProviderError,
    VideoProvider,
)
from controller.providers.veo_video import VeoVideoProvider
from tests.support.veo_server import RAI_REASON, VeoServer

T = TypeVar("T")

VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40
REQUEST = VideoRequest(
    prompt="A lighthouse at dusk, waves crashing",
    duration_seconds=8,
    aspect_ratio="16:9",
    negative_prompt="text, watermark",
    params={"resolution": "720p", "generate_audio": True},
)
MODEL_PATH = "/v1beta1/publishers/google/models/veo-3.1-generate-001:predictLongRunning"


@pytest.fixture
def server() -> Iterator[VeoServer]:
    with VeoServer(latency_seconds=0.2, video_bytes=VIDEO) as srv:
        yield srv


def with_provider(server: VeoServer, use: Callable[[VeoVideoProvider], Awaitable[T]], **kw) -> T:
    """Run `use(provider)` in a fresh event loop and close the SDK's sessions afterwards."""

    async def main() -> T:
        provider = VeoVideoProvider(
            **{"api_key": server.api_key, "base_url": server.base_url, **kw}
        )
        try:
            return await use(provider)
        finally:
            await provider.aclose()

    return asyncio.run(main())


async def until_done(provider: VideoProvider, job_id: str, request: VideoRequest) -> JobState:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        state = await provider.poll(job_id, request)
        if state.status != JobStatus.RUNNING:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"{job_id} still running")


async def run_to_end(provider: VeoVideoProvider) -> JobState:
    return await until_done(provider, await provider.start(REQUEST), REQUEST)


def start_error(server: VeoServer, request: VideoRequest = REQUEST, **kw) -> ProviderError:
    async def use(provider: VeoVideoProvider) -> ProviderError:
        with pytest.raises(ProviderError) as info:
            await provider.start(request)
        return info.value

    return with_provider(server, use, **kw)


def test_happy_path_start_poll_fetch(server: VeoServer, tmp_path: Path):
    async def use(provider: VeoVideoProvider) -> tuple[str, JobState, JobState]:
        job_id = await provider.start(REQUEST)
        running = await provider.poll(job_id, REQUEST)
        done = await until_done(provider, job_id, REQUEST)
        await provider.fetch(job_id, done, REQUEST, tmp_path / "clip.mp4")
        return job_id, running, done

    job_id, running, done = with_provider(server, use)
    assert running == JobState(status=JobStatus.RUNNING)
    assert done.status == JobStatus.SUCCEEDED and done.output_bytes == VIDEO
    assert (tmp_path / "clip.mp4").read_bytes() == VIDEO
    [created] = server.created
    assert created["name"] == job_id and created["model"] == "veo-3.1-generate-001"
    assert created["instances"] == [{"prompt": REQUEST.prompt}]
    assert created["parameters"] == {
        "sampleCount": 1,
        "durationSeconds": 8,
        "aspectRatio": "16:9",
        "negativePrompt": "text, watermark",
        "resolution": "720p",
        "generateAudio": True,
    }
    # The paths google-genai 3.x sends in Vertex express mode.
    resource = job_id.rpartition("/operations/")[0]
    assert [(route, path) for route, _, path in server.requests[:2]] == [
        ("create", MODEL_PATH),
        ("poll", f"/v1beta1/{resource}:fetchPredictOperation"),
    ]


def test_unknown_params_are_ignored_and_invalid_ones_are_permanent(server: VeoServer):
    request = VideoRequest(
        prompt="p",
        duration_seconds=4,
        aspect_ratio="9:16",
        seed=5,
        model="veo-3.1-fast-generate-001",
        params={"cfg_scale": 2, "enhance_prompt": False},
    )
    with_provider(server, lambda p: p.start(request))
    assert server.created[0]["model"] == "veo-3.1-fast-generate-001"
    assert server.created[0]["parameters"] == {
        "sampleCount": 1,
        "durationSeconds": 4,
        "aspectRatio": "9:16",
        "seed": 5,
        "enhancePrompt": False,
    }
    bad = VideoRequest(prompt="p", duration_seconds=4, aspect_ratio="9:16", params={"fps": "fast"})
    err = start_error(server, bad)
    assert (err.reason, err.retryable) == ("InvalidRequest", False)
    assert server.count("create") == 1  # refused before any request


def test_create_429_is_retryable_rate_limit_and_creates_nothing(server: VeoServer):
    server.fail_next_creates = [429]
    err = start_error(server)
    assert (err.reason, err.retryable, err.status_code) == ("RateLimited", True, 429)
    assert err.retry_after == 1.0
    assert server.count("create") == 1 and server.created == []


def test_create_500_is_retryable(server: VeoServer):
    server.fail_next_creates = [500]
    err = start_error(server)
    assert (err.reason, err.retryable, err.status_code) == ("ProviderUnavailable", True, 500)
    assert server.count("create") == 1  # the SDK does not retry on its own


def test_create_400_is_permanent_and_keeps_the_message(server: VeoServer):
    server.fail_next_creates = [(400, "durationSeconds must be 4, 6 or 8")]
    err = start_error(server)
    assert (err.reason, err.retryable, err.status_code) == ("InvalidRequest", False, 400)
    assert err.message == "durationSeconds must be 4, 6 or 8"


def test_wrong_key_is_permanent_unauthorized(server: VeoServer):
    err = start_error(server, api_key="AIza-wrong")
    assert (err.reason, err.retryable, err.status_code) == ("Unauthorized", False, 401)


@pytest.mark.parametrize(
    ("outcome", "reason", "retryable"),
    [
        ("failed", "InvalidRequest", False),  # INVALID_ARGUMENT
        ("failed:8:Quota exceeded for veo", "RateLimited", True),  # RESOURCE_EXHAUSTED
        ("failed:13", "ProviderUnavailable", True),  # INTERNAL
    ],
)
def test_failed_operation_is_classified_by_its_code(
    server: VeoServer, outcome: str, reason: str, retryable: bool
):
    server.outcomes = [outcome]
    state = with_provider(server, run_to_end)
    assert state.status == JobStatus.FAILED and state.error is not None
    assert (state.error.reason, state.error.retryable) == (reason, retryable)
    if outcome.count(":") == 2:
        assert state.error.message == "Quota exceeded for veo"


def test_rai_filtered_is_a_permanent_safety_block(server: VeoServer):
    server.outcomes = ["filtered"]
    state = with_provider(server, run_to_end)
    assert state.status == JobStatus.FAILED and state.error is not None
    assert (state.error.reason, state.error.retryable) == ("SafetyBlocked", False)
    assert state.error.message == RAI_REASON


def test_gcs_only_output_cannot_be_fetched(server: VeoServer, tmp_path: Path):
    server.outcomes = ["gcs"]

    async def use(provider: VeoVideoProvider) -> tuple[JobState, ProviderError]:
        job_id = await provider.start(REQUEST)
        done = await until_done(provider, job_id, REQUEST)
        with pytest.raises(ProviderError) as info:
            await provider.fetch(job_id, done, REQUEST, tmp_path / "clip.mp4")
        return done, info.value

    done, err = with_provider(server, use)
    assert done.status == JobStatus.SUCCEEDED and done.output_url
    assert done.output_url.startswith("gs://")
    assert (err.reason, err.retryable) == ("UnsupportedOutput", False)
    assert list(tmp_path.iterdir()) == []


def test_fetch_without_bytes_polls_again(server: VeoServer, tmp_path: Path):
    async def use(provider: VeoVideoProvider) -> None:
        job_id = await provider.start(REQUEST)
        await until_done(provider, job_id, REQUEST)
        await provider.fetch(job_id, JobState(JobStatus.SUCCEEDED), REQUEST, tmp_path / "c.mp4")

    with_provider(server, use)
    assert (tmp_path / "c.mp4").read_bytes() == VIDEO


def test_forgotten_operation_raises_job_lost(server: VeoServer):
    async def use(provider: VeoVideoProvider) -> JobLostError:
        job_id = await provider.start(REQUEST)
        server.forget(job_id)
        with pytest.raises(JobLostError) as info:
            await provider.poll(job_id, REQUEST)
        return info.value

    err = with_provider(server, use)
    assert err.retryable and err.status_code == 404


def test_poll_server_error_is_retryable(server: VeoServer):
    async def use(provider: VeoVideoProvider) -> ProviderError:
        job_id = await provider.start(REQUEST)
        server.fail_next_polls = [503]
        with pytest.raises(ProviderError) as info:
            await provider.poll(job_id, REQUEST)
        return info.value

    err = with_provider(server, use)
    assert (err.reason, err.retryable, err.status_code) == ("ProviderUnavailable", True, 503)


def test_dropped_connection_is_retryable_and_not_resent(server: VeoServer):
    server.drop_connections_next = 1
    started = time.monotonic()
    err = start_error(server)
    assert (err.reason, err.retryable, err.status_code) == ("ConnectionError", True, None)
    # Left alone, the SDK would re-send the create 1-10 s later (a possible duplicate job).
    assert time.monotonic() - started < 1
    assert server.count("create") == 1 and server.created == []


def test_timeout_is_a_retryable_connection_error(server: VeoServer):
    server.hang_seconds = 0.6
    err = start_error(server, timeout=0.3)
    assert (err.reason, err.retryable) == ("ConnectionError", True)
    assert "timed out" in err.message


def test_api_key_never_appears_in_errors(server: VeoServer):
    server.fail_next_creates = [(400, f"API key {server.api_key} not valid"), 429, 500]
    raised = [start_error(server) for _ in range(3)]
    server.drop_connections_next = 1
    raised.append(start_error(server))
    for err in raised:
        for text in (str(err), repr(err), err.message):
            assert server.api_key not in text
    assert "***" in raised[0].message


def test_builds_from_the_environment(server: VeoServer, monkeypatch: pytest.MonkeyPatch):
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)

    async def main() -> str:
        provider = VeoVideoProvider()
        assert (provider.name, provider.default_model) == ("veo", "veo-3.1-generate-001")
        try:
            return await provider.start(REQUEST)
        finally:
            await provider.aclose()

    assert asyncio.run(main()) == server.created[0]["name"]


def test_missing_key_is_a_permanent_error(monkeypatch: pytest.MonkeyPatch):
    for key in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_VERTEX_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ProviderError) as info:
        VeoVideoProvider()
    assert (info.value.reason, info.value.retryable) == ("Unauthorized", False)
