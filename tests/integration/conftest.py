"""Fixtures for end-to-end tests: the operator as a real process, and cluster helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import config as k8s_config

from tests.integration.helpers import Cluster
from tests.support.operator_process import OperatorProcess


@pytest.fixture(scope="session")
def cluster(kubeconfig: str, crds_installed: list[str]) -> Cluster:
    return Cluster(k8s_config.new_client_from_config(config_file=kubeconfig))


OperatorFactory = Callable[..., OperatorProcess]


@pytest.fixture
def run_operator(
    kubeconfig: str, crds_installed: list[str], s3, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[OperatorFactory]:
    """Start `python -m controller run --namespace NS` with the local S3 server and fast
    timings; extra env overrides settings (and `kubeconfig_path` the kubeconfig). Stopped
    (and its log printed on failure) after."""
    started: list[OperatorProcess] = []

    def factory(
        namespace: str, env: dict[str, str] | None = None, kubeconfig_path: str | None = None
    ) -> OperatorProcess:
        base = {
            **s3.env(),
            "SCENE_OPERATOR_BUCKET": s3.bucket,
            "SCENE_OPERATOR_S3_PREFIX": f"t/{request.node.name[:40]}",
            "SCENE_OPERATOR_POLL_INITIAL_SECONDS": "0.3",
            "SCENE_OPERATOR_POLL_MAX_SECONDS": "1",
            # The fakes answer a create within seconds (the real client waits up to 30 s).
            "SCENE_OPERATOR_ORPHAN_SEARCH_AFTER_SECONDS": "5",
            "SCENE_OPERATOR_WORKERS": "8",
            # repair.intervalSeconds is at least 10 (the schema): 10 means a check every 2 s.
            "SCENE_OPERATOR_DRIFT_INTERVAL_SCALE": "0.2",
        }
        base.update(env or {})
        op = OperatorProcess(
            kubeconfig_path or kubeconfig,
            env=base,
            namespaces=[namespace],
            log_path=tmp_path / f"operator-{len(started)}.log",
        )
        op.start()
        started.append(op)
        op.wait_healthy()
        return op

    yield factory
    failed = getattr(request.node, "rep_call", None)
    for op in started:
        op.stop()
        if failed is not None and failed.failed:
            print(f"--- operator log {op.log_path} ---\n{op.logs()[-6000:]}")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
