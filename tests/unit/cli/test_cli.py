"""`scene-operator` explains itself: --version, the settings and exit codes in `run --help`,
`config` (effective values, their source, secrets redacted), a warning for a mistyped
SCENE_OPERATOR_* variable, --log-format, and no --peering. Run as users run it: a
subprocess of `python -m controller`."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest

import controller
from controller import configuration
from controller.informer.handlers import EXIT_KOPF_FAILED
from controller.leaderelection.leadership import EXIT_LOST_LEADERSHIP, EXIT_SHARD_CONFLICT
from controller.settings import Settings
from tests.support.repo import REPO_ROOT

# No cluster, no S3, no ports: `run` gets as far as its first API call and fails there.
QUIET = {
    "KUBECONFIG": "/nonexistent/kubeconfig",
    "SCENE_OPERATOR_METRICS_PORT": "0",
    "SCENE_OPERATOR_LIVENESS_PORT": "0",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: val
        for k, val in os.environ.items()
        if not k.upper().startswith("SCENE_OPERATOR_") and k != "KUBERNETES_SERVICE_HOST"
    }
    return {**env, **extra}


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller", *args],
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version_is_the_installed_package_version() -> None:
    done = cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"scene-operator {version('scene-operator')}"
    assert controller.__version__ == version("scene-operator")


def test_run_help_lists_every_setting_with_its_default_and_the_exit_codes() -> None:
    done = cli("run", "--help")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    for doc in configuration.docs():
        line = f"  {doc.variable}={doc.default}" if doc.default else f"  {doc.variable}"
        assert f"{line}\n" in text, doc.variable
        assert doc.description.split()[0] in text
    for code in (0, 70, 75, 78):
        assert f"\n  {code:<4}" in text
    assert "--log-format {json,text}" in text
    assert "--peering" not in text


def test_exit_codes_in_the_help_are_the_ones_the_code_uses() -> None:
    codes = {code for code, _ in configuration.EXIT_CODES}
    assert {EXIT_KOPF_FAILED, EXIT_LOST_LEADERSHIP, EXIT_SHARD_CONFLICT} <= codes
    text = dict(configuration.EXIT_CODES)
    assert "kopf" in text[EXIT_KOPF_FAILED] and "Lease" in text[EXIT_LOST_LEADERSHIP]
    assert "shard" in text[EXIT_SHARD_CONFLICT]


def test_every_setting_has_a_description() -> None:
    assert [n for n, f in Settings.model_fields.items() if not f.description] == []


def test_peering_is_gone() -> None:
    done = cli("run", "--peering", "x")
    assert done.returncode == 2 and "unrecognized arguments: --peering" in done.stderr


def test_config_prints_values_and_their_source_with_secrets_redacted() -> None:
    token = "r8_this-is-a-secret-token"
    done = cli(
        "config",
        SCENE_OPERATOR_BUCKET="my-clips",
        scene_operator_workers="4",  # names match case-insensitively, as pydantic reads them
        SCENE_OPERATOR_WEBHOOK_URL="https://hook:hunter2-password@hooks.example.com",
        SCENE_OPERATOR_ALLOWED_MODELS=f"veo,{token}",
        REPLICATE_API_TOKEN=token,
    )
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()[1:]}
    assert set(rows) == {configuration.variable(n) for n in Settings.model_fields}
    assert rows["SCENE_OPERATOR_BUCKET"] == ["my-clips", "env"]
    assert rows["SCENE_OPERATOR_WORKERS"] == ["4", "env"]
    assert rows["SCENE_OPERATOR_S3_PREFIX"] == ["scene-operator", "default"]
    assert rows["SCENE_OPERATOR_DEFAULT_MAX_GENERATIONS"] == ["(unset)", "default"]
    assert rows["SCENE_OPERATOR_WEBHOOK_URL"] == [
        "https://hook:[REDACTED]@hooks.example.com",
        "env",
    ]
    assert rows["SCENE_OPERATOR_ALLOWED_MODELS"] == ["veo,[REDACTED]", "env"]
    assert "hunter2" not in done.stdout and token not in done.stdout


def test_a_setting_named_like_a_secret_is_redacted() -> None:
    assert configuration.redacted("webhook_secret", "abc", []) == configuration.REDACTED
    assert configuration.redacted("webhook_secret", "", []) == ""
    assert configuration.redacted("bucket", "b", []) == "b"


def test_invalid_settings_exit_78_and_say_which() -> None:
    for command in ("config", "run"):
        done = cli(command, SCENE_OPERATOR_WORKERS="0", **QUIET)
        assert done.returncode == EXIT_SHARD_CONFLICT == 78, done.stderr
        assert "workers" in done.stderr and "greater than or equal to 1" in done.stderr


def test_unknown_variable_names_the_closest_setting() -> None:
    assert configuration.unknown_variables(
        {"SCENE_OPERATOR_BUKET": "x", "SCENE_OPERATOR_CACHE": "/c", "SCENE_OPERATOR_ZZZ": "1"}
    ) == [("SCENE_OPERATOR_BUKET", "SCENE_OPERATOR_BUCKET"), ("SCENE_OPERATOR_ZZZ", None)]
    done = cli("config", SCENE_OPERATOR_BUKET="my-clips")
    assert done.returncode == 0
    assert (
        "SCENE_OPERATOR_BUKET is not a setting and is ignored; did you mean "
        "SCENE_OPERATOR_BUCKET?" in done.stderr
    )


def first_stderr_line(args: list[str], env: dict[str, str], *, tty: bool = False) -> str:
    """The first line `run` writes to stderr (a pipe, or a terminal), then it is stopped."""
    reader, writer = pty.openpty() if tty else os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller", "run", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=writer,
    )
    os.close(writer)
    try:
        with os.fdopen(reader, "rb", buffering=0) as stream:
            line = b""
            deadline = time.monotonic() + 30
            while not line.endswith(b"\n") and time.monotonic() < deadline:
                chunk = stream.read(1)
                if not chunk:
                    break
                line += chunk
        return line.decode().strip()
    finally:
        proc.kill()
        proc.wait()


def test_run_warns_of_an_unknown_variable_in_json_when_stderr_is_not_a_terminal() -> None:
    line = first_stderr_line([], clean_env(SCENE_OPERATOR_BUKET="x", **QUIET))
    record = json.loads(line)
    assert record["level"] == "WARNING"
    assert "did you mean SCENE_OPERATOR_BUCKET?" in record["message"]


def test_run_logs_text_on_a_terminal_and_log_format_wins() -> None:
    env = clean_env(SCENE_OPERATOR_BUKET="x", **QUIET)
    line = first_stderr_line([], env, tty=True)
    assert " WARNING scene_operator SCENE_OPERATOR_BUKET is not a setting" in line
    assert json.loads(first_stderr_line(["--log-format", "json"], env, tty=True))["level"]
    env["SCENE_OPERATOR_LOG_FORMAT"] = "json"
    assert not first_stderr_line(["--log-format", "text"], env).startswith("{")


@pytest.mark.parametrize(("tty", "expected"), [(True, "text"), (False, "json")])
def test_default_log_format_follows_the_terminal(tty: bool, expected: str) -> None:
    from controller.observability.logs import default_format

    class Stream:
        def isatty(self) -> bool:
            return tty

    assert default_format(Stream()) == expected


def test_the_configuration_reference_is_generated_from_the_model() -> None:
    committed = (REPO_ROOT / "docs" / "configuration.md").read_text()
    assert committed == configuration.markdown(), (
        "docs/configuration.md is out of date: run "
        "`python -m controller config --markdown > docs/configuration.md`"
    )
    done = cli("config", "--markdown", SCENE_OPERATOR_BUCKET="not-in-the-reference")
    assert done.stdout == committed


def test_crds_default_to_stdout_not_to_a_repository_folder(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "controller", "crds"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "kind: CustomResourceDefinition" in done.stdout
    assert list(tmp_path.iterdir()) == []
