"""The scratch disk: the operator's caps must fit the disk it is given, or it does not start."""

from __future__ import annotations

import pytest

from controller.__main__ import main
from controller.settings import Settings

MiB = 1024 * 1024


def test_the_defaults_fit_the_shipped_2gi_emptydir() -> None:
    s = Settings(scratch_limit_mb=2048)
    assert s.scratch_needed_bytes() <= 2048 * MiB and s.scratch_problem() is None


def test_caps_over_the_scratch_size_are_named() -> None:
    s = Settings(scratch_limit_mb=2048, output_max_bytes=512 * MiB)
    problem = s.scratch_problem()
    assert problem is not None
    assert "SCENE_OPERATOR_SCRATCH_LIMIT_MB=2048" in problem
    assert "SCENE_OPERATOR_OUTPUT_MAX_BYTES (512 MiB)" in problem
    assert Settings().scratch_problem() is None  # no size given: nothing to check against


def test_the_operator_refuses_to_start_with_exit_78(monkeypatch, capsys) -> None:
    monkeypatch.setenv("SCENE_OPERATOR_SCRATCH_LIMIT_MB", "1024")
    monkeypatch.setenv("SCENE_OPERATOR_METRICS_PORT", "0")
    with pytest.raises(SystemExit) as exited:
        main(["run"])
    assert exited.value.code == 78
    err = capsys.readouterr().err
    assert "refusing to start" in err and "SCENE_OPERATOR_SCRATCH_LIMIT_MB=1024" in err


@pytest.mark.parametrize("limit", ["2048"])
def test_the_shipped_deployment_sets_the_limit_to_its_emptydir(limit: str) -> None:
    from pathlib import Path

    import yaml

    doc = yaml.safe_load((Path(__file__).parents[2] / "manifests/deployment.yaml").read_text())
    pod = doc["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    size = next(v["emptyDir"]["sizeLimit"] for v in pod["volumes"] if v["name"] == "tmp")
    assert size == "2Gi" and env["SCENE_OPERATOR_SCRATCH_LIMIT_MB"] == limit
    assert Settings(scratch_limit_mb=int(limit)).scratch_problem() is None
