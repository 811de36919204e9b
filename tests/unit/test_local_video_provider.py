"""The local provider behaves like a remote one: stable ids, restart-safe, real output."""

from __future__ import annotations

import asyncio
import time

import pytest

from controller.api.request import VideoRequest
from controller.providers.base import (
    JobLostError,
    JobState,
    JobStatus,
    ProviderError,
    VideoProvider,
)
from controller.providers.local_video import LocalVideoProvider
from controller.providers.render import probe_clip

REQUEST = VideoRequest(
    prompt="A glass bottle of cold brew on a marble counter, morning light",
    duration_seconds=2,
    aspect_ratio="9:16",
    sequence=3,
)


class FakeClock:
    """Time the test moves by hand (injected, not patched)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(coro):
    return asyncio.run(coro)


def test_satisfies_the_protocol():
    provider: VideoProvider = LocalVideoProvider()
    assert (provider.name, provider.default_model) == ("local", "local-renderer-v1")


def test_job_id_is_deterministic_and_request_specific():
    a, b = LocalVideoProvider(), LocalVideoProvider(latency_seconds=5)
    job_id = run(a.start(REQUEST))
    assert job_id == run(b.start(REQUEST)) == run(a.start(REQUEST))
    assert job_id.startswith("local-") and len(job_id) == len("local-") + 16
    int(job_id.removeprefix("local-"), 16)
    other = VideoRequest(**{**REQUEST.__dict__, "sequence": 4})
    assert run(a.start(other)) != job_id
    # An unset model means the default one: same job either way.
    explicit = VideoRequest(**{**REQUEST.__dict__, "model": "local-renderer-v1"})
    assert run(a.start(explicit)) == job_id


def test_poll_succeeds_without_latency():
    provider = LocalVideoProvider()
    job_id = run(provider.start(REQUEST))
    assert run(provider.poll(job_id, REQUEST)) == JobState(status=JobStatus.SUCCEEDED)


def test_fetch_writes_a_playable_clip(tmp_path):
    provider = LocalVideoProvider()
    job_id = run(provider.start(REQUEST))
    state = run(provider.poll(job_id, REQUEST))
    dest = tmp_path / "out" / "clip.mp4"
    run(provider.fetch(job_id, state, REQUEST, dest))
    info = probe_clip(dest)
    assert info.codec == "h264"
    assert (info.width, info.height) == (144, 256)
    assert abs(info.duration_seconds - 2) <= 1 / 12


def test_latency_is_respected():
    clock = FakeClock()
    provider = LocalVideoProvider(latency_seconds=10, clock=clock)
    job_id = run(provider.start(REQUEST))
    assert run(provider.poll(job_id, REQUEST)).status == JobStatus.RUNNING
    clock.now += 9.9
    assert run(provider.poll(job_id, REQUEST)).status == JobStatus.RUNNING
    clock.now += 0.1
    assert run(provider.poll(job_id, REQUEST)).status == JobStatus.SUCCEEDED
    clock.now += 100
    assert run(provider.poll(job_id, REQUEST)).status == JobStatus.SUCCEEDED


def test_latency_with_the_real_clock():
    provider = LocalVideoProvider(latency_seconds=0.2)
    job_id = run(provider.start(REQUEST))
    assert run(provider.poll(job_id, REQUEST)).status == JobStatus.RUNNING
    time.sleep(0.25)
    assert run(provider.poll(job_id, REQUEST)).status == JobStatus.SUCCEEDED


def test_a_restarted_process_still_knows_the_job(tmp_path):
    clock = FakeClock()
    before = LocalVideoProvider(latency_seconds=10, clock=clock)
    job_id = run(before.start(REQUEST))
    clock.now += 5

    after = LocalVideoProvider(latency_seconds=10, clock=clock)  # the operator restarted
    assert run(after.poll(job_id, REQUEST)).status == JobStatus.RUNNING  # wait starts anew
    clock.now += 10
    state = run(after.poll(job_id, REQUEST))
    assert state.status == JobStatus.SUCCEEDED
    run(after.fetch(job_id, state, REQUEST, tmp_path / "clip.mp4"))
    assert probe_clip(tmp_path / "clip.mp4").frames == 24

    # Without latency an unseen job is simply done.
    assert run(LocalVideoProvider().poll(job_id, REQUEST)).status == JobStatus.SUCCEEDED


def test_a_job_for_another_request_is_lost():
    provider = LocalVideoProvider()
    job_id = run(provider.start(REQUEST))
    changed = VideoRequest(**{**REQUEST.__dict__, "prompt": "something else"})
    with pytest.raises(JobLostError):
        run(provider.poll(job_id, changed))
    with pytest.raises(JobLostError):
        run(provider.poll("local-0000000000000000", REQUEST))


@pytest.mark.parametrize(
    "bad",
    [{"aspect_ratio": "wide"}, {"aspect_ratio": "21:1"}, {"duration_seconds": 0}],
    ids=["unparsable-ratio", "extreme-ratio", "zero-duration"],
)
def test_invalid_requests_fail_permanently_at_start(bad):
    request = VideoRequest(**{**REQUEST.__dict__, **bad})
    with pytest.raises(ProviderError) as err:
        run(LocalVideoProvider().start(request))
    assert err.value.reason == "InvalidRequest"
    assert err.value.retryable is False


def test_fetch_before_success_is_refused(tmp_path):
    provider = LocalVideoProvider(latency_seconds=60)
    job_id = run(provider.start(REQUEST))
    state = run(provider.poll(job_id, REQUEST))
    with pytest.raises(ProviderError) as err:
        run(provider.fetch(job_id, state, REQUEST, tmp_path / "clip.mp4"))
    assert err.value.retryable
    assert not (tmp_path / "clip.mp4").exists()


def test_rendering_does_not_block_the_event_loop(tmp_path):
    long = VideoRequest(**{**REQUEST.__dict__, "duration_seconds": 30})
    provider = LocalVideoProvider()

    async def scenario() -> int:
        ticks: list[float] = []

        async def ticker() -> None:
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.002)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        job_id = await provider.start(long)
        state = await provider.poll(job_id, long)
        began = time.monotonic()
        await provider.fetch(job_id, state, long, tmp_path / "clip.mp4")
        ended = time.monotonic()
        task.cancel()
        return sum(began < t < ended for t in ticks)

    # A blocking render would let the ticker run at most once while it worked.
    assert run(scenario()) >= 5
