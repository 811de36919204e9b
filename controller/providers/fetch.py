"""Fetching a provider's output: only from the provider, within a deadline and a size cap.

An output URL comes from a provider's answer, so it is checked like any input before
anything is fetched (a URL pointing at an internal service must not be fetched, and its
answer must not be stored as a clip):

- https on an allowed delivery host (`hosts`: exact names or `*.suffix`), or exactly an
  allowed origin (`origins`: the API base URL, which test servers serve over http);
- every redirect hop is checked again (redirects are followed here, not by httpx);
- no private, loopback, link-local or otherwise non-public address, neither resolved
  before the request nor connected to (a DNS answer that changes in between is caught),
  unless `allow_private` or the URL is an allowed origin;
- one deadline for the whole download (a body that drips a byte at a time is cut off);
- at most `max_bytes`, streamed to disk (a file never grows past the cap).

Runs in a worker thread (synchronous httpx).
"""

from __future__ import annotations

import ipaddress
import socket
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from controller.api.vocabulary import Reason
from controller.providers import errors
from controller.providers.base import JobLostError, ProviderError

MiB = 1024 * 1024
REPLICATE_HOSTS = ("api.replicate.com", "replicate.delivery", "*.replicate.delivery")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_READ_TIMEOUT = 30.0  # no byte for this long: the connection is dead


@dataclass(frozen=True)
class FetchRules:
    hosts: tuple[str, ...] = REPLICATE_HOSTS
    origins: tuple[str, ...] = ()  # "scheme://host[:port]", allowed exactly as given
    allow_private: bool = False
    deadline_seconds: float = 300.0
    max_bytes: int = 512 * MiB
    max_redirects: int = 5

    @classmethod
    def from_settings(cls, settings: Any, *origins: str) -> FetchRules:
        hosts = tuple(
            h.strip().lower() for h in settings.output_allowed_hosts.split(",") if h.strip()
        )
        return cls(
            hosts=hosts,
            origins=tuple(o for o in (origin_of(u) for u in origins) if o),
            allow_private=settings.output_allow_private_addresses,
            deadline_seconds=settings.output_download_deadline_seconds,
            max_bytes=settings.output_max_bytes,
        )


def origin_of(url: str) -> str | None:
    """`scheme://host:port` of `url` (port made explicit), or None if it has no host."""
    parts = urlsplit(url)
    if not parts.hostname or parts.scheme not in ("http", "https"):
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname.lower()}:{port}"


