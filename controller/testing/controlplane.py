"""A real, throw-away Kubernetes control plane for tests (no Docker, no kubelet).

etcd + kube-apiserver + kube-controller-manager (garbage collector and namespace
controllers only) on free loopback ports, with a temporary data dir, token auth and RBAC.
Binaries come from ``scripts/build-control-plane.sh`` (KUBEBUILDER_ASSETS, PATH, cache,
or a one-time build from Debian's source; see shared/reference/control-plane.md).

Set ``SCENE_OPERATOR_TEST_KUBECONFIG`` to use an existing cluster instead.
``service_account_kubeconfig`` gives a kubeconfig that acts as a ServiceAccount on either.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import yaml

from controller.testing.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-control-plane.sh"
EXISTING_KUBECONFIG_ENV = "SCENE_OPERATOR_TEST_KUBECONFIG"


class ControlPlaneError(RuntimeError):
    pass


def binaries() -> Path:
    """Folder with etcd, kube-apiserver and kube-controller-manager (builds once if needed)."""
    proc = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise ControlPlaneError(
            f"{BUILD_SCRIPT} failed (exit {proc.returncode}):\n{_tail_text(proc.stderr, 40)}"
        )
    return Path(lines[-1])


def kubectl_path() -> str:
    found = shutil.which("kubectl") or shutil.which("kubectl", path="/usr/bin")
    if not found:
        raise ControlPlaneError("kubectl not found on PATH")
    return found


def kustomize_build(path: Path) -> list[dict[str, Any]]:
    """The documents `kubectl kustomize PATH` renders (no cluster needed)."""
    proc = subprocess.run(
        [kubectl_path(), "kustomize", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise ControlPlaneError(f"kubectl kustomize {path}: {proc.stderr.strip()}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


# --- child process hygiene -------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
try:
    _libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # not Linux/glibc: rely on atexit and explicit stop() only
    _libc = None


def _preexec(parent_pid: int) -> None:
    # Runs in the child between fork and exec: if the test process dies without running
    # atexit (SIGKILL, SIGTERM), the kernel kills the child too. The death signal fires
    # when the *forking thread* exits, so this is only used when forking from the main thread.
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # parent already gone before prctl took effect
        os._exit(1)


class _Process:
    """One child in its own process group, logging to a file."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        main = threading.current_thread() is threading.main_thread()
        parent = os.getpid()
        self.popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Own session: a terminal Ctrl-C does not hit the children before our orderly stop,
            # and killpg() also reaches anything they fork.
            start_new_session=True,
            preexec_fn=(lambda: _preexec(parent)) if main else None,
        )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds (at once if grace is 0)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
            try:
                self.popen.wait(grace if grace > 0 else None)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._log.close()

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return f"--- {self.name} ({self.log_path}) ---\n{_tail_text(text, lines)}"


