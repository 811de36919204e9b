"""Shared fixtures: a real control plane (or an existing cluster), kubectl, CRDs, S3."""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controller.demo.cluster import ExistingCluster, Kubectl, install_crds
from controller.demo.controlplane import ControlPlane
from controller.demo.s3server import S3Server
from tests.support.kubeconfigs import EXISTING_KUBECONFIG_ENV, from_env
from tests.support.repo import REPO_ROOT

TESTS_DIR = Path(__file__).parent
INTEGRATION_DIR = TESTS_DIR / "integration"
RESILIENCE_DIR = TESTS_DIR / "resilience"
TEST_BUCKET = "scene-operator-test"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kubeconfig",
        default=None,
        metavar="PATH",
        help=f"run integration tests against this cluster (or set {EXISTING_KUBECONFIG_ENV}) "
        "instead of starting a local control plane",
    )


# --- parallel workers (pytest-xdist, `--dist loadgroup`; scripts/test.sh) -----------------
#
# Every worker has its own session fixtures: its own control plane, S3 server, temporary
# folders and port range (controller/demo/free_ports.py). A test file runs on one worker
# (its module fixtures are set up once), and the files whose tests time a hand-over, an
# outage or a kill share one worker, one test at a time, so they are never slowed down
# by a second operator run of their own kind on top of the rest of the suite's load.
TIMING_GROUP = "timing-sensitive"
TIMING_SENSITIVE = (RESILIENCE_DIR,)
# Against a cluster given by --kubeconfig every worker would share it, and some tests
# apply cluster-scoped objects of fixed names (tests/integration/test_manifests.py): all
# of the cluster's tests then run on one worker.
SHARED_CLUSTER_GROUP = "shared-cluster"


def _xdist_group(config: pytest.Config, item: pytest.Item) -> str:
    path = item.path
    on_cluster = path.is_relative_to(INTEGRATION_DIR) or path.is_relative_to(RESILIENCE_DIR)
    if on_cluster and (config.getoption("--kubeconfig") or os.environ.get(EXISTING_KUBECONFIG_ENV)):
        return SHARED_CLUSTER_GROUP
    if any(path == p or path.is_relative_to(p) for p in TIMING_SENSITIVE):
        return TIMING_GROUP
    return str(path.relative_to(TESTS_DIR))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(INTEGRATION_DIR):
            item.add_marker(pytest.mark.integration)
        item.add_marker(pytest.mark.xdist_group(_xdist_group(config, item)))


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane | ExistingCluster]:
    """A started local control plane, or the cluster given by --kubeconfig / the env."""
    cluster = from_env(request.config.getoption("--kubeconfig"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def garbage_collection(control_plane: ControlPlane | ExistingCluster) -> None:
    """For tests that need the garbage collector: skipped only when the control plane runs
    without kube-controller-manager (a KUBEBUILDER_ASSETS folder with none)."""
    if not control_plane.garbage_collection:
        pytest.skip(
            "needs garbage collection: the control plane runs no kube-controller-manager "
            "(KUBEBUILDER_ASSETS without one)"
        )


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane | ExistingCluster) -> str:
    return control_plane.kubeconfig


@pytest.fixture(scope="session")
def kubectl(kubeconfig: str, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    """``kubectl(*args, input=None, check=True) -> CompletedProcess``; ``kubectl.json(*args)``."""
    return Kubectl(kubeconfig, cache_dir=tmp_path_factory.mktemp("kubectl-cache"))


@pytest.fixture(scope="session")
def crds_installed(kubeconfig: str, kubectl: Kubectl) -> list[str]:
    """Every crds/*.yaml applied, Established and served; returns the CRD names."""
    paths = sorted((REPO_ROOT / "crds").glob("*.yaml"))
    if not paths:
        pytest.fail(f"no CRD files under {REPO_ROOT / 'crds'}")
    return install_crds(kubeconfig, paths, kubectl=kubectl)


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards without waiting."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{secrets.token_hex(3)}"
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        # The label lets someone sweep leftovers on a shared cluster.
        "metadata": {"name": name, "labels": {"scene-operator.io/test": "true"}},
    }
    kubectl("create", "-f", "-", input=json.dumps(manifest))
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@dataclass
class S3Fixture:
    server: S3Server
    bucket: str
    client: Any  # botocore S3 client

    @property
    def endpoint_url(self) -> str:
        return self.server.endpoint_url

    def env(self) -> dict[str, str]:
        """AWS_* variables that point boto3 (in this process or a subprocess) at the server."""
        return self.server.env()


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Fixture]:
    """A moto S3 server on loopback with the bucket "scene-operator-test"."""
    server = S3Server().start()
    try:
        client = server.client()
        client.create_bucket(Bucket=TEST_BUCKET)
        yield S3Fixture(server=server, bucket=TEST_BUCKET, client=client)
    finally:
        server.stop()
