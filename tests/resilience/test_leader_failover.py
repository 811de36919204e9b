"""Two operator processes with leader election; the leader is SIGKILLed, or frozen with
SIGSTOP past its lease and then resumed, in the middle of a run. The standby takes over
within the lease duration plus its retry period (measured and printed), resumes every job
in flight without starting another, and the frozen leader, once resumed, makes no provider
call and no API write: it exits for a restart.

`RESILIENCE_LEASE_SECONDS` (CI 6, full run 15 = the default of the operator) sets the
lease duration; renew deadline and retry period keep client-go's ratios (10/15, 2/15).
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from controller.leaderelection.leadership import EXIT_LOST_LEADERSHIP
from tests.integration.clips import replicate_video
from tests.integration.election import TaggedReplicate, election_env, lease_spec, max_running
from tests.integration.helpers import metric_sum
from tests.resilience.conftest import (
    PROJECTS,
    SCENES,
    all_settled,
    check_all_completed,
    create_projects,
    env_float,
    jobs_by_scene,
    recovered_events,
    snapshot,
    wait_for,
)
from tests.support.apiproxy import RecordingApiProxy

pytestmark = [pytest.mark.resilience, pytest.mark.integration]

LEASE = env_float("RESILIENCE_LEASE_SECONDS", 6.0)
RETRY = LEASE * 2 / 15
LATENCY = 2.0
CONCURRENCY = 4
# Worst case: the standby saw the last renewal up to one (jittered) retry after it, and
# acquires at its first retry after the lease duration; plus the API server's answers.
TAKE_OVER_BOUND = LEASE + 2 * RETRY * 1.2 + 3.0


@pytest.fixture
def provider():
    with TaggedReplicate(["a", "b"], latency_seconds=LATENCY, video_bytes=replicate_video) as rep:
        yield rep


def start_pair(run_operator, namespace: str, rep: TaggedReplicate, kubeconfig_a: str | None = None):
    """Process a (the leader), then process b (the standby)."""
    common = {
        **election_env(namespace, "scene-operator", LEASE),
        "SCENE_OPERATOR_CONCURRENCY_REPLICATE": str(CONCURRENCY),
    }
    a = run_operator(namespace, env={**common, **rep.env_for("a")}, kubeconfig_path=kubeconfig_a)
    wait_for(lambda: metric_sum(a.metrics(), "scene_operator_leader") == 1, 30, what="a leads")
    b = run_operator(namespace, env={**common, **rep.env_for("b")})
    return a, b


def wait_take_over(cluster, namespace: str, old_holder: str, since: float) -> float:
    """Seconds from `since` (monotonic) until the Lease names another holder."""

    def taken() -> bool:
        holder = lease_spec(cluster, namespace, "scene-operator").get("holderIdentity")
        return bool(holder) and holder != old_holder

    wait_for(taken, timeout=TAKE_OVER_BOUND + 30, interval=0.1, what="the standby takes over")
    return time.monotonic() - since


def finish_and_check(cluster, namespace: str, s3, rep: TaggedReplicate, counts, b) -> None:
    """The standby finishes the run: every clip verified, exact counters, one provider job
    per Scene, the provider's concurrency limit kept across the hand-over."""
    names = list(counts)
    wait_for(lambda: all_settled(cluster, namespace, names), 60 + 3 * SCENES, what="all settled")
    time.sleep(1.0)  # a last recount may be on its way
    snap = snapshot(cluster, namespace, names)
    problems = check_all_completed(s3, snap, counts)
    assert not problems, "\n".join(problems)
    jobs, unknown = jobs_by_scene(snap, list(rep.created))
    assert not unknown, f"provider jobs for prompts of no scene: {unknown}"
    duplicates = {n: c for n, c in jobs.items() if c != 1}
    assert not duplicates, (
        f"jobs per scene {duplicates} (JobRecovered: {recovered_events(cluster, namespace)})"
    )
    peak = max_running(list(rep.created), LATENCY)
    assert peak <= CONCURRENCY, f"{peak} jobs ran at once at the provider"
    assert metric_sum(b.metrics(), "scene_operator_leader") == 1
    assert lease_spec(cluster, namespace, "scene-operator")["leaseTransitions"] == 1