def _tail_text(text: str, lines: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


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
        self._etcd: _Process | None = None
        self._apiserver: _Process | None = None
        self._kcm: _Process | None = None
        self._bins: dict[str, str] = {}
        self.startup_seconds: float | None = None

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
        }
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
            self._start_kcm()
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
        self._apiserver = _Process(
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
        self._etcd = _Process(
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
        self._kcm = _Process(
            "kube-controller-manager",
            [
                self._bins["kube-controller-manager"],
                f"--kubeconfig={self.kubeconfig}",
                "--controllers=garbagecollector,namespace",
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

    def _wait_http(self, proc: _Process | None, url: str, ok: Callable[[str], bool]) -> None:
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
            proc: _Process | None = getattr(self, attr)
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


# --- an existing cluster ------------------------------------------------------------------


class ExistingCluster:
    """Same surface as ControlPlane for a cluster someone else runs; start/stop do nothing."""

    def __init__(self, kubeconfig: str | os.PathLike[str]) -> None:
        self._kubeconfig = str(Path(kubeconfig).expanduser().resolve())
        config = yaml.safe_load(Path(self._kubeconfig).read_text()) or {}
        current = config.get("current-context")
        context = _named(config.get("contexts"), current).get("context", {})
        self.server: str = (
            _named(config.get("clusters"), context.get("cluster"))
            .get("cluster", {})
            .get("server", "")
        )
        self.token: str | None = (
            _named(config.get("users"), context.get("user")).get("user", {}).get("token")
        )
        self.startup_seconds: float | None = 0.0

    @property
    def kubeconfig(self) -> str:
        return self._kubeconfig

    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": self._kubeconfig}

    def start(self) -> ExistingCluster:
        return self

    def stop(self) -> None:
        pass

    def __enter__(self) -> ExistingCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def restart_apiserver(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError("cannot stop or start the API server of an existing cluster")

    stop_apiserver = start_apiserver = restart_apiserver


def _named(items: Iterable[dict[str, Any]] | None, name: str | None) -> dict[str, Any]:
    return next((i for i in items or () if i.get("name") == name), {})


def from_env(kubeconfig: str | None = None) -> ControlPlane | ExistingCluster:
    """ExistingCluster if a kubeconfig is given (or in the env), else an unstarted ControlPlane."""
    kubeconfig = kubeconfig or os.environ.get(EXISTING_KUBECONFIG_ENV)
    return ExistingCluster(kubeconfig) if kubeconfig else ControlPlane()


# --- kubectl and CRDs ---------------------------------------------------------------------


class KubectlError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout: {self.stdout}\nstderr: {self.stderr}"


class Kubectl:
    """``kubectl(*args, input=None, check=True)`` bound to one kubeconfig."""

    def __init__(self, kubeconfig: str, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.binary = kubectl_path()
        # A private discovery cache: ports are reused across sessions with different CRDs.
        self.cache_dir = str(cache_dir) if cache_dir else None

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        argv = [self.binary, f"--kubeconfig={self.kubeconfig}"]
        if self.cache_dir:
            argv.append(f"--cache-dir={self.cache_dir}")
        argv += args
        proc = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, argv, proc.stdout, proc.stderr)
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)


def install_crds(
    kubeconfig: str,
    paths: Iterable[str | os.PathLike[str]],
    *,
    timeout: float = 60.0,
    kubectl: Kubectl | None = None,
) -> list[str]:
    """Server-side apply CRD files; wait until Established and listable; return the CRD names."""
    kubectl = kubectl or Kubectl(kubeconfig)
    names: list[str] = []
    for path in paths:
        for doc in yaml.safe_load_all(Path(path).read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                names.append(doc["metadata"]["name"])
        kubectl(
            "apply", "--server-side", "--force-conflicts",
            "--field-manager=scene-operator-tests", "-f", str(path),
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    for name in names:
        kubectl(
            "wait", "--for=condition=Established", f"crd/{name}",
            f"--timeout={max(1, int(deadline - time.monotonic()))}s",
        )  # fmt: skip
        # Established can precede the resource showing up in discovery by a moment.
        while (
            proc := kubectl("get", name, "--all-namespaces", "-o", "name", check=False)
        ).returncode:
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"CRD {name} established but not served: {proc.stderr}")
            time.sleep(0.2)
    return names


# --- other identities ---------------------------------------------------------------------
#
# Tests that must act as someone other than the admin (e.g. the operator as its
# ServiceAccount, to prove its RBAC is enough) get a real, bound ServiceAccount token from
# the TokenRequest API rather than a static token: it works the same on the local control
# plane (started with a service-account signing key) and on an existing cluster, and the
# API server authenticates it exactly as it does a Pod's projected token (user
# system:serviceaccount:NS:NAME, groups system:serviceaccounts[:NS], system:authenticated).


def kubeconfig_with_token(
    kubeconfig: str | os.PathLike[str],
    token: str,
    path: str | os.PathLike[str],
    *,
    user: str = "token-user",
) -> str:
    """Write a kubeconfig at ``path``: the cluster of ``kubeconfig``'s current context,
    authenticated only by the bearer ``token``. Returns the path."""
    source = Path(kubeconfig).expanduser().resolve()
    config = yaml.safe_load(source.read_text()) or {}
    current = _named(config.get("contexts"), config.get("current-context")).get("context", {})
    cluster_name = current.get("cluster")
    cluster = dict(_named(config.get("clusters"), cluster_name).get("cluster", {}))
    if not cluster.get("server"):
        raise ControlPlaneError(f"{source}: no server in the current context's cluster")
    ca = cluster.get("certificate-authority")
    if ca and not Path(ca).is_absolute():  # relative to the file it came from
        cluster["certificate-authority"] = str(source.parent / ca)
    out = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name or "cluster", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": user, "context": {"cluster": cluster_name or "cluster", "user": user}}
        ],
        "current-context": user,
    }
    target = Path(path)
    target.write_text(yaml.safe_dump(out, sort_keys=False))
    target.chmod(0o600)
    return str(target)


def service_account_token(
    kubectl: Kubectl, namespace: str, name: str, *, duration_seconds: int = 3600
) -> str:
    """A bound token for ServiceAccount ``namespace/name`` (TokenRequest API, via
    ``kubectl create token``); the ServiceAccount must exist."""
    proc = kubectl(
        "create", "token", name, f"--namespace={namespace}", f"--duration={duration_seconds}s"
    )
    token = proc.stdout.strip()
    if not token:
        raise ControlPlaneError(f"no token for serviceaccount {namespace}/{name}: {proc.stderr}")
    return token


def service_account_kubeconfig(
    kubectl: Kubectl,
    namespace: str,
    name: str,
    path: str | os.PathLike[str],
    *,
    duration_seconds: int = 3600,
) -> str:
    """A kubeconfig at ``path`` that authenticates as ServiceAccount ``namespace/name`` on
    ``kubectl``'s cluster (what the operator's Pod would use in-cluster). Returns the path."""
    token = service_account_token(kubectl, namespace, name, duration_seconds=duration_seconds)
    return kubeconfig_with_token(
        kubectl.kubeconfig, token, path, user=f"system:serviceaccount:{namespace}:{name}"
    )
