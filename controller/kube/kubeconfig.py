"""Credentials for the API server, read without the kubernetes package.

Importing the kubernetes client costs ~68 MB of RSS (its ~700 model classes load at
import): over a quarter of the operator's memory at 10,000 Scenes, and kopf imports it
at start-up whenever it is installed. The operator needs only the server, the TLS files
and a token: read here from the kubeconfig (the current context) or, in a pod, from the
service account, whose token file is re-read every minute as client-go does (tokens
rotate). A kubeconfig that needs the library's extras (exec plugins, auth providers,
basic auth, a proxy, several files in KUBECONFIG) returns None: the caller then loads
the library after all.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_SECONDS = 60.0
_SUPPORTED_USER = {"token", "tokenFile", "client-certificate", "client-certificate-data",
                   "client-key", "client-key-data"}  # fmt: skip
_SUPPORTED_CLUSTER = {"server", "certificate-authority", "certificate-authority-data",
                      "insecure-skip-tls-verify"}  # fmt: skip


@dataclass
class Connection:
    """What KubeApi reads of a kubernetes.client.Configuration, and nothing more."""

    host: str
    verify_ssl: bool = True
    ssl_ca_cert: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    _read_at: float = field(default=float("-inf"), repr=False)

    def bearer(self) -> str | None:
        if self.token_file and time.monotonic() - self._read_at >= TOKEN_REREAD_SECONDS:
            self.token = Path(self.token_file).read_text().strip() or None
            self._read_at = time.monotonic()
        return self.token

    def get_api_key_with_prefix(self, identifier: str, alias: str | None = None) -> str | None:
        token = self.bearer()
        return (
            f"Bearer {token}" if token and identifier in ("authorization", "BearerToken") else None
        )


def load(kubeconfig: str | None = None) -> Connection | None:
    """The current context of the kubeconfig (the argument, else $KUBECONFIG, else
    ~/.kube/config) if there is one, else the pod's service account; None when neither
    can be read here."""
    paths = [kubeconfig] if kubeconfig else _env_paths()
    if len(paths) > 1:
        return None  # merged kubeconfigs: the library's rules
    path = Path(paths[0]).expanduser() if paths else Path.home() / ".kube" / "config"
    if path.exists():
        return from_kubeconfig(path)
    if kubeconfig:
        return None  # the library says why it cannot be read
    return in_cluster()


def _env_paths() -> list[str]:
    return [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]


def from_kubeconfig(path: Path) -> Connection | None:
    doc: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    current = doc.get("current-context")
    context = _named(doc.get("contexts"), current).get("context") or {}
    cluster = _named(doc.get("clusters"), context.get("cluster")).get("cluster") or {}
    user = _named(doc.get("users"), context.get("user")).get("user") or {}
    if (
        not cluster.get("server")
        or set(cluster) - _SUPPORTED_CLUSTER
        or set(user) - _SUPPORTED_USER
    ):
        return None
    base = path.parent
    return Connection(
        host=str(cluster["server"]),
        verify_ssl=not cluster.get("insecure-skip-tls-verify", False),
        ssl_ca_cert=_file(base, cluster, "certificate-authority"),
        cert_file=_file(base, user, "client-certificate"),
        key_file=_file(base, user, "client-key"),
        token=user.get("token"),
        token_file=str(base / user["tokenFile"]) if user.get("tokenFile") else None,
    )


def in_cluster() -> Connection | None:
    host, port = (
        os.environ.get("KUBERNETES_SERVICE_HOST"),
        os.environ.get("KUBERNETES_SERVICE_PORT"),
    )
    token = SERVICE_ACCOUNT / "token"
    if not host or not port or not token.exists():
        return None
    host = f"[{host}]" if ":" in host else host  # IPv6
    ca = SERVICE_ACCOUNT / "ca.crt"
    return Connection(
        host=f"https://{host}:{port}",
        ssl_ca_cert=str(ca) if ca.exists() else None,
        token_file=str(token),
    )


def _named(items: Any, name: Any) -> dict[str, Any]:
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name:
            return item
    return {}


def _file(base: Path, section: dict[str, Any], key: str) -> str | None:
    """A path from `key`, or `key`-data written to a private temporary file."""
    if section.get(key):
        return str(base / section[key])
    data = section.get(f"{key}-data")
    if not data:
        return None
    fd, name = tempfile.mkstemp(prefix="scene-operator-kube-")
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64decode(data))
    atexit.register(_remove, name)
    return name


def _remove(name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name)
