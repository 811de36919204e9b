"""With webhooks on, a job this process started is read only after its webhook or when the
safety-net poll is due; a job it did not start is read at first sight. The provider is a
fake of the operator's own VideoProvider interface that counts reads."""

from __future__ import annotations

import asyncio

from controller.api.request import VideoRequest
from controller.providers.base import JobState, JobStatus
from controller.settings import Settings
from controller.webhooks import gated
from controller.webhooks.gate import PushedJobs
from controller.webhooks.mapping import JobIndex, Waker
from controller.webhooks.verify import Outcome

REQUEST = VideoRequest(prompt="p", duration_seconds=4, aspect_ratio="16:9")


class FakeProvider:
    name = "replicate"
    default_model = "m"

    def __init__(self) -> None:
        self.reads: list[str] = []
        self.status = JobStatus.RUNNING
        self.started = 0

    async def start(self, request: VideoRequest) -> str:
        self.started += 1
        return f"job-{self.started}"

    async def poll(self, job_id: str, request: VideoRequest) -> JobState:
        self.reads.append(job_id)
        return JobState(status=self.status)

    async def find_job(self, *args: object) -> str | None:
        return "found"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_reads_only_after_a_webhook_or_when_the_safety_net_is_due() -> None:
    inner, clock = FakeProvider(), Clock()
    jobs = PushedJobs(inner, poll_seconds=300, clock=clock)

    async def scenario() -> None:
        job = await jobs.start(REQUEST)
        assert jobs.started_here(job) and not jobs.started_here("older-job")
        for _ in range(3):  # other passes of its Scene: no reads
            assert (await jobs.poll(job, REQUEST)).status == JobStatus.RUNNING
        assert inner.reads == [] and jobs.skipped == 3
        clock.now += 300  # the safety net is due
        assert not jobs.started_here(job)  # long since recorded in status
        await jobs.poll(job, REQUEST)
        assert inner.reads == [job]
        await jobs.poll(job, REQUEST)  # still running: not due again for 300 s
        assert inner.reads == [job]
        jobs.completed(job)  # a verified webhook
        inner.status = JobStatus.SUCCEEDED
        assert (await jobs.poll(job, REQUEST)).status == JobStatus.SUCCEEDED
        assert (await jobs.poll(job, REQUEST)).status == JobStatus.SUCCEEDED  # read again
        assert inner.reads == [job, job, job]
        # A webhook that arrives while a read is under way is not swallowed by its answer.
        inner.status = JobStatus.RUNNING
        job2 = await jobs.start(REQUEST)
        jobs.completed(job2)
        slow = asyncio.Event()
        original = inner.poll

        async def slow_poll(job_id: str, request: VideoRequest) -> JobState:
            await slow.wait()
            return await original(job_id, request)

        inner.poll = slow_poll  # type: ignore[method-assign]
        reading = asyncio.create_task(jobs.poll(job2, REQUEST))
        await asyncio.sleep(0)
        jobs.completed(job2)  # arrives during the read, which answers "running"
        slow.set()
        await reading
        inner.poll = original  # type: ignore[method-assign]
        before = len(inner.reads)
        await jobs.poll(job2, REQUEST)
        assert len(inner.reads) == before + 1
        await jobs.poll(job2, REQUEST)  # and then not again until due
        assert len(inner.reads) == before + 1
        # While a create is unanswered, any job may be the one it made.
        gate = asyncio.Event()
        plain_start = inner.start

        async def slow_start(request: VideoRequest) -> str:
            await gate.wait()
            return await plain_start(request)

        inner.start = slow_start  # type: ignore[method-assign]
        creating = asyncio.create_task(jobs.start(REQUEST))
        await asyncio.sleep(0)
        assert jobs.started_here("anything")
        gate.set()
        new_job = await creating
        assert jobs.started_here(new_job) and not jobs.started_here("anything")
        # A job recorded before a restart (not started here) is read at first sight.
        await jobs.poll("older-job", REQUEST)
        assert inner.reads[-1] == "older-job"
        assert await jobs.find_job(REQUEST) == "found"  # the rest is the provider's
        assert (jobs.name, jobs.default_model) == ("replicate", "m")

    asyncio.run(scenario())


def test_the_leader_guard_wraps_the_providers_threads_through_the_gate() -> None:
    """GuardedProviders swaps the Replicate provider's pool for a leader-checking one;
    with webhooks on, it does so through the gate, which must pass it on."""
    from controller.kube.client import NotLeaderError
    from controller.leaderelection.guard import GuardedProviders, ThreadGuard

    leading = [True]
    settings = Settings(webhook_url="https://h.example.com")
    providers = GuardedProviders(settings, lambda: leading[0])
    guarded = providers.video("replicate")
    gate = guarded._inner
    assert isinstance(gate, PushedJobs)
    assert isinstance(gate.inner._executor, ThreadGuard)  # on the real provider
    assert "_executor" not in vars(gate)
    leading[0] = False
    try:
        guarded.completed("job")
    except NotLeaderError:
        pass
    else:
        raise AssertionError("a standby's gate must not be touched")
    gate.inner.close()


def test_the_gate_is_only_there_while_webhooks_are_on() -> None:
    inner = FakeProvider()
    assert gated(inner, Settings()) is inner
    on = gated(inner, Settings(webhook_url="https://h.example.com", webhook_poll_seconds=60))
    assert isinstance(on, PushedJobs) and on.poll_seconds == 60


def test_a_completion_wakes_its_scene_or_asks_replicate_to_come_back() -> None:
    inner = FakeProvider()
    jobs = PushedJobs(inner, poll_seconds=300)
    scenes: dict[tuple[str, str], dict[str, object]] = {}
    woken: list[tuple[str, str]] = []
    wake = Waker(JobIndex(lambda: scenes, "replicate"), jobs, woken.append)

    async def scenario() -> None:
        job = await jobs.start(REQUEST)
        # Its id is on its way to status: 503, Replicate retries.
        assert wake(job) == Outcome.PENDING and woken == []
        scenes[("ns", "s1")] = {"status": {"generation": {"provider": "replicate", "jobId": job}}}
        assert wake(job) == Outcome.ACCEPTED and woken == [("ns", "s1")]
        await jobs.poll(job, REQUEST)
        assert inner.reads == [job]  # the woken pass reads at once
        assert wake("someone-elses") == Outcome.UNKNOWN and woken == [("ns", "s1")]

    asyncio.run(scenario())
