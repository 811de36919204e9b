"""The wheel a production install gets holds the operator, and nothing of the tests.

Built with pip from a copy of the repository (an in-tree build would leave build/ and
*.egg-info behind), the same way the Dockerfile builds it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Test-only code: every module of the test-support package and of the benchmark harness.
TEST_ONLY = sorted(
    p.name for d in ("tests/support", "benchmarks") for p in (ROOT / d).glob("*.py")
    if p.name != "__init__.py"
)  # fmt: skip
IMPORTS_TEST_CODE = re.compile(r"^\s*(from|import)\s+(tests|benchmarks)\b", re.M)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    src = tmp_path_factory.mktemp("src") / "scene-operator"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "__pycache__", "build", "dist", "*.egg-info", ".hypothesis",
            ".pytest_cache", ".ruff_cache", "demo-output", "results",
        ),
    )  # fmt: skip
    out = tmp_path_factory.mktemp("wheels")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", out, src],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (built,) = out.glob("scene_operator-*.whl")
    return zipfile.ZipFile(built)


def test_the_test_only_modules_are_known() -> None:
    # The lists below are derived from the tree; make sure they are not empty by accident.
    for name in ("bench.py", "replicate_server.py", "veo_server.py", "gemini_server.py"):
        assert name in TEST_ONLY
    assert {"faults.py", "protocol.py", "operator_process.py", "kubeconfigs.py"} <= set(TEST_ONLY)


def test_wheel_holds_the_operator_cli_and_the_demo(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for module in (
        "controller/__main__.py",
        "controller/app",  # a module or a package
        "controller/demo/run.py",
        "controller/demo/controlplane.py",
        "controller/demo/s3server.py",
        "controller/plugin/cli.py",
    ):
        assert any(n == module or n.startswith((f"{module}.py", f"{module}/")) for n in names), (
            module
        )


def test_wheel_installs_the_two_commands(wheel: zipfile.ZipFile) -> None:
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry_points).decode()
    assert "scene-operator = controller.__main__:main" in text
    assert "kubectl-video = controller.plugin.cli:main" in text


def test_wheel_holds_no_test_servers_fault_proxy_or_benchmark(wheel: zipfile.ZipFile) -> None:
    packages = {n.split("/")[0] for n in wheel.namelist() if not n.endswith(".dist-info/")}
    assert {p for p in packages if not p.endswith(".dist-info")} == {"controller"}
    modules = [n for n in wheel.namelist() if n.endswith(".py")]
    leaked = [n for n in modules if Path(n).name in TEST_ONLY]
    assert not leaked, leaked
    assert not [n for n in modules if n.startswith("controller/testing/")]


def test_no_product_module_imports_test_code(wheel: zipfile.ZipFile) -> None:
    offenders = [
        n
        for n in wheel.namelist()
        if n.endswith(".py") and IMPORTS_TEST_CODE.search(wheel.read(n).decode())
    ]
    assert not offenders, offenders
