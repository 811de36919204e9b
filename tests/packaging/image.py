"""The operator's image for tests: built by scripts/build-image.sh (cached), and run with
podman the way manifests/deployment.yaml runs it in a cluster."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = ROOT / "manifests" / "deployment.yaml"
# Debian's podman on these machines: crun refuses a cgroup v1/hybrid layout, and there may be
# no systemd (scripts/build-image.sh).
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]
KUBECONFIG_IN_CONTAINER = "/var/run/scene-operator/kubeconfig"


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode:
        raise AssertionError(f"podman {' '.join(args)}: {proc.stderr.strip()[-3000:]}")
    return proc


def build_image() -> str:
    """The image's reference (built now unless podman holds it for the same inputs)."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-image.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert proc.returncode == 0, f"build-image.sh failed:\n{proc.stderr[-5000:]}"
    return proc.stdout.strip().splitlines()[-1]


def operator_container() -> dict[str, Any]:
    (container,) = yaml.safe_load(DEPLOYMENT.read_text())["spec"]["template"]["spec"]["containers"]
    return container


def pod_spec() -> dict[str, Any]:
    return yaml.safe_load(DEPLOYMENT.read_text())["spec"]["template"]["spec"]


def podman_size(quantity: str) -> str:
    """A Kubernetes quantity (2Gi, 512Mi) as podman writes sizes (2g, 512m)."""
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", quantity)
    assert m, f"unexpected quantity {quantity}"
    return m.group(1) + m.group(2)[0].lower()


@dataclass
class Container:
    """`podman run` of the image as the Deployment's pod runs it.

    Translated from manifests/deployment.yaml (and asserted, so that a change there is seen
    here): the container's user and group, a read-only root filesystem with no other
    writable path than the emptyDir volumes (tmpfs of their sizeLimit), every capability
    dropped, no privilege escalation, the memory and CPU limits, the env (fieldRefs given
    the pod's name and namespace) and the image's own entrypoint. What a cluster gives a pod
    and a test cannot: the kubeconfig of the test control plane stands in for the service
    account, the Secret's AWS_* variables point at the local S3 server, the host network
    reaches both, and the scope is the test's namespace instead of --all-namespaces.
    """

    image: str
    name: str
    kubeconfig: Path
    namespace: str
    env: dict[str, str] = field(default_factory=dict)
    liveness_port: int = 8080
    metrics_port: int = 9090
    started_at: float = 0.0

    def run_args(self) -> list[str]:
        pod, container = pod_spec(), operator_container()
        sc = {**pod.get("securityContext", {}), **container["securityContext"]}
        assert sc["runAsNonRoot"] and sc["runAsUser"] != 0
        args = ["run", "--detach", "--name", self.name, "--network", "host"]
        args += ["--user", f"{sc['runAsUser']}:{sc['runAsGroup']}"]
        assert sc["readOnlyRootFilesystem"] is True
        # podman adds writable tmpfs on /run, /tmp and /var/tmp to --read-only unless told
        # not to: a pod gets none of them.
        args += ["--read-only", "--read-only-tmpfs=false"]
        assert sc["capabilities"] == {"drop": ["ALL"]}
        args += ["--cap-drop=ALL"]
        assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
        args += ["--security-opt", "no-new-privileges"]
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}  # podman's default profile
        volumes = {v["name"]: v for v in pod["volumes"]}
        for mount in container["volumeMounts"]:
            empty_dir = volumes[mount["name"]]["emptyDir"]
            size = podman_size(empty_dir["sizeLimit"])
            # an emptyDir is writable by the pod's fsGroup; a tmpfs of that size, mode 1777
            args += ["--tmpfs", f"{mount['mountPath']}:rw,size={size},mode=1777"]
        limits = container["resources"]["limits"]
        args += ["--memory", podman_size(limits["memory"]), "--cpus", str(limits["cpu"])]
        # The HEALTHCHECK runs on demand (podman healthcheck run): no systemd timer here.
        args += ["--health-interval", "disable"]
        args += ["--volume", f"{self.kubeconfig}:{KUBECONFIG_IN_CONTAINER}:ro"]
        for name, value in self.environment().items():
            args += ["--env", f"{name}={value}"]
        assert container.get("args") == ["--all-namespaces"]
        assert "command" not in container  # the image's ENTRYPOINT runs
        return [*args, self.image, "--namespace", self.namespace]

    def environment(self) -> dict[str, str]:
        container = operator_container()
        pod_fields = {"metadata.name": self.name, "metadata.namespace": self.namespace}
        env: dict[str, str] = {}
        for var in container["env"]:
            if "value" in var:
                env[var["name"]] = var["value"]
            else:
                env[var["name"]] = pod_fields[var["valueFrom"]["fieldRef"]["fieldPath"]]
        env.update(
            {
                "KUBECONFIG": KUBECONFIG_IN_CONTAINER,
                # host network: ports nobody else on this machine uses
                "SCENE_OPERATOR_LIVENESS_PORT": str(self.liveness_port),
                "SCENE_OPERATOR_METRICS_PORT": str(self.metrics_port),
            }
        )
        env.update(self.env)
        return env

    def start(self) -> Container:
        podman("rm", "--force", "--ignore", self.name)
        self.started_at = time.monotonic()
        podman(*self.run_args())
        return self

    def wait_healthy(self, timeout: float = 60) -> float:
        """Seconds from `podman run` to the first 200 from /healthz."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise AssertionError(f"the container exited:\n{self.logs()[-4000:]}")
            try:
                url = f"http://127.0.0.1:{self.liveness_port}/healthz"
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return time.monotonic() - self.started_at
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"not healthy after {timeout} s:\n{self.logs()[-4000:]}")

    def state(self) -> dict[str, Any]:
        import json

        return json.loads(podman("inspect", "--format", "{{json .State}}", self.name).stdout)

    def running(self) -> bool:
        return bool(self.state().get("Running"))

    def exec(self, *args: str) -> subprocess.CompletedProcess:
        return podman("exec", self.name, *args, check=False)

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()

    def logs(self) -> str:
        proc = podman("logs", self.name, check=False)
        return proc.stdout + proc.stderr

    def stop(self, grace: int = 30) -> int:
        """SIGTERM, then SIGKILL after `grace` s (terminationGracePeriodSeconds); the exit code."""
        podman("stop", "--time", str(grace), self.name, timeout=grace + 30)
        return int(self.state()["ExitCode"])

    def remove(self) -> None:
        podman("rm", "--force", "--ignore", self.name, check=False)
