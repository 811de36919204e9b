"""Provider error text is bounded before it is stored anywhere (status, Events, logs)."""

from __future__ import annotations

import asyncio

import pytest

from controller.api.common import MAX_ERROR_MESSAGE, ErrorInfo
from controller.api.scene import SceneStatus
from controller.api.text import MAX_PROVIDER_TEXT, bound
from controller.controllers.events import EVENT_MESSAGE_LIMIT, Recorder
from controller.providers.base import ProviderError
from controller.settings import Settings
from tests.unit.kube.fakes import FakeKube

TRACEBACK = (
    "Traceback (most recent call last):\n"
    + '  File "/src/predict.py", line 12, in predict\n    step()\n' * 120
    + "RuntimeError: CUDA error: an illegal memory access was encountered"
)


def test_short_text_is_kept_as_is() -> None:
    assert bound("HTTP 503") == "HTTP 503"
    assert bound("x" * MAX_PROVIDER_TEXT) == "x" * MAX_PROVIDER_TEXT


@pytest.mark.parametrize("size", [MAX_PROVIDER_TEXT + 1, 6000, 10**6])
def test_long_text_keeps_head_and_tail_around_a_marker(size: int) -> None:
    text = "H" * 100 + "m" * (size - 200) + "T" * 100
    cut = bound(text)
    assert len(cut) <= MAX_PROVIDER_TEXT
    assert cut.startswith("H" * 100) and cut.endswith("T" * 100)
    kept = cut.count("H") + cut.count("m") + cut.count("T")
    assert f"[... {size - kept} characters cut ...]" in cut


def test_a_6kb_traceback_keeps_its_last_line() -> None:
    assert len(TRACEBACK) > 6000
    e = ProviderError("GenerationFailed", TRACEBACK, retryable=True)
    assert len(e.message) <= MAX_PROVIDER_TEXT and len(str(e)) < MAX_PROVIDER_TEXT + 100
    assert e.message.endswith("an illegal memory access was encountered")
    assert e.message.startswith("Traceback (most recent call last):")


def test_error_info_cuts_instead_of_refusing() -> None:
    info = ErrorInfo(reason="GenerationFailed", message=TRACEBACK * 3)
    assert len(info.message) <= MAX_ERROR_MESSAGE and "characters cut" in info.message
    status = SceneStatus.model_validate({"lastError": {"reason": "X", "message": "y" * 9000}})
    assert status.last_error is not None and len(status.last_error.message) <= MAX_ERROR_MESSAGE


def test_event_messages_keep_the_tail_and_say_they_were_cut() -> None:
    kube = FakeKube()
    body = {"kind": "Scene", "metadata": {"namespace": "ns", "name": "s", "uid": "u"}}
    e = ProviderError("GenerationFailed", TRACEBACK, retryable=True)
    asyncio.run(Recorder(Settings(), kube).post(body, "RetryScheduled", e.message, "Warning"))
    (event,) = kube.events
    assert len(event["message"]) <= EVENT_MESSAGE_LIMIT and "characters cut" in event["message"]
    assert event["message"].endswith("an illegal memory access was encountered")
