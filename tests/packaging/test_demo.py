"""The demo's provider choice: keys in the shell never make it spend money by themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controller.demo.operator import OperatorProcess
from controller.demo.run import (
    DEMO_BUDGET,
    PROJECT,
    ProviderChoice,
    choose_providers,
    project_manifest,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "manifests" / "examples" / "local-demo.yaml"
FAKE_KEYS = {
    "GEMINI_API_KEY": "fake-gemini-key-123456",
    "GOOGLE_API_KEY": "fake-google-key-123456",
    "REPLICATE_API_TOKEN": "r8_fake-token-123456",
}


def test_keys_in_the_shell_still_give_local_providers_and_reach_no_operator() -> None:
    choice = choose_providers(False, {**FAKE_KEYS, "HOME": "/root"})
    assert (choice.planner, choice.video, choice.max_generations) == ("local", "local", None)
    assert set(choice.withheld) == set(FAKE_KEYS)
    assert choice.operator_env == {
        "SCENE_OPERATOR_DEFAULT_PLANNER": "local",
        "SCENE_OPERATOR_DEFAULT_VIDEO_PROVIDER": "local",
    }
    spec = project_manifest(choice)["spec"]
    assert spec["planner"] == {"provider": "local"} and spec["video"] == {"provider": "local"}
    assert "budget" not in spec


@pytest.mark.parametrize(
    ("keys", "planner", "video"),
    [
        pytest.param(FAKE_KEYS, "gemini", "replicate", id="both"),
        pytest.param({"REPLICATE_API_TOKEN": "r8_x"}, "local", "replicate", id="replicate-only"),
        pytest.param({"GOOGLE_API_KEY": "g"}, "gemini", "local", id="gemini-only"),
    ],
)
def test_real_providers_only_when_asked_and_then_with_a_budget(
    keys: dict[str, str], planner: str, video: str
) -> None:
    choice = choose_providers(True, keys)
    assert (choice.planner, choice.video) == (planner, video)
    assert choice.withheld == () and choice.operator_env == {}
    spec = project_manifest(choice)["spec"]
    assert spec["budget"] == {"maxGenerations": DEMO_BUDGET}
    assert spec["scenes"]["count"] >= DEMO_BUDGET  # one take per scene at most
    assert project_manifest(choose_providers(True, keys, 1))["spec"]["budget"] == {
        "maxGenerations": 1
    }


def test_real_providers_without_any_key_is_an_error() -> None:
    with pytest.raises(SystemExit, match="--real-providers needs"):
        choose_providers(True, {"GEMINI_API_KEY": ""})


def test_the_embedded_project_is_the_example_manifest() -> None:
    local = project_manifest(ProviderChoice("local", "local", None, withheld=()))
    assert local == yaml.safe_load(EXAMPLE.read_text()) == PROJECT


def test_withheld_variables_do_not_reach_the_operator_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in FAKE_KEYS.items():
        monkeypatch.setenv(key, value)
    op = OperatorProcess("/dev/null", env={"X": "1"}, unset=FAKE_KEYS, log_path=Path("/dev/null"))
    env = op.env()
    assert not set(FAKE_KEYS) & set(env)
    assert env["X"] == "1" and env["KUBECONFIG"] == "/dev/null"
    kept = OperatorProcess("/dev/null", log_path=Path("/dev/null")).env()
    assert kept["REPLICATE_API_TOKEN"] == FAKE_KEYS["REPLICATE_API_TOKEN"]


def test_the_kept_demos_example_is_the_example_manifest(tmp_path: Path) -> None:
    from controller.demo import keep

    committed = EXAMPLE.parent / keep.EXAMPLE_FILE
    written = keep.write_example(tmp_path)
    assert written.read_text() == committed.read_text()
    assert yaml.safe_load(committed.read_text()) == keep.EXAMPLE
    assert keep.EXAMPLE["metadata"]["name"] != PROJECT["metadata"]["name"]


def test_the_kept_demo_says_what_to_type_next(tmp_path: Path) -> None:
    from controller.demo import keep

    s3_env = {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:5000", "AWS_ACCESS_KEY_ID": "testing"}
    text = keep.hints(
        kubeconfig="/dev/shm/cp dir/kubeconfig", namespace="demo", example=tmp_path / "h.yaml",
        s3_env=s3_env, bucket="bk", operator_log=tmp_path / "operator.log",
    )  # fmt: skip
    assert "  export KUBECONFIG='/dev/shm/cp dir/kubeconfig'\n" in text
    assert f"  kubectl apply -n demo -f {tmp_path / 'h.yaml'}\n" in text
    assert "  kubectl video status --watch -n demo\n" in text
    assert "kubectl video open project/harbor -n demo" in text
    assert "S3 endpoint: http://127.0.0.1:5000 (bucket bk)" in text
    assert "export AWS_ACCESS_KEY_ID=testing AWS_ENDPOINT_URL_S3=http://127.0.0.1:5000" in text
    assert "Ctrl-C" in text