def shown(url: str) -> str:
    """A URL for messages: no query or credentials (signed URLs carry secrets there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def refused(url: str, why: str) -> ProviderError:
    # Permanent: a new job would hand out a URL of the same kind.
    return ProviderError(
        Reason.INVALID_OUTPUT, f"output URL {shown(url)} refused: {why}", retryable=False
    )


def check_url(
    url: str, rules: FetchRules, resolve: Callable[..., Any] = socket.getaddrinfo
) -> None:
    """Raise (InvalidOutput, permanent) unless `url` may be fetched under `rules`."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise refused(url, "no host")
    if origin_of(url) in rules.origins:
        return  # exactly the API's own origin (e.g. a test server on loopback)
    if parts.scheme != "https":
        raise refused(url, "not https")
    if not any(_host_matches(host, pattern) for pattern in rules.hosts):
        allowed = ", ".join(rules.hosts) or "none"
        raise refused(
            url,
            f"{host} is not an allowed delivery host ({allowed}; SCENE_OPERATOR_OUTPUT_ALLOWED_HOSTS)",
        )
    if rules.allow_private:
        return
    try:
        infos = resolve(host, parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise errors.connection_error(f"cannot resolve {host}: {exc}") from exc
    for info in infos:
        address = str(info[4][0])
        if not is_public(address):
            raise refused(url, f"{host} resolves to the non-public address {address}")


def is_public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _host_matches(host: str, pattern: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def download(
    client: httpx.Client,
    url: str,
    dest: Path,
    rules: FetchRules,
    *,
    headers_for: Callable[[str], Mapping[str, str]] = lambda url: {},
    what: str = "output",
) -> int:
    """Fetch `url` into `dest` (written aside, renamed when complete); returns its size.

    Raises InvalidOutput (a refused URL, more than `max_bytes`), JobLostError (404/410:
    the output is gone), or a classified ProviderError (HTTP errors, transport failures,
    the deadline)."""
    deadline = time.monotonic() + rules.deadline_seconds
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    try:
        for _ in range(rules.max_redirects + 1):
            check_url(url, rules)
            timeout = _timeout(deadline, url, what, rules)
            request = client.build_request(
                "GET", url, headers=dict(headers_for(url)), timeout=timeout
            )
            response = client.send(request, stream=True, follow_redirects=False)
            try:
                _check_peer(url, response, rules)
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                _check_status(what, response)
                size = _stream(response, partial, deadline, url, what, rules)
            finally:
                response.close()
            partial.replace(dest)  # readers never see a half-written file
            return size
        raise refused(url, f"more than {rules.max_redirects} redirects")
    except httpx.TimeoutException as exc:
        if time.monotonic() >= deadline:
            raise _deadline_error(url, what, rules) from exc
        message = f"{what} download from {shown(url)} timed out: {type(exc).__name__}"
        raise errors.connection_error(message) from exc
    except httpx.TransportError as exc:
        raise errors.connection_error(
            f"{what} download from {shown(url)} failed: {type(exc).__name__}"
        ) from exc
    except OSError as exc:
        raise ProviderError(
            "DownloadFailed", f"cannot write {dest}: {exc}", retryable=True
        ) from exc
    finally:
        partial.unlink(missing_ok=True)


def write_bytes(data: bytes, dest: Path, rules: FetchRules) -> int:
    """Output the provider sent inline (Veo): the same size cap, written to disk at once
    (aside, then renamed)."""
    if len(data) > rules.max_bytes:
        raise too_big(len(data), rules)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    try:
        partial.write_bytes(data)
        partial.replace(dest)
    except OSError as exc:
        raise ProviderError("WriteFailed", f"cannot write {dest}: {exc}", retryable=True) from exc
    finally:
        partial.unlink(missing_ok=True)
    return len(data)


def too_big(size: int | str, rules: FetchRules) -> ProviderError:
    # Permanent: the model makes outputs this big; another job would pay for the same.
    return ProviderError(
        Reason.INVALID_OUTPUT,
        f"output is {size} bytes, over the cap of {rules.max_bytes} (SCENE_OPERATOR_OUTPUT_MAX_BYTES)",
        retryable=False,
    )


def _timeout(deadline: float, url: str, what: str, rules: FetchRules) -> httpx.Timeout:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _deadline_error(url, what, rules)
    return httpx.Timeout(min(remaining, _READ_TIMEOUT))


def _deadline_error(url: str, what: str, rules: FetchRules) -> ProviderError:
    return ProviderError(
        "DownloadTimeout",
        f"{what} download from {shown(url)} did not finish within {rules.deadline_seconds:g}s "
        "(SCENE_OPERATOR_OUTPUT_DOWNLOAD_DEADLINE_SECONDS)",
        retryable=True,
    )


def _check_peer(url: str, response: httpx.Response, rules: FetchRules) -> None:
    """The address really connected to must be public too (unless allowed): a host that
    resolved to a public address a moment ago may not any more. Through a proxy the peer
    is the proxy, which the operator's own configuration chose."""
    if rules.allow_private or origin_of(url) in rules.origins or _proxied(url):
        return
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if peer and not is_public(str(peer[0])):
        raise refused(url, f"connected to the non-public address {peer[0]}")


def _proxied(url: str) -> bool:
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    return bool(proxies.get(parts.scheme)) and not urllib.request.proxy_bypass(parts.hostname or "")


def _check_status(what: str, response: httpx.Response) -> None:
    if response.status_code in (404, 410):
        # Replicate deletes outputs after an hour: the job has to be redone.
        raise JobLostError(f"{what} at {shown(str(response.url))} is gone")
    if response.status_code >= 300:
        message = f"{what} download failed: HTTP {response.status_code}"
        raise errors.http_error(response.status_code, message, response.headers)


def _stream(
    response: httpx.Response, partial: Path, deadline: float, url: str, what: str, rules: FetchRules
) -> int:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > rules.max_bytes:
        raise too_big(declared, rules)
    size = 0
    with partial.open("wb") as out:
        # No chunk size: each piece is handed over as it arrives, so the deadline is
        # checked even when the body drips.
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > rules.max_bytes:
                raise too_big(f"more than {rules.max_bytes}", rules)
            out.write(chunk)
            if time.monotonic() > deadline:
                raise _deadline_error(url, what, rules)
    return size
