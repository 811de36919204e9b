"""Output downloads only from the provider, within a deadline and a size cap, against a
real local HTTP server that redirects, drips and sends too much."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.providers.base import JobLostError, ProviderError
from controller.providers.fetch import (
    FetchRules,
    check_url,
    download,
    is_public,
    origin_of,
    write_bytes,
)
from controller.settings import Settings

BODY = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64  # 16 kB


class Server:
    """Threaded HTTP on 127.0.0.1; `targets` maps a path to a redirect location."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.redirects: dict[str, str] = {}
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                app.requests.append(self.path)
                app.headers.append(dict(self.headers.items()))
                app.serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def serve(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path
        if path in self.redirects:
            h.send_response(302)
            h.send_header("Location", self.redirects[path])
            h.send_header("Content-Length", "0")
            h.end_headers()
        elif path == "/clip":
            self._send(h, 200, BODY)
        elif path == "/gone":
            self._send(h, 404, b"gone")
        elif path == "/drip":  # 1,000 bytes announced, one every 50 ms
            h.send_response(200)
            h.send_header("Content-Length", "1000")
            h.end_headers()
            try:
                for _ in range(1000):
                    h.wfile.write(b"x")
                    h.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass  # the client gave up, as it should
        elif path == "/endless":  # no length: sends until the client stops reading
            h.send_response(200)
            h.send_header("Connection", "close")
            h.end_headers()
            try:
                for _ in range(10_000):
                    h.wfile.write(b"y" * 65536)
            except OSError:
                pass
        elif path == "/declared-big":
            h.send_response(200)
            h.send_header("Content-Length", str(10 * 1024 * 1024))
            h.end_headers()
        else:
            self._send(h, 500, b"?")

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        h.send_response(status)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)


@pytest.fixture
def api() -> Iterator[Server]:
    s = Server()
    yield s
    s.stop()


@pytest.fixture
def internal() -> Iterator[Server]:
    """Another service on loopback: what an attacker would point an output URL at."""
    s = Server()
    yield s
    s.stop()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as c:
        yield c


def rules_for(server: Server, **kw: Any) -> FetchRules:
    return FetchRules(hosts=(), origins=(origin_of(server.base_url) or "",), **kw)


def fetch_error(*args: Any, **kw: Any) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        download(*args, **kw)
    return info.value


def test_output_of_the_api_origin_is_fetched_through_an_allowed_redirect(
    api: Server, client: httpx.Client, tmp_path: Path
) -> None:
    api.redirects["/out"] = "/clip"
    dest = tmp_path / "clip.mp4"
    size = download(
        client,
        f"{api.base_url}/out",
        dest,
        rules_for(api),
        headers_for=lambda url: {"Authorization": "Bearer t"},
    )
    assert size == len(BODY) and dest.read_bytes() == BODY
    assert api.requests == ["/out", "/clip"]
    assert all(h.get("Authorization") == "Bearer t" for h in api.headers)


def test_redirect_to_another_host_is_refused_before_it_is_fetched(
    api: Server, internal: Server, client: httpx.Client, tmp_path: Path
) -> None:
    api.redirects["/out"] = f"{internal.base_url}/clip"
    err = fetch_error(client, f"{api.base_url}/out", tmp_path / "c.mp4", rules_for(api))
    assert (err.reason, err.retryable) == ("InvalidOutput", False)
    assert "refused" in err.message and "not https" in err.message
    assert internal.requests == []
    assert list(tmp_path.iterdir()) == []


def test_redirect_to_the_metadata_address_is_refused(
    api: Server, client: httpx.Client, tmp_path: Path
) -> None:
    api.redirects["/out"] = "https://169.254.169.254/latest/meta-data/iam?token=secret"
    err = fetch_error(client, f"{api.base_url}/out", tmp_path / "c.mp4", rules_for(api))
    assert err.reason == "InvalidOutput"
    assert "169.254.169.254 is not an allowed delivery host" in err.message
    assert "secret" not in err.message  # query strings (signatures) are not repeated


def test_endless_redirects_stop(api: Server, client: httpx.Client, tmp_path: Path) -> None:
    api.redirects["/loop"] = "/loop"
    err = fetch_error(client, f"{api.base_url}/loop", tmp_path / "c.mp4", rules_for(api))
    assert err.reason == "InvalidOutput" and "redirects" in err.message
    assert len(api.requests) == FetchRules().max_redirects + 1


def test_a_dripping_body_is_cut_off_at_the_total_deadline(
    api: Server, client: httpx.Client, tmp_path: Path
) -> None:
    began = time.monotonic()
    err = fetch_error(
        client, f"{api.base_url}/drip", tmp_path / "c.mp4", rules_for(api, deadline_seconds=1.0)
    )
    elapsed = time.monotonic() - began
    # Each byte arrives well within any read timeout; only a total deadline stops it.
    assert (err.reason, err.retryable) == ("DownloadTimeout", True)
    assert elapsed < 10, elapsed  # the drip alone would take 50 s
    assert list(tmp_path.iterdir()) == []


