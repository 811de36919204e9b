"""Never pay twice without trusting clocks, between real processes: the operator against
the real API server, the S3 server and the Replicate protocol fake, with its wall clock
moved by Debian's `faketime` (libfaketime; the monotonic clock is left alone, as on a
node whose clock is merely set wrong), and a leader frozen with SIGSTOP and resumed after
its successor took over and purged a Project's prefix.

Counts and states are asserted, never durations; the waits have generous deadlines.
"""

from __future__ import annotations

import glob
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from controller.leaderelection.leadership import EXIT_LOST_LEADERSHIP
from tests.integration.clips import replicate_video
from tests.integration.election import TaggedReplicate, lease_spec
from tests.resilience.conftest import (
    PROJECTS,
    SCENES,
    SlowCreates,
    all_settled,
    check_completed_clip,
    create_projects,
    orphan_events,
    project_spec,
    recovered_events,
    wait_for,
)
from tests.resilience.test_leader_failover import LATENCY, start_pair, wait_take_over

pytestmark = [pytest.mark.resilience, pytest.mark.integration]


def faketime(offset: float) -> dict[str, str]:
    """Environment that runs a process with its wall clock `offset` seconds off."""
    if not offset:
        return {}
    libs = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    assert libs, "libfaketime is missing: apt-get install -y faketime (scripts/setup.sh does)"
    return {
        "LD_PRELOAD": libs[0],
        "FAKETIME": f"{offset:+g}s",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_DONT_RESET": "1",
    }


def test_faketime_moves_the_wall_clock_of_the_operator_process() -> None:
    code = "import time; print(time.time(), time.monotonic())"
    env = {**faketime(-3600)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    wall, _ = map(float, out.stdout.split())
    assert time.time() - wall > 3000


@pytest.mark.parametrize(
    ("writer", "searcher", "create_seconds", "search_after"),
    [
        # The create takes 10 s at the provider, the search waits 14 s: a successor that
        # compared its wall clock, 10 s ahead, with the marker's would search at once,
        # before the job exists, and pay again.
        pytest.param(0.0, +10.0, 10.0, 14.0, id="successor-10s-ahead"),
        pytest.param(0.0, -10.0, 10.0, 14.0, id="successor-10s-behind"),
        # The job exists 1 s after the marker, whose startedAt a node 10 s fast wrote:
        # created_at is 9 s before it, more than the 5 s of slack there used to be.
        pytest.param(+10.0, 0.0, 1.0, 8.0, id="marker-written-10s-ahead"),
        pytest.param(-10.0, 0.0, 1.0, 8.0, id="marker-written-10s-behind"),
    ],
)
def test_a_kill_in_the_orphan_window_pays_once_whatever_the_clocks(
    cluster, namespace, run_operator, s3, writer, searcher, create_seconds, search_after
) -> None:
    """Killed after the pending marker, while the create is in the provider's hands; the
    operator that resumes runs with another wall clock than the one that wrote the marker
    (and than the provider's). It finds the job and resumes it: one prediction."""
    with SlowCreates(create_seconds, latency_seconds=1.0, video_bytes=replicate_video) as rep:
        scene = kill_in_the_window_and_resume(
            cluster, namespace, run_operator, rep, writer, searcher, search_after
        )
        assert len(rep.created) == 1  # paid once
        assert scene["status"]["clip"]["jobId"] == rep.created[0]["id"]
    assert scene["status"]["phase"] == "Completed", scene["status"]
    assert not check_completed_clip(s3, scene)
    name = scene["metadata"]["name"]
    assert recovered_events(cluster, namespace) == {name: 1}
    assert orphan_events(cluster, namespace) == {}
    assert "DuplicateCanceled" not in cluster.event_reasons(namespace, name)


def kill_in_the_window_and_resume(
    cluster, namespace, run_operator, rep: SlowCreates, writer, searcher, search_after
) -> dict:
    env = {**rep.env(), "SCENE_OPERATOR_ORPHAN_SEARCH_AFTER_SECONDS": str(search_after)}
    first = run_operator(namespace, env={**env, **faketime(writer)})
    cluster.create_project(namespace, "skew", project_spec("A heron waits in the reeds", 1))

    def marker_without_id() -> bool:
        scenes = cluster.scenes(namespace, "skew")
        gen = ((scenes[0].get("status") or {}).get("generation") or {}) if scenes else {}
        return bool(gen) and not gen.get("jobId")

    wait_for(marker_without_id, timeout=60, interval=0.05, what="the pending marker")
    wait_for(lambda: rep.creates_received == 1, timeout=30, interval=0.02)
    first.kill()  # the create is on its way: its job exists only create_seconds later
    run_operator(namespace, env={**env, **faketime(searcher)})
    snap = wait_for(lambda: all_settled(cluster, namespace, ["skew"]), 180, what="settled")
    return snap.all_scenes[0]


@pytest.fixture
def provider() -> Iterator[TaggedReplicate]:
    with TaggedReplicate(["a", "b"], latency_seconds=LATENCY, video_bytes=replicate_video) as rep:
        yield rep


def objects_of(s3, uids: list[str]) -> list[str]:
    keys: list[str] = []
    for page in s3.client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket):
        keys += [o["Key"] for o in page.get("Contents", ()) if any(u in o["Key"] for u in uids)]
    return keys


def test_a_frozen_leader_resumed_after_a_purge_writes_nothing_and_pays_once(
    cluster, namespace, run_operator, kubectl, s3, provider: TaggedReplicate, seed: int
) -> None:
    """Leader a is frozen right after an output download (its upload comes next); b takes
    over, every Project (deletionPolicy Delete) is deleted and b purges their prefixes.
    Then a resumes: no object appears under a purged prefix, no prediction was paid
    twice, and a exits for a restart."""
    a, b = start_pair(run_operator, namespace, provider)
    holder = lease_spec(cluster, namespace, "scene-operator")["holderIdentity"]
    counts = create_projects(
        cluster, namespace, SCENES, PROJECTS, tag=str(seed), deletionPolicy="Delete"
    )
    uids = [cluster.project(namespace, name)["metadata"]["uid"] for name in counts]
    wait_for(lambda: provider.count("file") >= 1, 120, interval=0.01, what="a download")
    assert a.proc is not None
    stopped_wall, stopped = time.time(), time.monotonic()
    a.proc.send_signal(signal.SIGSTOP)
    try:
        wait_take_over(cluster, namespace, holder, stopped)
        wait_for(lambda: provider.calls_by("b"), 60, interval=0.05, what="b works")
        kubectl(
            "delete", "-n", namespace, "projects", "--all", "--wait=true", "--timeout=180s",
            timeout=240,
        )  # fmt: skip
        assert objects_of(s3, uids) == []  # purged by b
    finally:
        a.proc.send_signal(signal.SIGCONT)
    code = a.proc.wait(timeout=60)
    assert code == EXIT_LOST_LEADERSHIP, a.logs()[-3000:]
    time.sleep(2.0)  # anything a had under way would have landed by now
    assert objects_of(s3, uids) == [], "objects written after the purge"
    late_calls = provider.calls_by("a", since=stopped_wall + 1.0)
    assert late_calls == [], f"provider calls of the old leader: {late_calls}"
    per_scene = Counter(job["input"]["prompt"] for job in provider.created)
    paid_twice = {prompt: n for prompt, n in per_scene.items() if n > 1}
    assert not paid_twice, f"predictions per scene prompt: {paid_twice}"
    assert b.alive()  # the new leader did the purge and leads on
