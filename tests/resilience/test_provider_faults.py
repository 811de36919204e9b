"""Provider faults on ~20% of Replicate requests (429, 500, connections dropped before or
after the server acted, hangs): every scene ends Completed with its clip in S3, or Failed
with a reason and message; status is never wrong on the way."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.clips import replicate_video
from tests.resilience.conftest import (
    FAULT_RATE,
    HANG_SECONDS,
    PROJECTS,
    SCENES,
    all_settled,
    check_completed_clip,
    check_counters,
    check_failed_scene,
    check_scene_names,
    create_projects,
    jobs_by_scene,
    orphan_events,
    phase,
    recovered_events,
    snapshot,
    tolerant,
    wait_for,
)
from tests.support.replicate_server import ReplicateServer, Reply

pytestmark = [pytest.mark.resilience, pytest.mark.integration]

CLIENT_TIMEOUT = 30.0  # ReplicateVideoProvider's HTTP timeout: a longer hang loses the answer


class FlakyReplicate(ReplicateServer):
    """Replicate whose create, get and file requests fail at `rate`, drawn from a seeded
    random: 429, 500, a dropped connection before the server acts ("drop") or after it
    acted ("drop-after": a job is created but its id never reaches the client), a hang
    of `hang_seconds` before answering, or (on a create) a job that will fail with a long
    traceback of 5-20 kB ("long-failure": a worker fault, retried)."""

    KINDS = ("429", "500", "drop", "drop-after", "hang", "long-failure")

    def __init__(self, *, seed: int, rate: float, hang_seconds: float, **kw: Any) -> None:
        super().__init__(**kw)
        self.rng = random.Random(seed)
        self.rate = rate
        self.hang = hang_seconds
        self.injected: Counter[tuple[str, str]] = Counter()
        self.lost_creates: Counter[str] = Counter()  # prompt -> jobs made, answer lost
        self.made_to_fail: set[str] = set()  # ids of jobs a long-failure fault made fail

    def dispatch(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> Reply | None:
        matched = self.route(method, path)
        route = matched[0] if matched else "unknown"
        with self.lock:
            fault = None
            if route in ("create", "get", "file") and self.rng.random() < self.rate:
                fault = self.rng.choice(self.KINDS)
                if fault == "long-failure" and route != "create":
                    fault = None
                if fault is not None:
                    self.injected[(route, fault)] += 1
            if fault == "long-failure":
                self.prediction_outcomes.insert(0, f"failed:{long_traceback(self.rng)}")
        if fault in ("429", "500"):
            return self.failure_reply(int(fault))
        if fault == "drop":
            return None
        if fault == "hang":
            time.sleep(self.hang)
        reply = super().dispatch(method, path, headers, body)
        made = route == "create" and reply is not None and reply.status == 201
        if made and fault == "long-failure" and reply is not None:
            with self.lock:
                self.made_to_fail.add(json.loads(reply.body)["id"])
        lost = fault == "drop-after" or (fault == "hang" and self.hang >= CLIENT_TIMEOUT)
        if made and lost:
            prompt = (json.loads(body).get("input") or {}).get("prompt")
            with self.lock:
                self.lost_creates[str(prompt)] += 1
        return None if fault == "drop-after" else reply


def long_traceback(rng: random.Random) -> str:
    frame = '  File "/src/predict.py", line {n}, in predict\n    out = self.pipe(**inputs)\n'
    frames = "".join(frame.format(n=n) for n in range(rng.randint(70, 280)))
    return (
        f"Traceback (most recent call last):\n{frames}"
        "RuntimeError: CUDA error: an illegal memory access was encountered"
    )


@pytest.fixture
def flaky(seed: int) -> Iterator[FlakyReplicate]:
    server = FlakyReplicate(
        seed=seed,
        rate=FAULT_RATE,
        hang_seconds=HANG_SECONDS,
        latency_seconds=1.5,
        video_bytes=replicate_video,
    )
    with server:
        yield server


class Sampler(threading.Thread):
    """Checks, while the run goes on, that every Completed scene's clip is in S3."""

    def __init__(self, check: Any, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.check = check
        self.interval = interval
        self.problems: list[str] = []
        self.samples = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            self.problems += tolerant(self.check, [])
            self.samples += 1

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)


def test_provider_faults_end_completed_or_failed_never_wrong(
    cluster, namespace, run_operator, s3, flaky: FlakyReplicate
) -> None:
    began = time.monotonic()
    op = run_operator(namespace, env=flaky.env())
    counts = create_projects(cluster, namespace, SCENES, PROJECTS, tag=namespace)
    names = list(counts)

    def completed_have_clips() -> list[str]:
        out = []
        for scene in cluster.scenes(namespace):
            if phase(scene) == "Completed":
                out += check_completed_clip(s3, scene)
        return out

    sampler = Sampler(completed_have_clips)
    sampler.start()
    try:
        snap = wait_for(
            lambda: all_settled(cluster, namespace, names),
            timeout=90 + 3 * SCENES + 4 * HANG_SECONDS,
            what="every project settled",
        )
    finally:
        sampler.stop()
    time.sleep(1.0)
    snap = snapshot(cluster, namespace, names)
    # A job made to fail is retried by design: a second job for its scene is no duplicate.
    paid = [j for j in flaky.created if j["id"] not in flaky.made_to_fail]
    jobs, unknown = jobs_by_scene(snap, paid)
    phases = snap.phases()
    print(
        f"[resilience] {SCENES} scenes in {time.monotonic() - began:.1f}s: {dict(phases)}; "
        f"faults injected {dict(flaky.injected)}; {len(flaky.created)} jobs; "
        f"{sampler.samples} samples during the run"
    )
    assert op.alive() and op.starts == 1

    problems = list(sampler.problems) + check_scene_names(snap, counts)
    for scene in snap.all_scenes:
        if phase(scene) == "Completed":
            problems += check_completed_clip(s3, scene)
        elif phase(scene) == "Failed":
            problems += check_failed_scene(scene)
            print(f"  failed {scene['metadata']['name']}: {scene['status']['lastError']}")
        else:
            problems.append(f"{scene['metadata']['name']} not settled: {scene['status']}")
    problems += check_counters(snap)
    assert not problems, "\n".join(problems)

    # A create whose answer was lost made a job the operator never heard of: it is found
    # in Replicate's prediction list and resumed, so no Scene has a second job.
    assert not unknown, f"provider jobs for prompts of no scene: {unknown}"
    duplicates = {n: c for n, c in jobs.items() if c > 1}
    recovered = recovered_events(cluster, namespace)
    assert not duplicates, (
        f"paid twice: jobs per scene {duplicates}; lost create answers "
        f"{dict(flaky.lost_creates)}; JobRecovered {recovered}; "
        f"JobMayBeOrphaned {orphan_events(cluster, namespace)}"
    )
    print(
        f"[resilience] {sum(flaky.lost_creates.values())} create answers lost, "
        f"{sum(recovered.values())} jobs found and resumed, 0 paid twice"
    )
