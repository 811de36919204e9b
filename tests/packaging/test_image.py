"""The image, built and run: the operator from it, confined as the Deployment confines it,
takes a Project to Ready with its film assembled.

scripts/build-image.sh builds the image (podman; a local Debian base where no registry
answers) or finds it cached for the same inputs. The container then runs read-only as uid
65532 with no capabilities, /tmp a size-limited tmpfs and the Deployment's env and limits
(tests/packaging/image.py), against the local control plane and S3 server on the host
network, with the offline local planner and renderer.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import config as k8s_config

import controller
from controller.api import vocabulary as v
from controller.demo.cluster import Kubectl
from controller.demo.free_ports import free_port
from tests.integration.helpers import Cluster, condition, is_true, metric_sum, wait_project
from tests.packaging.image import Container, build_image, podman
from tests.support.video import durations

pytestmark = pytest.mark.integration

SECONDS = 2  # per clip
SCENES = 2
MAX_IMAGE_BYTES = 600 * 1024 * 1024


@pytest.fixture(scope="session")
def image() -> str:
    return build_image()


@pytest.fixture
def container_kubeconfig(kubectl: Kubectl, tmp_path: Path) -> Path:
    """The test cluster's kubeconfig in one file (certificates inlined), readable by 65532."""
    text = kubectl("config", "view", "--raw", "--flatten", "--minify").stdout
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    path.chmod(0o644)
    return path


@pytest.fixture
def container(
    image: str,
    container_kubeconfig: Path,
    namespace: str,
    crds_installed: list[str],
    s3,
    request: pytest.FixtureRequest,
) -> Iterator[Container]:
    c = Container(
        image=image,
        name=f"scene-operator-test-{secrets.token_hex(4)}",
        kubeconfig=container_kubeconfig,
        namespace=namespace,
        liveness_port=free_port(),
        metrics_port=free_port(),
        env={
            # What the Secret scene-operator-credentials would give (envFrom): S3 access.
            **s3.env(),
            "SCENE_OPERATOR_BUCKET": s3.bucket,
            "SCENE_OPERATOR_S3_PREFIX": f"image-test/{secrets.token_hex(3)}",
            # test timings, as the integration tests' operator has them
            "SCENE_OPERATOR_POLL_INITIAL_SECONDS": "0.3",
            "SCENE_OPERATOR_POLL_MAX_SECONDS": "1",
        },
    )
    try:
        yield c
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            print(f"--- container log {c.name} ---\n{c.logs()[-8000:]}")
        c.remove()


def test_the_image_is_the_release(image: str) -> None:
    inspect = json.loads(podman("image", "inspect", image).stdout)[0]
    config = inspect["Config"]
    assert config["Labels"]["org.opencontainers.image.version"] == controller.__version__
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["python", "-m", "controller", "run"]
    # the HEALTHCHECK is kept (the docker format: OCI has none)
    assert "/healthz" in " ".join(inspect["Healthcheck"]["Test"])
    size = int(inspect["Size"])
    print(f"image {image}: {size / 1e6:.0f} MB")
    assert size < MAX_IMAGE_BYTES, f"the image grew to {size / 1e6:.0f} MB"


def test_the_operator_runs_from_the_image_as_the_deployment_runs_it(
    container: Container, kubeconfig: str, kubectl: Kubectl, namespace: str, s3
) -> None:
    container.start()
    startup = container.wait_healthy()
    print(f"container start to /healthz: {startup:.2f} s")

    # Confined as in the pod: uid 65532, nothing writable outside /tmp.
    assert container.exec("id", "-u").stdout.strip() == "65532"
    write = container.exec("python", "-c", "open('/opt/venv/x', 'w')")
    assert write.returncode != 0 and "Read-only file system" in write.stderr, write.stderr
    assert container.exec("python", "-c", "open('/tmp/x', 'w').write('ok')").returncode == 0
    # the image's HEALTHCHECK, run now
    assert podman("healthcheck", "run", container.name, check=False).returncode == 0

    cluster = Cluster(k8s_config.new_client_from_config(config_file=kubeconfig))
    manifest = {
        "apiVersion": v.API_VERSION,
        "kind": v.PROJECT_KIND,
        "metadata": {"name": "boxed"},
        "spec": {
            "prompt": "A paper boat sails down a rainy street",
            "mode": "AdCreative",
            "scenes": {"count": SCENES, "durationSeconds": SECONDS},
            "planner": {"provider": "local"},
            "video": {"provider": "local"},
            "generateVideos": True,
        },
    }
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    project = wait_project(cluster, namespace, "boxed", timeout=180)
    assert is_true(project, "Assembled"), project["status"]
    assert condition(project, "Assembled")["reason"] == "VideoAssembled"
    final = project["status"]["finalVideo"]
    head = s3.client.head_object(Bucket=s3.bucket, Key=final["s3Key"])
    assert head["ContentLength"] == final["size"]
    assert head["Metadata"]["sha256"] == final["sha256"]
    with tempfile.TemporaryDirectory() as d:
        film = Path(d) / "film.mp4"
        s3.client.download_file(s3.bucket, final["s3Key"], str(film))
        assert abs(durations(film)["video"] - SCENES * SECONDS) < 0.5
    assert len(cluster.scenes(namespace, "boxed")) == SCENES
    assert metric_sum(container.metrics(), "scene_operator_assemblies_total") == 1

    # SIGTERM, as the kubelet stops a pod: a clean exit within the grace period.
    assert container.stop() == 0, container.logs()[-4000:]
