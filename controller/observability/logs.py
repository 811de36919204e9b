"""JSON (python-json-logger) or text logs with namespace/object/reason fields; secrets never reach a line.

Redaction is a logging filter on the one handler, so it holds for every formatter and
for every library's records (kopf, botocore, the SDKs): the message, the structured
fields and the traceback are cleaned before any formatter sees them.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

# Environment variables whose values are secrets.
SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL)", re.IGNORECASE)
# Structured fields copied from `extra=` into the JSON line (kopf adds its own objects
# to records; only plain fields are taken, so nothing is deep-copied or leaked).
FIELDS = (
    "namespace",
    "object",
    "kind",
    "reason",
    "rule",
    "error",
    "provider",
    "job_id",
    "bucket",
    "prefix",
    "namespaces",
    "identity",
    "lease",
    "transitions",
)
BASE = ("time", "level", "logger", "message")


def secret_values() -> list[str]:
    return sorted(
        (val for name, val in os.environ.items() if SECRET_ENV.search(name) and len(val) >= 6),
        key=len,
        reverse=True,
    )


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "[REDACTED]")
    return text


class RedactSecrets(logging.Filter):
    """Replaces secret values in a record's message, fields, traceback and stack."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        super().__init__()
        self.secrets = secrets if secrets is not None else secret_values()
        self._plain = logging.Formatter()  # only to render tracebacks

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        cleaned = redact(message, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        for name in FIELDS:
            value = record.__dict__.get(name)
            if isinstance(value, str):
                record.__dict__[name] = redact(value, self.secrets)
            elif isinstance(value, list):
                record.__dict__[name] = [
                    redact(x, self.secrets) if isinstance(x, str) else x for x in value
                ]
        if record.exc_info:
            # Formatters print exc_text when exc_info is gone: render it once, cleaned.
            record.exc_text = self._plain.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: time, level, logger, message, FIELDS, exception."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "exception"},
            json_ensure_ascii=True,
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
            timespec="milliseconds"
        )
        super().add_fields(log_data, record, message_dict)
        k8s_ref = record.__dict__.get("k8s_ref")
        if isinstance(k8s_ref, dict):  # kopf's per-object loggers
            log_data.setdefault("namespace", str(k8s_ref.get("namespace", "")))
            log_data.setdefault("object", str(k8s_ref.get("name", "")))

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        kept = {k: log_data[k] for k in BASE}
        for name in FIELDS:
            value = log_data.get(name)
            if isinstance(value, str | int | float | bool | list):
                kept[name] = value
        for name in ("exception", "stack_info"):
            if log_data.get(name):
                kept[name] = log_data[name]
        return kept


def default_format(stream: Any = None) -> str:
    """Text for a person at a terminal, JSON for a log collector (a pod, a pipe, a file)."""
    stream = sys.stderr if stream is None else stream
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):  # no isatty, or closed
        return "json"


def setup(fmt: str | None = "json", level: str = "INFO") -> None:
    """Log to stderr as `fmt` (json or text; None: default_format())."""
    fmt = fmt or default_format()
    handler = logging.StreamHandler()
    handler.addFilter(RedactSecrets())
    handler.setFormatter(
        JsonLineFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # kopf logs every handled watch event at INFO: the operator logs what matters itself.
    for noisy in (
        "kopf",
        "httpx",
        "httpcore",
        "botocore",
        "urllib3",
        "aiohttp.access",
        "google_genai",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
