"""JSON logs with namespace/object/reason fields; secret values never reach a line."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re

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


class JsonLineFormatter(logging.Formatter):
    def __init__(self, secrets: list[str] | None = None) -> None:
        super().__init__()
        self.secrets = secrets if secrets is not None else secret_values()

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if isinstance(value, str | int | float | bool | list):
                line[name] = value
        k8s_ref = record.__dict__.get("k8s_ref")
        if isinstance(k8s_ref, dict):  # kopf's per-object loggers
            line.setdefault("namespace", str(k8s_ref.get("namespace", "")))
            line.setdefault("object", str(k8s_ref.get("name", "")))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(line, default=str), self.secrets)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self.secrets = secret_values()

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


def setup(fmt: str = "json", level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLineFormatter() if fmt == "json" else TextFormatter())
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
