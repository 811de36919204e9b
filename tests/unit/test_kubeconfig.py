"""Credentials read without the kubernetes package (controller/kube/kubeconfig.py): the
kubeconfig's current context, the pod's service account, and the operator process
that no longer imports the package (~68 MB)."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from controller.informer.handlers import connection_info
from controller.kube import kubeconfig


def write(path: Path, user: dict, cluster: dict | None = None) -> Path:
    doc = {
        "clusters": [
            {"name": "other", "cluster": {"server": "https://wrong:1"}},
            {"name": "c", "cluster": cluster or {"server": "https://api.example:6443"}},
        ],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_the_current_context_with_inline_certificates(tmp_path: Path) -> None:
    cluster = {"server": "https://api.example:6443", "certificate-authority-data": b64(b"CA")}
    user = {"client-certificate-data": b64(b"CERT"), "client-key-data": b64(b"KEY")}
    c = kubeconfig.load(str(write(tmp_path / "kc", user, cluster)))
    assert c is not None and c.host == "https://api.example:6443" and c.verify_ssl
    assert [Path(p).read_bytes() for p in (c.ssl_ca_cert, c.cert_file, c.key_file)] == [
        b"CA",
        b"CERT",
        b"KEY",
    ]
    assert c.get_api_key_with_prefix("authorization") is None


def test_a_token_an_insecure_server_and_kopfs_credentials(tmp_path: Path) -> None:
    cluster = {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}
    c = kubeconfig.load(str(write(tmp_path / "kc", {"token": "t0k"}, cluster)))
    assert c is not None and not c.verify_ssl
    assert c.get_api_key_with_prefix("authorization") == "Bearer t0k"
    info = connection_info(c)
    assert (info.server, info.scheme, info.token, info.insecure) == (
        "https://127.0.0.1:6443",
        "Bearer",
        "t0k",
        True,
    )


@pytest.mark.parametrize(
    "user",
    [
        {"exec": {"command": "aws", "args": ["eks", "get-token"]}},
        {"auth-provider": {"name": "oidc"}},
        {"username": "admin", "password": "secret"},
    ],
    ids=["exec", "auth-provider", "basic"],
)
def test_what_only_the_library_reads_is_left_to_it(tmp_path: Path, user: dict) -> None:
    assert kubeconfig.load(str(write(tmp_path / "kc", user))) is None


def test_in_cluster_the_token_file_is_read_again(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "token").write_text("first\n")
    (tmp_path / "ca.crt").write_text("CA")
    monkeypatch.setattr(kubeconfig, "SERVICE_ACCOUNT", tmp_path)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    c = kubeconfig.load()
    assert c is not None and c.host == "https://[fd00::1]:443"
    assert c.ssl_ca_cert == str(tmp_path / "ca.crt")
    assert c.get_api_key_with_prefix("BearerToken") == "Bearer first"
    (tmp_path / "token").write_text("rotated\n")
    assert c.bearer() == "first"  # within the minute: not read again
    monkeypatch.setattr(kubeconfig, "TOKEN_REREAD_SECONDS", 0.0)
    assert c.bearer() == "rotated"


def test_the_operator_process_does_not_import_the_kubernetes_package() -> None:
    code = (
        "import sys\n"
        "from controller.informer import handlers\n"
        "import controller.kube.client\n"
        "from controller.leaderelection import leadership\n"
        "from controller.app import Runtime\n"
        "print('kubernetes' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
