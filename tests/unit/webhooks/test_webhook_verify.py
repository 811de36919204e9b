"""Verification of signed webhooks (Standard Webhooks, as Replicate sends them): a table of
requests against `verify.check`, the replay window, and the prediction -> Scene mapping."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from controller.webhooks.mapping import JobIndex, recorded_job
from controller.webhooks.verify import (
    MAX_BODY_BYTES,
    TOLERANCE_SECONDS,
    Outcome,
    ReplayGuard,
    check,
    secret_is_well_formed,
    sign,
)
from tests.support.webhook_sender import new_secret

SECRET = new_secret()
OTHER = new_secret()
NOW = 1_800_000_000.0
BODY = json.dumps({"id": "p1", "status": "succeeded", "output": "https://x/y.mp4"}).encode()


def signed(
    body: bytes = BODY,
    *,
    secret: str = SECRET,
    webhook_id: str = "msg_1",
    ts: float = NOW,
    signature: str | None = None,
) -> tuple[dict[str, str], bytes]:
    headers = {
        "Webhook-Id": webhook_id,  # header names are case-insensitive
        "webhook-timestamp": str(int(ts)),
        "webhook-signature": signature or sign(secret, webhook_id, int(ts), body),
    }
    return headers, body


def valid() -> str:
    """The base64 part of the right signature of `signed()`'s request."""
    return signed()[0]["webhook-signature"].removeprefix("v1,")


def without(header: str) -> tuple[dict[str, str], bytes]:
    headers, body = signed()
    return {k: v for k, v in headers.items() if k.lower() != header}, body


Case = Callable[[], tuple[dict[str, str], bytes]]
CASES: list[tuple[str, Case, str, Outcome | None]] = [
    ("good", signed, SECRET, None),
    (
        "good-secret-rotated-two-signatures",
        lambda: signed(
            signature=" ".join(
                [signed(secret=OTHER)[0]["webhook-signature"], signed()[0]["webhook-signature"]]
            )
        ),
        SECRET,
        None,
    ),
    ("bad-signature-other-secret", lambda: signed(secret=OTHER), SECRET, Outcome.BAD_SIGNATURE),
    (
        "bad-signature-body-changed",
        lambda: (signed()[0], BODY.replace(b"p1", b"p2")),
        SECRET,
        Outcome.BAD_SIGNATURE,
    ),
    (
        "bad-signature-id-changed",
        lambda: ({**signed()[0], "Webhook-Id": "msg_2"}, BODY),
        SECRET,
        Outcome.BAD_SIGNATURE,
    ),
    ("bad-signature-garbage", lambda: signed(signature="garbage"), SECRET, Outcome.BAD_SIGNATURE),
    (
        "bad-signature-not-base64",
        lambda: signed(signature="v1,@@@"),
        SECRET,
        Outcome.BAD_SIGNATURE,
    ),
    # Standard Webhooks: only `v1,` entries count; an entry of another version, or one that
    # is malformed, is skipped and does not void a valid `v1` entry beside it.
    (
        "other-version-is-not-v1",
        lambda: signed(signature=f"v9,{valid()}"),
        SECRET,
        Outcome.BAD_SIGNATURE,
    ),
    (
        "version-prefix-only",
        lambda: signed(signature=f"v1x,{valid()}"),
        SECRET,
        Outcome.BAD_SIGNATURE,
    ),
    ("no-version", lambda: signed(signature=f",{valid()}"), SECRET, Outcome.BAD_SIGNATURE),
    (
        "v1-with-trailing-fields",
        lambda: signed(signature=f"v1,{valid()},x"),
        SECRET,
        Outcome.BAD_SIGNATURE,
    ),
    (
        "malformed-entry-before-valid",
        lambda: signed(signature=f"garbage v1,{valid()}"),
        SECRET,
        None,
    ),
    (
        "not-base64-entry-before-valid",
        lambda: signed(signature=f"v1,@@@ v1,{valid()}"),
        SECRET,
        None,
    ),
    (
        "other-version-before-valid",
        lambda: signed(signature=f"v1a,xyz v9,{valid()} v1,{valid()}"),
        SECRET,
        None,
    ),
    (
        "truncated-signature",
        lambda: signed(signature=f"v1,{valid()[:-4]}"),
        SECRET,
        Outcome.BAD_SIGNATURE,
    ),
    ("stale-timestamp", lambda: signed(ts=NOW - TOLERANCE_SECONDS - 1), SECRET, Outcome.STALE),
    ("future-timestamp", lambda: signed(ts=NOW + TOLERANCE_SECONDS + 1), SECRET, Outcome.STALE),
    ("timestamp-at-the-edge", lambda: signed(ts=NOW - TOLERANCE_SECONDS), SECRET, None),
    (
        "timestamp-not-a-number",
        lambda: ({**signed()[0], "webhook-timestamp": "soon"}, BODY),
        SECRET,
        Outcome.MALFORMED,
    ),
    ("missing-id", lambda: without("webhook-id"), SECRET, Outcome.MALFORMED),
    ("missing-timestamp", lambda: without("webhook-timestamp"), SECRET, Outcome.MALFORMED),
    ("missing-signature", lambda: without("webhook-signature"), SECRET, Outcome.MALFORMED),
    ("empty-body", lambda: signed(b""), SECRET, Outcome.MALFORMED),
    ("body-not-utf8", lambda: signed(b"\xff\xfe"), SECRET, Outcome.MALFORMED),
    ("oversized-body", lambda: signed(b"x" * (MAX_BODY_BYTES + 1)), SECRET, Outcome.TOO_LARGE),
    ("secret-without-prefix", signed, SECRET.removeprefix("whsec_"), Outcome.NO_SECRET),
    ("secret-two-underscores", signed, SECRET + "_x", Outcome.NO_SECRET),
    ("secret-not-base64", signed, "whsec_not base64!", Outcome.NO_SECRET),
    ("secret-empty", signed, "", Outcome.NO_SECRET),
]


