"""Never throw away a paid output: a succeeded job whose upload keeps failing stays in
flight with its output kept on local disk, and the upload is tried again with capped
backoff (condition reason UploadRetrying) instead of failing the Scene. One job only."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

from controller.api import vocabulary as v
from controller.api.common import ErrorInfo
from controller.decide import scene as sc
from controller.decide.timeutil import rfc3339
from controller.providers.base import ProviderError
from tests.unit.harness import Harness

ONE = {"scenes": {"count": 1, "durationSeconds": 4}}
SCENE = "p-scene-001"


class S3Down:
    """Every PUT fails while `down` is set (a bucket policy, an outage, a full disk)."""

    def __init__(self, h: Harness) -> None:
        self.down = True
        self.puts = 0
        h.clips.before.append(self)

    def __call__(self, op: str, bucket: str, key: str) -> None:
        if op == "put":
            self.puts += 1
            if self.down:
                raise OSError("AccessDenied (HTTP 403): upload refused")


def count_fetches(h: Harness) -> dict[str, int]:
    calls = {"n": 0}
    original = h.replicate.fetch

    async def fetch(*args: Any) -> None:
        calls["n"] += 1
        await original(*args)

    h.replicate.fetch = fetch  # type: ignore[method-assign]
    return calls


def ready(h: Harness) -> dict[str, Any]:
    conds = h.status(SCENE).get("conditions") or []
    return next(c for c in conds if c["type"] == "Ready")


def test_a_paid_output_is_kept_and_uploaded_when_s3_comes_back() -> None:
    h = Harness()
    s3 = S3Down(h)
    fetches = count_fetches(h)

    async def go() -> None:
        h.project(**ONE)
        await h.settle(seconds=3600)  # an hour of failed uploads (the old code gave up at 8)
        assert s3.puts > 12
        status = h.status(SCENE)
        assert status["phase"] == "Processing" and status["generation"]["jobId"]
        cond = ready(h)
        assert cond["reason"] == v.Reason.UPLOAD_RETRYING
        assert "s3://clips/videos/" in cond["message"] and "AccessDenied" in cond["message"]
        assert "kept on local disk" in cond["message"]
        # Backoff is capped at 5 minutes: the last hour saw at least 10 tries, not 1000.
        assert 12 < s3.puts < 40
        kept = list(Path(h.runtime.tmp_dir).glob("*.mp4"))
        assert len(kept) == 1
        s3.down = False
        await h.settle(seconds=600)

    asyncio.run(go())
    status = h.status(SCENE)
    assert status["phase"] == "Completed" and status.get("lastError") is None
    assert h.replicate.starts == 1  # the provider saw exactly one create
    assert fetches["n"] == 1  # downloaded once: every later try uploaded the kept file
    assert not list(Path(h.runtime.tmp_dir).glob("*.mp4"))  # freed once stored
    assert h.runtime.scenes.kept.entries == {}
    assert h.kube.reasons(SCENE).count(v.Reason.UPLOAD_FAILED) < s3.puts  # Events thinned


def test_an_output_that_does_not_fit_is_downloaded_again_no_new_job() -> None:
    h = Harness(kept_outputs_max_bytes=0)
    s3 = S3Down(h)
    fetches = count_fetches(h)

    async def go() -> None:
        h.project(**ONE)
        await h.settle(seconds=200)
        assert "downloaded again" in ready(h)["message"]
        assert not list(Path(h.runtime.tmp_dir).glob("*.mp4"))
        s3.down = False
        await h.settle(seconds=600)

    asyncio.run(go())
    assert h.status(SCENE)["phase"] == "Completed"
    assert h.replicate.starts == 1 and fetches["n"] == s3.puts > 2


def test_after_a_restart_the_output_is_downloaded_again_while_its_url_is_valid() -> None:
    h = Harness()
    s3 = S3Down(h)
    fetches = count_fetches(h)

    async def go() -> None:
        h.project(**ONE)
        await h.settle(seconds=120)
        assert ready(h)["reason"] == v.Reason.UPLOAD_RETRYING
        h.restart()  # the kept file is lost with the process
        s3.down = False
        await h.settle(seconds=600)

    asyncio.run(go())
    assert h.status(SCENE)["phase"] == "Completed"
    assert h.replicate.starts == 1 and fetches["n"] == 2


def test_after_a_restart_an_expired_output_follows_the_failure_path() -> None:
    h = Harness()
    s3 = S3Down(h)

    async def go() -> None:
        h.project(**ONE)
        await h.settle(seconds=120)
        h.restart()
        s3.down = False
        gone = ProviderError("OutputExpired", "output URL expired", retryable=False)
        h.replicate.fetch_errors = [gone]
        await h.settle(seconds=600)

    asyncio.run(go())
    status = h.status(SCENE)
    assert status["phase"] == "Failed" and status["lastError"]["reason"] == "OutputExpired"
    assert h.replicate.starts == 1


def test_the_decision_keeps_the_job_in_flight_and_writes_only_when_the_error_moves() -> None:
    """Pure: a succeeded job whose upload failed is never Failed, the job stays recorded,
    and a later failure with the same error costs no status write."""
    from tests.unit.decide.scene_builders import NOW, in_flight, observe

    def seen(minutes: int, text: str) -> sc.JobSeen:
        at = rfc3339(NOW + dt.timedelta(minutes=minutes))
        err = ErrorInfo(reason=v.Reason.UPLOAD_RETRYING, message=text, retryable=True, at=at)
        return sc.JobSeen("job-1", sc.JobPhase.SUCCEEDED, err, retry_after=8.0)

    first = sc.decide(observe(in_flight(), job=seen(0, "upload failed: A")))
    assert first.rule == sc.Rule.UPLOAD_RETRYING and first.effect == sc.Effect.WRITE
    assert first.status.generation is not None and first.status.phase == "Processing"
    assert first.requeue_after == 8.0
    again = sc.decide(observe(first.status, job=seen(5, "upload failed: A")))
    assert again.effect == sc.Effect.NONE and again.requeue_after == 8.0
    moved = sc.decide(observe(first.status, job=seen(9, "upload failed: B")))
    assert moved.effect == sc.Effect.WRITE and moved.status.last_error is not None
    assert moved.status.last_error.at == first.status.last_error.at  # the first failure's
