"""The Replicate provider, driving the real replicate client against a local protocol server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.api.request import VideoRequest
from controller.providers.base import (
    JobLostError,
    JobState,
    JobStatus,
    ProviderError,
    VideoProvider,
)
from controller.providers.replicate_video import ReplicateVideoProvider, match_prediction
from tests.support.replicate_server import ReplicateServer

VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40
REQUEST = VideoRequest(
    prompt="A lighthouse at dusk, waves crashing",
    duration_seconds=8,
    aspect_ratio="16:9",
    negative_prompt="text, watermark",
)


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def server() -> Iterator[ReplicateServer]:
    with ReplicateServer(latency_seconds=0.2, video_bytes=VIDEO) as srv:
        yield srv


@pytest.fixture
def provider(server: ReplicateServer) -> Iterator[ReplicateVideoProvider]:
    p = ReplicateVideoProvider(api_token=server.token, base_url=server.base_url, timeout=5)
    yield p
    p.close()


async def until_done(provider: VideoProvider, job_id: str, request: VideoRequest) -> JobState:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        state = await provider.poll(job_id, request)
        if state.status != JobStatus.RUNNING:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"{job_id} still running")


def start_error(provider: ReplicateVideoProvider, request: VideoRequest = REQUEST) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        run(provider.start(request))
    return info.value


def test_happy_path_start_poll_fetch(
    server: ReplicateServer, provider: ReplicateVideoProvider, tmp_path: Path
):
    async def scenario() -> tuple[str, JobState, JobState]:
        job_id = await provider.start(REQUEST)
        running = await provider.poll(job_id, REQUEST)
        done = await until_done(provider, job_id, REQUEST)
        await provider.fetch(job_id, done, REQUEST, tmp_path / "clip.mp4")
        return job_id, running, done

    job_id, running, done = run(scenario())
    assert running == JobState(status=JobStatus.RUNNING)
    assert done.status == JobStatus.SUCCEEDED and done.error is None
    assert done.ran_seconds == pytest.approx(0.2, abs=0.01)  # created to completed
    assert done.output_url == f"{server.base_url}/files/{job_id}.mp4"
    assert (tmp_path / "clip.mp4").read_bytes() == VIDEO
    assert not list(tmp_path.glob("*.part"))
    [created] = server.created
    assert created["id"] == job_id and created["model"] == "google/veo-3.1"
    assert created["input"] == {
        "prompt": REQUEST.prompt,
        "duration": 8,
        "aspect_ratio": "16:9",
        "negative_prompt": "text, watermark",
        "resolution": "720p",
        "generate_audio": True,
    }
    assert server.count("create") == 1 and server.count("file") == 1


def test_params_override_defaults_and_other_models_get_none(
    server: ReplicateServer, provider: ReplicateVideoProvider
):
    veo = VideoRequest(
        prompt="p",
        duration_seconds=4,
        aspect_ratio="9:16",
        seed=7,
        params={"generate_audio": False, "resolution": "1080p"},
    )
    kling = VideoRequest(
        prompt="q",
        duration_seconds=5,
        aspect_ratio="1:1",
        model="kwaivgi/kling-v2.0",
        params={"cfg_scale": 0.5},
    )
    run(provider.start(veo))
    run(provider.start(kling))
    assert server.created[0]["input"] == {
        "prompt": "p",
        "duration": 4,
        "aspect_ratio": "9:16",
        "seed": 7,
        "resolution": "1080p",
        "generate_audio": False,
    }
    # No negative_prompt when None, no veo defaults for another model.
    assert server.created[1]["model"] == "kwaivgi/kling-v2.0"
    assert server.created[1]["input"] == {
        "prompt": "q",
        "duration": 5,
        "aspect_ratio": "1:1",
        "cfg_scale": 0.5,
    }


def test_model_with_version_creates_by_version(
    server: ReplicateServer, provider: ReplicateVideoProvider
):
    request = VideoRequest(
        prompt="p", duration_seconds=8, aspect_ratio="16:9", model="google/veo-3.1:abc123"
    )
    job_id = run(provider.start(request))
    assert server.count("create_version") == 1 and server.count("create") == 0
    assert server.created[0]["id"] == job_id and server.created[0]["version"] == "abc123"
    assert server.created[0]["input"]["resolution"] == "720p"  # still google/veo-3.1


def test_create_429_is_retryable_rate_limit_and_creates_nothing(
    server: ReplicateServer, provider: ReplicateVideoProvider
):
    server.fail_next_creates = [429]
    err = start_error(provider)
    assert (err.reason, err.retryable, err.status_code) == ("RateLimited", True, 429)
    assert err.retry_after == 1.0
    assert "throttled" in err.message
    assert server.count("create") == 1  # POST is never retried by the client
    assert server.created == []


def test_create_500_is_retryable(server: ReplicateServer, provider: ReplicateVideoProvider):
    server.fail_next_creates = [500]
    err = start_error(provider)
    assert (err.reason, err.retryable, err.status_code) == ("ProviderUnavailable", True, 500)
    assert server.created == []


def test_create_400_is_permanent_and_keeps_the_message(
    server: ReplicateServer, provider: ReplicateVideoProvider
):
    server.fail_next_creates = [(400, "duration must be one of 4, 6, 8")]
    err = start_error(provider)
    assert (err.reason, err.retryable, err.status_code) == ("InvalidRequest", False, 400)
    assert err.message == "duration must be one of 4, 6, 8"
    assert server.created == []


def test_wrong_token_is_permanent_unauthorized(server: ReplicateServer):
    provider = ReplicateVideoProvider(api_token="r8_wrong", base_url=server.base_url)
    err = start_error(provider)
    assert (err.reason, err.retryable, err.status_code) == ("Unauthorized", False, 401)


def test_failed_prediction_is_permanent_with_the_error_text(
    server: ReplicateServer, provider: ReplicateVideoProvider
):
    server.prediction_outcomes = ["failed:The input prompt was flagged as sensitive (E005)"]

    async def scenario() -> JobState:
        return await until_done(provider, await provider.start(REQUEST), REQUEST)

    state = run(scenario())
    assert state.status == JobStatus.FAILED and state.error is not None
    assert (state.error.reason, state.error.retryable) == ("SafetyBlocked", False)
    assert state.error.message == "The input prompt was flagged as sensitive (E005)"


def test_failed_prediction_with_transient_text_is_retryable(
    server: ReplicateServer, provider: ReplicateVideoProvider
):
    server.prediction_outcomes = ["failed:Prediction timed out waiting for the model"]

    async def scenario() -> JobState:
        return await until_done(provider, await provider.start(REQUEST), REQUEST)

    state = run(scenario())
    assert state.error is not None
    assert (state.error.reason, state.error.retryable) == ("GenerationFailed", True)


def test_aborted_prediction_is_handled_despite_the_client(
    server: ReplicateServer, provider: ReplicateVideoProvider
):
    # replicate 1.0.7's Prediction model rejects "aborted"; the provider reads the raw JSON.
    server.prediction_outcomes = ["aborted"]

    async def scenario() -> JobState:
        return await until_done(provider, await provider.start(REQUEST), REQUEST)

    state = run(scenario())
    assert state.status == JobStatus.FAILED and state.error is not None
    assert (state.error.reason, state.error.retryable) == ("Aborted", True)


def test_canceled_prediction_fails_permanently(
    server: ReplicateServer, provider: ReplicateVideoProvider
):
    server.prediction_outcomes = ["canceled"]

    async def scenario() -> JobState:
        return await until_done(provider, await provider.start(REQUEST), REQUEST)

    state = run(scenario())
    assert state.error is not None
    assert (state.error.reason, state.error.retryable) == ("Canceled", False)


def test_forgotten_prediction_raises_job_lost(
    server: ReplicateServer, provider: ReplicateVideoProvider, tmp_path: Path
):
    async def scenario() -> None:
        job_id = await provider.start(REQUEST)
        done = await until_done(provider, job_id, REQUEST)
        server.forget(job_id)
        with pytest.raises(JobLostError):
            await provider.fetch(job_id, done, REQUEST, tmp_path / "clip.mp4")  # output expired
        with pytest.raises(JobLostError) as info:
            await provider.poll(job_id, REQUEST)
        assert info.value.retryable and info.value.status_code == 404

    run(scenario())
    assert not (tmp_path / "clip.mp4").exists()


def test_poll_server_error_is_retryable(server: ReplicateServer, provider: ReplicateVideoProvider):
    job_id = run(provider.start(REQUEST))
    server.fail_next_gets = [500]
    with pytest.raises(ProviderError) as info:
        run(provider.poll(job_id, REQUEST))
    assert (info.value.reason, info.value.retryable) == ("ProviderUnavailable", True)


def test_download_server_error_is_retryable_and_leaves_no_file(
    server: ReplicateServer, provider: ReplicateVideoProvider, tmp_path: Path
):
    async def scenario() -> None:
        job_id = await provider.start(REQUEST)
        done = await until_done(provider, job_id, REQUEST)
        server.fail_next_files = [502]
        with pytest.raises(ProviderError) as info:
            await provider.fetch(job_id, done, REQUEST, tmp_path / "clip.mp4")
        assert (info.value.reason, info.value.retryable) == ("ProviderUnavailable", True)

    run(scenario())
    assert list(tmp_path.iterdir()) == []


def test_fetch_without_url_polls_again(
    server: ReplicateServer, provider: ReplicateVideoProvider, tmp_path: Path
):
    async def scenario() -> None:
        job_id = await provider.start(REQUEST)
        await until_done(provider, job_id, REQUEST)
        # e.g. a state rebuilt from a status that kept only "Succeeded"
        await provider.fetch(job_id, JobState(JobStatus.SUCCEEDED), REQUEST, tmp_path / "c.mp4")

    run(scenario())
    assert (tmp_path / "c.mp4").read_bytes() == VIDEO


def test_output_at_another_origin_is_refused_and_never_fetched(
    server: ReplicateServer, provider: ReplicateVideoProvider, tmp_path: Path
):
    async def scenario() -> ProviderError:
        job_id = await provider.start(REQUEST)
        await until_done(provider, job_id, REQUEST)
        # Same server, other origin ("localhost"): not the API's origin, not https.
        url = f"http://localhost:{server.port}/files/{job_id}.mp4"
        state = JobState(JobStatus.SUCCEEDED, output_url=url)
        with pytest.raises(ProviderError) as info:
            await provider.fetch(job_id, state, REQUEST, tmp_path / "clip.mp4")
        return info.value

    err = run(scenario())
    assert (err.reason, err.retryable) == ("InvalidOutput", False)
    assert "not https" in err.message
    assert server.count("file") == 0 and not (tmp_path / "clip.mp4").exists()


def test_token_goes_to_the_api_origin_and_replicate_hosts_only(
    provider: ReplicateVideoProvider, server: ReplicateServer
):
    assert provider._sends_token(f"{server.base_url}/files/x.mp4")
    assert provider._sends_token("https://pbxt.replicate.delivery/x/out.mp4")
    assert not provider._sends_token(f"http://localhost:{server.port}/files/x.mp4")
    assert not provider._sends_token("https://replicate.delivery.evil.example/x.mp4")
    assert not provider._sends_token("http://pbxt.replicate.delivery/x/out.mp4")


def test_dropped_connection_is_a_retryable_connection_error(
    server: ReplicateServer, provider: ReplicateVideoProvider
):
    server.drop_connections_next = 1
    err = start_error(provider)
    assert (err.reason, err.retryable, err.status_code) == ("ConnectionError", True, None)
    assert server.created == []
    job_id = run(provider.start(REQUEST))  # the next request is answered
    server.drop_connections_next = 1
    with pytest.raises(ProviderError) as info:
        run(provider.poll(job_id, REQUEST))
    assert (info.value.reason, info.value.retryable) == ("ConnectionError", True)


def test_timeout_is_retryable_and_does_not_block_the_loop(server: ReplicateServer):
    provider = ReplicateVideoProvider(api_token=server.token, base_url=server.base_url, timeout=0.3)
    server.hang_seconds = 0.6

    async def scenario() -> tuple[ProviderError, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.02)
                ticks += 1

        task = asyncio.create_task(ticker())
        try:
            with pytest.raises(ProviderError) as info:
                await provider.start(REQUEST)
        finally:
            task.cancel()
        return info.value, ticks

    err, ticks = run(scenario())
    assert (err.reason, err.retryable) == ("ConnectionError", True)
    assert "timed out" in err.message
    assert ticks >= 5  # the loop kept running while the worker thread waited
    provider.close()


def test_token_never_appears_in_errors(server: ReplicateServer, provider: ReplicateVideoProvider):
    # A server that echoes the token back must not get it into messages either.
    server.fail_next_creates = [(400, f"token {server.token} is not allowed here"), 429, 503]
    raised = [start_error(provider) for _ in range(3)]
    server.drop_connections_next = 1
    raised.append(start_error(provider))
    for err in raised:
        for text in (str(err), repr(err), err.message):
            assert server.token not in text
    assert "***" in raised[0].message


def test_builds_from_the_environment(server: ReplicateServer, monkeypatch: pytest.MonkeyPatch):
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    provider = ReplicateVideoProvider(max_workers=2)
    assert (provider.name, provider.default_model) == ("replicate", "google/veo-3.1")
    job_id = run(provider.start(REQUEST))
    assert server.created[0]["id"] == job_id
    provider.close()


# ----------------------------------------------------------------------------- find_job


def test_find_job_returns_the_unrecorded_prediction_of_this_exact_request(
    server: ReplicateServer, provider: ReplicateVideoProvider
) -> None:
    """Through the client's list call, across pages (`next` is a full URL)."""
    server.list_page_size = 2
    other = VideoRequest(prompt="Another scene", duration_seconds=8, aspect_ratio="16:9")
    before = run(provider.start(REQUEST))  # an earlier attempt, before the marker
    time.sleep(0.05)
    since = datetime.now(UTC)
    ours = run(provider.start(REQUEST))
    for _ in range(3):  # newer predictions of other requests push ours to a later page
        run(provider.start(other))
    found = run(provider.find_job(REQUEST, since, frozenset()))
    assert found == ours
    assert server.counts["list"] == 3  # pages [o, o] [o, ours] [before: older than since]
    assert before != ours
    # A job another Scene recorded is never taken, and nothing else matches.
    assert run(provider.find_job(REQUEST, since, frozenset({ours}))) is None


