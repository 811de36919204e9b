"""A real, throw-away Kubernetes control plane (no Docker, no kubelet) for the demo and tests.

etcd + kube-apiserver + kube-controller-manager (the garbage collector, namespace and
ClusterRole aggregation controllers only) on free loopback ports, with a temporary data
dir, token auth and RBAC. Binaries come from KUBEBUILDER_ASSETS, the cache
``scripts/build-control-plane.sh`` fills (a one-time build from Debian's source package),
or PATH: ``binaries()``. A
folder without kube-controller-manager (envtest's bundles have none) gives a control
plane without garbage collection: ``garbage_collection`` says which one runs.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

from controller.demo.binaries import binaries
from controller.demo.cluster import ControlPlaneError
from controller.demo.free_ports import free_port
from controller.demo.processes import Process


def _default_base_dir() -> str | None:
    # etcd fsyncs on every write; tmpfs makes that free. Docker's 64 MB /dev/shm is too
    # small for etcd's 64 MB WAL preallocation, so require some headroom.
    shm = Path("/dev/shm")
    try:
        st = os.statvfs(shm)
        if os.access(shm, os.W_OK) and st.f_bavail * st.f_frsize > 1 << 30:
            return str(shm)
    except OSError:
        pass
    return None


_DIR_PREFIX = "scene-operator-cp-"


def _sweep_stale_dirs(base: str | None) -> None:
    # A SIGKILLed test run cannot clean up; reclaim its data dir (tmpfs memory) next time.
    for d in Path(base or tempfile.gettempdir()).glob(f"{_DIR_PREFIX}*"):
        try:
            pid = int((d / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except PermissionError:  # alive, someone else's
            pass


# --- the control plane --------------------------------------------------------------------


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager on loopback; ``with ControlPlane():``."""

    def __init__(
        self,
        bin_dir: str | os.PathLike[str] | None = None,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        keep_data_dir: bool = False,
        startup_timeout: float = 60.0,
    ) -> None:
        self._bin_dir = Path(bin_dir) if bin_dir else None
        self._given_dir = Path(data_dir) if data_dir else None
        self.keep_data_dir = keep_data_dir
        self.startup_timeout = startup_timeout
        self.dir: Path | None = None
        self.token = secrets.token_hex(16)
        self.etcd_port = self.etcd_peer_port = self.apiserver_port = self.kcm_port = 0
        self._etcd: Process | None = None
        self._apiserver: Process | None = None
        self._kcm: Process | None = None
        self._bins: dict[str, str] = {}
        self.startup_seconds: float | None = None
        self.garbage_collection = False  # True once a kube-controller-manager runs

    binaries = staticmethod(binaries)

    # -- public surface ----------------------------------------------------------------

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> str:
        return str(self._require_dir() / "kubeconfig")

    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": self.kubeconfig}

    def start(self) -> ControlPlane:
        if self.dir is not None:
            raise ControlPlaneError("already started")
        began = time.monotonic()
        bin_dir = self._bin_dir or binaries()
        self._bins = {
            name: str(bin_dir / name)
            for name in ("etcd", "kube-apiserver", "kube-controller-manager")
            if os.access(bin_dir / name, os.X_OK)
        }
        if missing := {"etcd", "kube-apiserver"} - set(self._bins):
            raise ControlPlaneError(f"{bin_dir} has no {' or '.join(sorted(missing))}")
        if self._given_dir:
            self._given_dir.mkdir(parents=True, exist_ok=True)
            self.dir = self._given_dir
        else:
            base = _default_base_dir()
            _sweep_stale_dirs(base)
            self.dir = Path(tempfile.mkdtemp(prefix=_DIR_PREFIX, dir=base))
            (self.dir / "owner.pid").write_text(str(os.getpid()))
        atexit.register(self._atexit)
        try:
            self._write_credentials()
            self.etcd_port, self.etcd_peer_port = free_port(), free_port()
            self.apiserver_port, self.kcm_port = free_port(), free_port()
            self._write_kubeconfig()
            self._start_etcd()
            self.start_apiserver()
            if "kube-controller-manager" in self._bins:
                self._start_kcm()
                self.garbage_collection = True
            self._wait_default_namespace()
        except BaseException as exc:  # also KeyboardInterrupt: never leave children behind
            logs, failed_dir = self._tails(), self.dir
            if isinstance(exc, ControlPlaneError):
                # Dir kept for diagnosis; a later start() sweeps it once this process is gone.
                self._shutdown(remove_dir=False)
                raise ControlPlaneError(f"{exc}\ndata dir kept: {failed_dir}\n{logs}") from None
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        self._shutdown(remove_dir=not self.keep_data_dir and self._given_dir is None)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop_apiserver(self, grace: float = 3.0) -> None:
        """Take the API server down (etcd and the controller manager keep running).

        The 1.20 API server drains in-flight requests on SIGTERM, and it counts some of
        the controller manager's watches among them, so a graceful stop can hang until
        SIGKILL; ``grace=0`` kills at once, like a crash. Its state is all in etcd.
        """
        if self._apiserver is not None:
            self._apiserver.stop(grace)
            self._apiserver = None

    def start_apiserver(self) -> None:
        """(Re)start the API server on the same port with the same certs and wait for /readyz."""
        if self._apiserver is not None and self._apiserver.alive():
            return
        d = self._require_dir()
        self._apiserver = Process(
            "kube-apiserver",
            [
                self._bins["kube-apiserver"],
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                f"--secure-port={self.apiserver_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--cert-dir={d / 'certs'}",  # self-signed, generated once, reused on restart
                f"--token-auth-file={d / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={d / 'sa.pub'}",
                f"--service-account-signing-key-file={d / 'sa.key'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                # The "kubernetes" Service cannot point at loopback; skip it instead of
                # logging an error every 10 s.
                "--endpoint-reconciler-type=none",
            ],
            d / "kube-apiserver.log",
        )
        self._wait_http(self._apiserver, f"{self.server}/readyz", lambda body: body.strip() == "ok")

    def restart_apiserver(self, downtime: float = 0.0, grace: float = 3.0) -> None:
        """Stop and start only the API server on the same port (resilience tests)."""
        self.stop_apiserver(grace)
        if downtime:
            time.sleep(downtime)
        self.start_apiserver()

    # -- internals -----------------------------------------------------------------------

    def _require_dir(self) -> Path:
        if self.dir is None:
            raise ControlPlaneError("control plane not started")
        return self.dir

    def _write_credentials(self) -> None:
        d = self._require_dir()
        key_pem, pub_pem = _rsa_keypair()
        (d / "sa.key").write_bytes(key_pem)
        (d / "sa.key").chmod(0o600)
        (d / "sa.pub").write_bytes(pub_pem)
        (d / "tokens.csv").write_text(f"{self.token},admin,admin,system:masters\n")

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "scene-operator-test",
                    "cluster": {"server": self.server, "insecure-skip-tls-verify": True},
                }
            ],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": "scene-operator-test",
                    "context": {"cluster": "scene-operator-test", "user": "admin"},
                }
            ],
            "current-context": "scene-operator-test",
        }
        path = Path(self.kubeconfig)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)

    def _start_etcd(self) -> None:
        d = self._require_dir()
        url = f"http://127.0.0.1:{self.etcd_port}"
        self._etcd = Process(
            "etcd",
            [
                self._bins["etcd"],
                f"--data-dir={d / 'etcd'}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{self.etcd_peer_port}",
                "--log-level=warn",
            ],
            d / "etcd.log",
        )
        self._wait_http(
            self._etcd, f"{url}/health", lambda b: json.loads(b).get("health") == "true"
        )

    def _start_kcm(self) -> None:
        d = self._require_dir()
        self._kcm = Process(
            "kube-controller-manager",
            [
                self._bins["kube-controller-manager"],
                f"--kubeconfig={self.kubeconfig}",
                "--controllers=garbagecollector,namespace,clusterrole-aggregation",
                "--leader-elect=false",
                "--port=0",  # no insecure port (default 10252 would clash between sessions)
                "--bind-address=127.0.0.1",
                f"--secure-port={self.kcm_port}",
                f"--cert-dir={d / 'kcm-certs'}",
            ],
            d / "kube-controller-manager.log",
        )
        # /healthz is always allowed without authentication on the controller manager.
        self._wait_http(
            self._kcm, f"https://127.0.0.1:{self.kcm_port}/healthz", lambda b: b == "ok"
        )

    def _wait_default_namespace(self) -> None:
        # The bootstrap controller creates "default" shortly after /readyz; tests want it.
        self._wait_http(
            self._apiserver,
            f"{self.server}/api/v1/namespaces/default",
            lambda b: json.loads(b).get("status", {}).get("phase") == "Active",
        )

    def _wait_http(self, proc: Process | None, url: str, ok: Callable[[str], bool]) -> None:
        assert proc is not None
        deadline = time.monotonic() + self.startup_timeout
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        last = ""
        while True:
            if not proc.alive():
                raise ControlPlaneError(f"{proc.name} exited with {proc.popen.returncode}")
            req = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
            try:
                with urllib.request.urlopen(req, timeout=2, context=ctx) as resp:
                    body = resp.read().decode()
                    if ok(body):
                        return
                    last = body[:200]
            except (OSError, ValueError) as exc:  # refused, TLS not up yet, 5xx, bad JSON
                last = str(exc)
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{proc.name} not ready after {self.startup_timeout:.0f}s at {url}: {last}"
                )
            time.sleep(0.1)

    def _stop_processes(self) -> None:
        # Reverse order: controllers first, storage last, so nothing logs errors on the way down.
        for attr in ("_kcm", "_apiserver", "_etcd"):
            proc: Process | None = getattr(self, attr)
            if proc is not None:
                proc.stop()
                setattr(self, attr, None)

    def _shutdown(self, remove_dir: bool) -> None:
        self._stop_processes()
        atexit.unregister(self._atexit)
        if remove_dir and self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def _tails(self) -> str:
        procs = (self._etcd, self._apiserver, self._kcm)
        return "\n".join(p.tail() for p in procs if p is not None)

    def _atexit(self) -> None:
        self.stop()


def _rsa_keypair() -> tuple[bytes, bytes]:
    """Service-account signing key pair, PEM (private key, public key)."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError:
        with tempfile.TemporaryDirectory() as tmp:
            key = Path(tmp) / "sa.key"
            subprocess.run(
                ["openssl", "genrsa", "-out", key, "2048"], check=True, capture_output=True
            )
            pub = subprocess.run(
                ["openssl", "rsa", "-in", key, "-pubout"], check=True, capture_output=True
            ).stdout
            return key.read_bytes(), pub
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return (
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
