"""The operator's settings explained: what each means, its default, its effective value and
where that came from. `scene-operator run --help`, `scene-operator config` and
docs/configuration.md are all generated here from the Settings model (controller/settings.py),
so they cannot drift from it.
"""

from __future__ import annotations

import difflib
import enum
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic.fields import FieldInfo

from controller.observability.logs import SECRET_ENV, redact, secret_values
from controller.settings import Settings

PREFIX = "SCENE_OPERATOR_"
REDACTED = "[REDACTED]"
# Variables with the prefix that are not operator settings: no warning for them.
OTHER_VARIABLES = {
    "SCENE_OPERATOR_CACHE": "where the demo and scripts/ keep the control-plane binaries "
    "(default: ~/.cache/scene-operator)",
    "SCENE_OPERATOR_TEST_KUBECONFIG": "the test suite's cluster (tests only)",
}
# How `scene-operator run` ends. The codes are those of controller/informer/handlers.py
# and controller/leaderelection/leadership.py (a unit test keeps them equal).
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "stopped by SIGTERM or SIGINT (Ctrl-C): a normal stop"),
    (1, "an unexpected error (a traceback in the log)"),
    (
        70,
        "EX_SOFTWARE: kopf lost a watch it cannot recover in this process; restart it "
        "(all state is in the API server and S3: nothing is lost or paid twice)",
    ),
    (
        75,
        "EX_TEMPFAIL: lost the leader-election Lease (or could not renew it in time); "
        "restart it: it comes back as a standby",
    ),
    (
        78,
        "EX_CONFIG: a configuration error (an invalid SCENE_OPERATOR_* value, caps over "
        "SCENE_OPERATOR_SCRATCH_LIMIT_MB, or another shard's Lease claims the same "
        "namespaces); restarting will not help",
    ),
)


EXIT_CONFIG = 78  # EX_CONFIG: restarting will not help