def test_sigkill_of_the_leader_hands_over_within_the_lease_and_pays_once(
    cluster, namespace, run_operator, s3, provider: TaggedReplicate, seed: int
) -> None:
    rng = random.Random(seed)
    a, b = start_pair(run_operator, namespace, provider)
    holder = lease_spec(cluster, namespace, "scene-operator")["holderIdentity"]
    counts = create_projects(cluster, namespace, SCENES, PROJECTS, tag=str(seed))
    point = rng.randint(2, max(2, SCENES // 2))  # jobs created before the kill
    wait_for(lambda: len(provider.created) >= point, 60, interval=0.02, what=f"{point} jobs")
    time.sleep(rng.uniform(0.0, LATENCY))
    in_flight = len(provider.created)
    killed_wall, killed = time.time(), time.monotonic()
    a.kill()
    took = wait_take_over(cluster, namespace, holder, killed)
    wait_for(lambda: provider.calls_by("b"), 30, interval=0.05, what="b calls the provider")
    first_call = provider.calls_by("b")[0][0] - killed_wall
    print(
        f"\n[leader] SIGKILL with {in_flight} jobs created: take-over {took:.1f}s after the "
        f"kill (lease {LEASE:g}s, retry {RETRY:.2f}s, bound {TAKE_OVER_BOUND:.1f}s); "
        f"first provider call of the new leader {first_call:.1f}s after the kill"
    )
    assert took <= TAKE_OVER_BOUND
    assert first_call >= LEASE * 2 / 3  # not before the old leader's deadline had passed
    finish_and_check(cluster, namespace, s3, provider, counts, b)


def test_a_frozen_leader_that_resumes_makes_no_provider_call_and_no_write(
    cluster,
    kubeconfig,
    namespace,
    run_operator,
    s3,
    provider: TaggedReplicate,
    seed,
    tmp_path: Path,
) -> None:
    rng = random.Random(seed)
    with RecordingApiProxy(kubeconfig) as proxy:  # sees every request of process a
        a, b = start_pair(
            run_operator, namespace, provider, proxy.kubeconfig(tmp_path / "a.kubeconfig")
        )
        holder = lease_spec(cluster, namespace, "scene-operator")["holderIdentity"]
        counts = create_projects(cluster, namespace, SCENES, PROJECTS, tag=str(seed))
        point = rng.randint(2, max(2, SCENES // 2))
        wait_for(lambda: len(provider.created) >= point, 60, interval=0.02, what=f"{point} jobs")
        time.sleep(rng.uniform(0.0, LATENCY))
        assert a.proc is not None
        assert proxy.writes(), "process a wrote nothing through the proxy before the freeze"
        stopped_wall, stopped = time.time(), time.monotonic()
        a.proc.send_signal(signal.SIGSTOP)
        try:
            took = wait_take_over(cluster, namespace, holder, stopped)
            wait_for(lambda: provider.calls_by("b"), 30, interval=0.05, what="b works")
            time.sleep(1.0)
        finally:
            resumed_wall = time.time()
            a.proc.send_signal(signal.SIGCONT)
        code = a.proc.wait(timeout=20)
        print(
            f"\n[leader] SIGSTOP: take-over {took:.1f}s after the freeze (lease {LEASE:g}s); "
            f"resumed after {resumed_wall - stopped_wall:.1f}s, exited with {code}"
        )
        assert code == EXIT_LOST_LEADERSHIP, a.logs()[-3000:]
        assert "lost the leader-election Lease" in a.logs()
        # After it lost the Lease (frozen, then resumed) process a sent nothing that acts:
        # no provider call at all, no write to the API server (status, Events, its Lease).
        late_calls = provider.calls_by("a", since=stopped_wall + 1.0)
        assert late_calls == [], f"provider calls of the old leader: {late_calls}"
        late_writes = proxy.writes(since=stopped_wall + 1.0)
        assert late_writes == [], f"API writes of the old leader: {late_writes}"
    finish_and_check(cluster, namespace, s3, provider, counts, b)
