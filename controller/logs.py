"""JSON logs with namespace/name/reason fields; secret values never reach a line."""

from __future__ import annotations

import logging
import os
import re

from pythonjsonlogger.json import JsonFormatter

# Environment variables whose values are secrets (and anything that looks like one).
SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL)", re.IGNORECASE)


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


class RedactingFilter(logging.Filter):
    """Last line of defence: scrub known secret values from every record."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets = secret_values()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = redact(record.getMessage(), self.secrets)
            record.args = None
            for attr in ("message", "exc_text"):
                val = getattr(record, attr, None)
                if isinstance(val, str):
                    setattr(record, attr, redact(val, self.secrets))
        return True


def setup(fmt: str = "json", level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"levelname": "level", "asctime": "time"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "botocore", "urllib3", "aiohttp.access", "google_genai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
