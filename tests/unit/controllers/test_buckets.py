"""No paid job that cannot be stored (issue 12 #5): the bucket is looked at (HeadBucket,
cached and shared) before any job starts; a missing or denied bucket holds the Scene
and is reported on the Project, naming the bucket."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from controller.api import vocabulary as v
from controller.api.project import ProjectSpec, ProjectStatus
from controller.decide import scene as sc
from controller.decide.project import ProjectObservation, project_status
from controller.decide.scene import BucketSeen, Effect, decide
from controller.storage.buckets import BucketChecks
from tests.unit.decide.scene_builders import observe


def test_a_start_waits_for_a_look_at_the_bucket() -> None:
    d = decide(observe(bucket=None, expected=sc.ObjectSeen(observe().desired.key(0), None)))  # type: ignore[union-attr]
    assert d.effect == Effect.CHECK_BUCKET


def test_a_missing_bucket_holds_the_scene_and_names_the_bucket() -> None:
    o = observe(
        bucket=BucketSeen("bucket 'clips' does not exist"),
        expected=sc.ObjectSeen(observe().desired.key(0), None),  # type: ignore[union-attr]
    )
    d = decide(o)
    assert d.rule == "bucket-unavailable" and d.effect == Effect.WRITE
    assert d.status.generation is None and d.status.generations_started == 0
    ready = next(c for c in d.status.conditions if c.type == v.Cond.READY)
    assert ready.reason == v.Reason.BUCKET_UNAVAILABLE and "'clips'" in ready.message
    assert d.requeue_after == sc.BUCKET_RECHECK_SECONDS


def test_checks_are_cached_and_shared() -> None:
    calls: list[str] = []
    now = [0.0]

    async def probe(bucket: str) -> str | None:
        calls.append(bucket)
        await asyncio.sleep(0.01)
        return None if bucket == "ok" else f"bucket {bucket!r} does not exist"

    checks = BucketChecks(clock=lambda: now[0])

    async def run() -> None:
        seen = await asyncio.gather(*(checks.check("ok", probe) for _ in range(5)))
        assert all(s.problem is None for s in seen) and calls == ["ok"]
        assert (await checks.check("gone", probe)).problem == "bucket 'gone' does not exist"
        now[0] = checks.problem_seconds + 1  # a problem is looked at again sooner ...
        await checks.check("gone", probe)
        await checks.check("ok", probe)  # ... than a healthy bucket
        assert calls == ["ok", "gone", "gone"]

    asyncio.run(run())


def test_a_probe_that_fails_is_a_problem_not_a_crash() -> None:
    async def probe(bucket: str) -> str | None:
        raise ConnectionError("endpoint unreachable")

    seen = asyncio.run(BucketChecks().check("b", probe))
    assert seen.problem is not None and "'b'" in seen.problem


@pytest.mark.parametrize("problem", [None, "bucket 'clips' does not exist"])
def test_the_project_reports_the_bucket(problem: str | None) -> None:
    obs = ProjectObservation(
        now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        generation=1,
        status=ProjectStatus(),
        spec=ProjectSpec(prompt="x", generate_videos=True),
        bucket_problem=problem,
    )
    videos = next(c for c in project_status(obs).conditions if c.type == v.Cond.VIDEOS_READY)
    if problem:
        assert videos.reason == v.Reason.BUCKET_UNAVAILABLE and "'clips'" in videos.message
    else:
        assert videos.reason != v.Reason.BUCKET_UNAVAILABLE