def test_a_body_over_the_cap_is_cut_off_while_streaming(
    api: Server, client: httpx.Client, tmp_path: Path
) -> None:
    cap = 1024 * 1024
    err = fetch_error(
        client, f"{api.base_url}/endless", tmp_path / "c.mp4", rules_for(api, max_bytes=cap)
    )
    assert (err.reason, err.retryable) == ("InvalidOutput", False)
    assert str(cap) in err.message
    assert list(tmp_path.iterdir()) == []  # the partial file is gone too


def test_a_declared_length_over_the_cap_is_refused_unread(
    api: Server, client: httpx.Client, tmp_path: Path
) -> None:
    err = fetch_error(
        client, f"{api.base_url}/declared-big", tmp_path / "c.mp4", rules_for(api, max_bytes=1000)
    )
    assert err.reason == "InvalidOutput" and str(10 * 1024 * 1024) in err.message


def test_gone_output_is_job_lost(api: Server, client: httpx.Client, tmp_path: Path) -> None:
    with pytest.raises(JobLostError):
        download(client, f"{api.base_url}/gone", tmp_path / "c.mp4", rules_for(api))


def resolver(*addresses: str):
    def resolve(host: str, port: int, **kw: Any) -> list[Any]:
        family = socket.AF_INET6 if ":" in addresses[0] else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    return resolve


@pytest.mark.parametrize(
    ("url", "addresses", "allowed"),
    [
        ("https://replicate.delivery/pbxt/a/out.mp4", ("104.18.1.1",), True),
        ("https://pbxt.replicate.delivery/a/out.mp4", ("104.18.1.1",), True),
        ("https://api.replicate.com/v1/files/x", ("104.18.1.1",), True),
        ("http://replicate.delivery/pbxt/a/out.mp4", ("104.18.1.1",), False),
        ("https://replicate.delivery.evil.example/out.mp4", ("104.18.1.1",), False),
        ("https://evilreplicate.delivery/out.mp4", ("104.18.1.1",), False),
        ("https://pbxt.replicate.delivery/a.mp4", ("10.0.0.7",), False),
        ("https://pbxt.replicate.delivery/a.mp4", ("169.254.169.254",), False),
        ("https://pbxt.replicate.delivery/a.mp4", ("127.0.0.1",), False),
        ("https://pbxt.replicate.delivery/a.mp4", ("::ffff:127.0.0.1",), False),
        ("https://pbxt.replicate.delivery/a.mp4", ("fe80::1",), False),
        ("https://pbxt.replicate.delivery/a.mp4", ("104.18.1.1", "192.168.1.2"), False),
        ("file:///etc/passwd", ("104.18.1.1",), False),
    ],
)
def test_delivery_hosts_and_public_addresses_only(
    url: str, addresses: tuple[str, ...], allowed: bool
) -> None:
    rules = FetchRules.from_settings(Settings())
    if allowed:
        check_url(url, rules, resolve=resolver(*addresses))
    else:
        with pytest.raises(ProviderError) as info:
            check_url(url, rules, resolve=resolver(*addresses))
        assert (info.value.reason, info.value.retryable) == ("InvalidOutput", False)


def test_private_addresses_can_be_allowed_and_origins_are_exact() -> None:
    settings = Settings(output_allow_private_addresses=True, output_allowed_hosts="mirror.local")
    check_url(
        "https://mirror.local/a.mp4", FetchRules.from_settings(settings), resolver("10.1.2.3")
    )
    rules = FetchRules.from_settings(Settings(), "http://127.0.0.1:8080")
    check_url("http://127.0.0.1:8080/files/a.mp4", rules)
    for other in ("http://127.0.0.1:8081/a.mp4", "http://localhost:8080/a.mp4"):
        with pytest.raises(ProviderError):
            check_url(other, rules)


def test_is_public() -> None:
    assert is_public("8.8.8.8") and is_public("2606:4700::1111")
    assert not any(map(is_public, ["10.0.0.1", "172.16.0.1", "127.0.0.1", "0.0.0.0", "::1"]))
    assert not is_public("not-an-address")


def test_inline_bytes_are_capped_and_written_to_disk(tmp_path: Path) -> None:
    dest = tmp_path / "clip.mp4"
    assert write_bytes(BODY, dest, FetchRules()) == len(BODY) and dest.read_bytes() == BODY
    with pytest.raises(ProviderError) as info:
        write_bytes(BODY, tmp_path / "big.mp4", FetchRules(max_bytes=len(BODY) - 1))
    assert (info.value.reason, info.value.retryable) == ("InvalidOutput", False)
    assert not (tmp_path / "big.mp4").exists()