@pytest.mark.parametrize(
    ("make", "secret", "expected"),
    [pytest.param(make, secret, expected, id=name) for name, make, secret, expected in CASES],
)
def test_signature_validation_table(make: Case, secret: str, expected: Outcome | None) -> None:
    headers, body = make()
    replays = ReplayGuard()
    checked = check(headers, body, secret, NOW, replays)
    assert checked.outcome == expected
    assert checked.authentic == (expected is None)
    assert len(replays) == (1 if expected is None else 0)  # only authentic ids are kept


def test_replay_is_dropped_for_the_window_then_stale() -> None:
    replays = ReplayGuard()
    headers, body = signed()
    assert check(headers, body, SECRET, NOW, replays).authentic
    for later in (0.0, 1.0, TOLERANCE_SECONDS):
        assert check(headers, body, SECRET, NOW + later, replays).outcome == Outcome.REPLAY
    # Past the window the id is forgotten, but the request is stale by then.
    assert check(headers, body, SECRET, NOW + TOLERANCE_SECONDS + 1, replays).outcome == (
        Outcome.STALE
    )
    assert not replays.seen("msg_1", NOW + TOLERANCE_SECONDS + 1)
    assert len(replays) == 0  # and the memory is freed


def test_a_forged_request_cannot_burn_a_real_webhook_id() -> None:
    replays = ReplayGuard()
    forged, body = signed(secret=OTHER, webhook_id="msg_real")
    assert check(forged, body, SECRET, NOW, replays).outcome == Outcome.BAD_SIGNATURE
    real, body = signed(webhook_id="msg_real")
    assert check(real, body, SECRET, NOW, replays).authentic


def test_future_timestamps_are_remembered_until_they_leave_the_window() -> None:
    replays = ReplayGuard()
    headers, body = signed(ts=NOW + 200)
    assert check(headers, body, SECRET, NOW, replays).authentic
    # Still valid (within tolerance of its own timestamp) 400 s later: still a replay.
    assert check(headers, body, SECRET, NOW + 400, replays).outcome == Outcome.REPLAY


def test_secret_format() -> None:
    assert secret_is_well_formed(new_secret())
    for bad in ("", "whsec_", "whsec_%%%", "sk_" + new_secret()[6:], new_secret() + "_2"):
        assert not secret_is_well_formed(bad), bad


# --- prediction -> Scene ------------------------------------------------------------------


def scene(name: str, generation: dict[str, object] | None, clip: dict[str, object] | None = None):
    status: dict[str, object] = {}
    if generation is not None:
        status["generation"] = generation
    if clip is not None:
        status["clip"] = clip
    return ("ns", name), {"metadata": {"namespace": "ns", "name": name}, "status": status}


SCENES = dict(
    [
        scene("running", {"provider": "replicate", "jobId": "p-run"}),
        scene("veo", {"provider": "veo", "jobId": "p-veo"}),
        scene("pending-marker", {"provider": "replicate", "jobId": None}),
        scene("done", None, {"provider": "replicate", "jobId": "p-done"}),
        scene("idle", None),
    ]
)


@pytest.mark.parametrize(
    ("job_id", "expected"),
    [
        pytest.param("p-run", ("ns", "running"), id="recorded-in-flight"),
        pytest.param("p-veo", None, id="same-id-other-provider"),
        pytest.param("p-done", None, id="completed-scene-waits-for-nothing"),
        pytest.param("p-unknown", None, id="not-recorded-anywhere"),
        pytest.param("", None, id="empty-id"),
    ],
)
def test_prediction_maps_to_the_scene_recording_it(
    job_id: str, expected: tuple[str, str] | None
) -> None:
    assert JobIndex(lambda: SCENES, "replicate").find(job_id) == expected


def test_index_follows_the_cache_and_rebuilds_once_per_burst() -> None:
    scenes = dict(SCENES)
    index = JobIndex(lambda: scenes, "replicate")
    assert index.find("p-run") == ("ns", "running") and index.rebuilds == 1
    assert index.find("p-run") == ("ns", "running") and index.rebuilds == 1  # a hit
    # The Scene moved on to another job: the old id maps to nothing, the new one is found.
    k, body = scene("running", {"provider": "replicate", "jobId": "p-run-2"})
    scenes[k] = body
    assert index.find("p-run") is None
    assert index.find("p-run-2") == ("ns", "running")
    # Jobs started together are found by one rebuild.
    for i in range(3):
        k, body = scene(f"s{i}", {"provider": "replicate", "jobId": f"p{i}"})
        scenes[k] = body
    before = index.rebuilds
    assert [index.find(f"p{i}") for i in range(3)] == [("ns", f"s{i}") for i in range(3)]
    assert index.rebuilds == before + 1
    del scenes[("ns", "s0")]  # a deleted Scene
    assert index.find("p0") is None
    assert recorded_job(None, "replicate") is None