def test_find_job_list_failure_is_a_classified_provider_error(
    server: ReplicateServer, provider: ReplicateVideoProvider
) -> None:
    server.fail_next_gets = [500, 500, 500, 500, 500]  # the client retries GETs itself
    with pytest.raises(ProviderError) as e:
        run(provider.find_job(REQUEST, datetime.now(UTC), frozenset()))
    assert e.value.retryable


def test_match_prediction_oldest_match_model_version_and_input() -> None:
    since = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    payload = {"prompt": "p", "duration": 8}

    def pred(pid: str, seconds: int, **kw: object) -> dict:
        at = (since + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
        return {
            "id": pid,
            "model": "a/b",
            "version": "v1",
            "input": payload,
            "created_at": at,
            **kw,
        }

    page = [
        pred("newest", 30),
        pred("other-input", 20, input={"prompt": "q", "duration": 8}),
        pred("other-model", 15, model="a/c"),
        pred("first", 2),
        pred("skewed", -3),  # our clock may be ahead of the provider's by a few seconds
        pred("old", -60),
        pred("never-read", 10),
    ]
    skewed = since - timedelta(seconds=5)  # the provider's clock may be a bit behind
    assert match_prediction(page, "a/b", None, payload, skewed, frozenset()) == ("skewed", True)
    assert match_prediction(page, "a/b", None, payload, since, frozenset()) == ("first", True)
    assert match_prediction(page, "a/b", None, payload, skewed, frozenset({"skewed"})) == (
        "first",
        True,
    )
    assert match_prediction(page, "x/y", "v1", payload, skewed, frozenset()) == ("skewed", True)
    assert match_prediction(page[:2], "a/b", None, payload, since, frozenset()) == (
        "newest",
        False,
    )


def test_a_succeeded_predictions_run_time_is_from_its_own_times() -> None:
    def ran(**times: str | None) -> float | None:
        data = {"status": "succeeded", "output": "https://x.replicate.delivery/o.mp4", **times}
        return ReplicateVideoProvider.job_state("p1", data).ran_seconds

    created = "2030-01-01T00:00:00.25Z"
    assert ran(created_at=created, completed_at="2030-01-01T00:01:05.75Z") == 65.5
    assert ran(created_at=created, completed_at=None) is None
    assert ran() is None
    assert ran(created_at=created, completed_at="2029-12-31T23:59:59Z") is None  # clock trouble