def load_settings(log_format: str | None = None) -> Settings:
    """The settings from the environment, then logging (--log-format, else
    SCENE_OPERATOR_LOG_FORMAT, else text on a terminal and JSON otherwise); a mistyped
    SCENE_OPERATOR_* variable is a warning that names the closest setting. Invalid
    settings, or caps that add up to more than the scratch disk, exit 78 (a restart
    will not change them)."""
    import logging
    import os
    import sys

    from pydantic import ValidationError

    from controller.observability import logs

    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"scene-operator: invalid settings: {exc}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    if (problem := settings.scratch_problem()) is not None:
        print(f"scene-operator: refusing to start: {problem}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    logs.setup(log_format or settings.log_format, settings.log_level)
    for name, closest in unknown_variables(os.environ):
        logging.getLogger("scene_operator").warning(unknown_message(name, closest))
    return settings


@dataclass(frozen=True)
class SettingDoc:
    variable: str  # SCENE_OPERATOR_BUCKET
    field: str  # bucket
    default: str  # as one would write it in the environment
    description: str  # its first sentence


@dataclass(frozen=True)
class Effective:
    variable: str
    value: str  # secrets redacted
    source: str  # "env" or "default"


def variable(field: str) -> str:
    return PREFIX + field.upper()


def as_text(value: Any) -> str:
    """A value as it would be written in the environment."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def first_sentence(text: str) -> str:
    text = " ".join(text.split())
    match = re.search(r"(?<!e\.g)(?<!i\.e)\.(\s|$)", text)
    return text[: match.start() + 1] if match else text


def _default(info: FieldInfo) -> str:
    return as_text(info.get_default(call_default_factory=True))


def docs() -> list[SettingDoc]:
    return [
        SettingDoc(variable(name), name, _default(info), first_sentence(info.description or ""))
        for name, info in Settings.model_fields.items()
    ]


def _in_environment(environ: Mapping[str, str]) -> set[str]:
    # pydantic-settings matches names case-insensitively (case_sensitive=False).
    return {name.upper() for name in environ if name.upper().startswith(PREFIX)}


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """SCENE_OPERATOR_* variables that are no setting, each with the closest setting."""
    known = [variable(name) for name in Settings.model_fields]
    found = []
    for name in sorted(_in_environment(environ) - set(known) - set(OTHER_VARIABLES)):
        # Compared without the prefix, which every name shares.
        rest = name.removeprefix(PREFIX)
        close = difflib.get_close_matches(rest, [k.removeprefix(PREFIX) for k in known], 1, 0.6)
        found.append((name, PREFIX + close[0] if close else None))
    return found


def unknown_message(name: str, closest: str | None) -> str:
    hint = f"; did you mean {closest}?" if closest else ""
    return f"{name} is not a setting and is ignored{hint}"


def redacted(field: str, text: str, secrets: list[str]) -> str:
    """No secret in what is shown: settings named like one, passwords in URLs, and the
    value of any secret-named environment variable (provider keys, AWS credentials)."""
    if text and SECRET_ENV.search(field):
        return REDACTED
    if "@" in text and "://" in text:
        parts = urlsplit(text)
        if parts.password:
            host = parts.netloc.rsplit("@", 1)[1]
            text = urlunsplit(parts._replace(netloc=f"{parts.username}:{REDACTED}@{host}"))
    return redact(text, secrets)


def effective(settings: Settings, environ: Mapping[str, str]) -> list[Effective]:
    present = _in_environment(environ)
    secrets = secret_values()
    return [
        Effective(
            variable(name),
            redacted(name, as_text(getattr(settings, name)), secrets),
            "env" if variable(name) in present else "default",
        )
        for name in Settings.model_fields
    ]


def report(settings: Settings, environ: Mapping[str, str]) -> str:
    """`scene-operator config`: every setting's effective value and its source."""
    rows = [("SETTING", "VALUE", "SOURCE")]
    rows += [(e.variable, e.value or "(unset)", e.source) for e in effective(settings, environ)]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(
        f"{a.ljust(widths[0])}  {b.ljust(widths[1])}  {c}".rstrip() for a, b, c in rows
    )


def help_epilog() -> str:
    """The settings and exit codes, for `scene-operator run --help`."""
    lines = [
        "settings (environment variables; `scene-operator config` prints the effective",
        "values, docs/configuration.md explains them):",
    ]
    for d in docs():
        lines.append(f"  {d.variable}={d.default}" if d.default else f"  {d.variable}")
        lines += textwrap.wrap(d.description, 88, initial_indent=" " * 6, subsequent_indent=" " * 6)
    lines += ["", "exit codes:"]
    for code, text in EXIT_CODES:
        lines += textwrap.wrap(text, 88, initial_indent=f"  {code:<4}", subsequent_indent=" " * 6)
    return "\n".join(lines)


def markdown() -> str:
    """docs/configuration.md (`scene-operator config --markdown`)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "# Configuration",
        "",
        "<!-- Generated by `scene-operator config --markdown` from controller/settings.py;",
        "     a test fails when this file and the model differ. -->",
        "",
        "The operator reads its settings from environment variables with the prefix",
        f"`{PREFIX}` (names are matched case-insensitively). `scene-operator config` prints",
        "the effective value of each and where it came from (`env` or `default`), secrets",
        "redacted. A variable with the prefix that is no setting is a warning at start that",
        "names the closest setting; an invalid value exits 78.",
        "",
        "Secrets are never settings: each SDK reads its own variables, filled from a",
        "Kubernetes Secret: `AWS_ENDPOINT_URL_S3`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,",
        "`AWS_DEFAULT_REGION` (boto3); `REPLICATE_API_TOKEN`, `REPLICATE_BASE_URL` (replicate);",
        "`GEMINI_API_KEY` or `GOOGLE_API_KEY`, `GOOGLE_GEMINI_BASE_URL`,",
        "`GOOGLE_VERTEX_BASE_URL` (google-genai).",
        "",
        "| Variable | Default | Description |",
        "|---|---|---|",
    ]
    for name, info in Settings.model_fields.items():
        text = " ".join((info.description or "").split())
        default = f"`{_default(info)}`" if _default(info) else "(unset)"
        lines.append(f"| `{variable(name)}` | {cell(default)} | {cell(text)} |")
    lines += ["", "Other variables with the prefix:", ""]
    lines += [f"- `{name}`: {text}." for name, text in OTHER_VARIABLES.items()]
    lines += ["", "## Exit codes of `scene-operator run`", "", "| Code | Meaning |", "|---|---|"]
    lines += [f"| {code} | {cell(text)} |" for code, text in EXIT_CODES]
    return "\n".join(lines) + "\n"
