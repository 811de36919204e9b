"""The operator's log lines: python-json-logger's JSON with our fields; secrets redacted by
the handler's filter whatever the format, in the message, the fields and the traceback."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from collections.abc import Callable, Iterator

import pytest

from controller.observability import logs

SECRET = "r8_fake-token-0123456789"


Setup = Callable[[str], tuple[logging.Logger, io.StringIO]]


@pytest.fixture
def setup_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    """logs.setup(fmt) with REPLICATE_API_TOKEN set, writing to a buffer; restored after."""
    monkeypatch.setenv("REPLICATE_API_TOKEN", SECRET)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def setup(fmt: str) -> tuple[logging.Logger, io.StringIO]:
        logs.setup(fmt, "INFO")
        stream = io.StringIO()
        handler = root.handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        return logging.getLogger("scene_operator.test"), stream

    try:
        yield setup
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_has_the_fields_the_tools_read(setup_logs: Setup) -> None:
    log, stream = setup_logs("json")
    log.warning(
        "retry %s of %s",
        2,
        "scene/x",
        extra={"namespace": "ns", "object": "x", "reason": "RetryScheduled", "opaque": object()},
    )
    (line,) = lines(stream)
    assert line["level"] == "WARNING" and line["logger"] == "scene_operator.test"
    assert line["message"] == "retry 2 of scene/x"
    assert (line["namespace"], line["object"], line["reason"]) == ("ns", "x", "RetryScheduled")
    assert dt.datetime.fromisoformat(str(line["time"])).tzinfo is not None
    assert "opaque" not in line  # only plain, known fields: kopf's objects stay out
    assert list(line)[:4] == ["time", "level", "logger", "message"]


def test_kopf_object_loggers_give_namespace_and_object(setup_logs: Setup) -> None:
    log, stream = setup_logs("json")
    log.info("handled", extra={"k8s_ref": {"namespace": "ns", "name": "p1"}})
    (line,) = lines(stream)
    assert (line["namespace"], line["object"]) == ("ns", "p1")


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_secrets_are_redacted_everywhere_in_a_record(setup_logs: Setup, fmt: str) -> None:
    log, stream = setup_logs(fmt)
    log.info("token %s in args", SECRET, extra={"error": f"auth {SECRET} refused"})
    try:
        raise RuntimeError(f"bad token {SECRET}")
    except RuntimeError:
        log.exception("call failed with %s", SECRET)
    text = stream.getvalue()
    assert SECRET not in text
    assert text.count("[REDACTED]") >= (4 if fmt == "json" else 3)
    if fmt == "json":
        first, second = lines(stream)
        assert first["error"] == "auth [REDACTED] refused"
        assert "RuntimeError: bad token [REDACTED]" in str(second["exception"])
    else:
        assert "RuntimeError: bad token [REDACTED]" in text
