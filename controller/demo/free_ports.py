"""Free TCP ports for the local servers the tests and the benchmark start.

Ports are drawn below the kernel's ephemeral range: a port that bind(0) hands out is an
ephemeral one, and between choosing it and the server binding it, any outgoing
connection (boto3, kubectl, a proxy) may take it as its local port. That race failed a
CI run: the operator's liveness endpoint could not bind ("address already in use").

Parallel test workers (pytest-xdist sets PYTEST_XDIST_WORKER=gwN and
PYTEST_XDIST_WORKER_COUNT, and the processes they start inherit them) each draw from
their own slice of that range, so two workers never choose the same port between
choosing and binding it.
"""

from __future__ import annotations

import os
import random
import socket
from collections import deque
from pathlib import Path

_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Far fewer than a worker's slice (about 5,000 ports with 4 workers on the usual range).
_RECENT: deque[int] = deque(maxlen=400)


def _below_ephemeral() -> tuple[int, int] | None:
    try:
        low = int(_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return _worker_slice((10000, low - 1)) if low > 12000 else None


def _worker_slice(span: tuple[int, int]) -> tuple[int, int]:
    """This pytest-xdist worker's share of `span` (all of it outside xdist)."""
    try:
        index = int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw"))
        count = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    except (KeyError, ValueError):
        return span
    size = (span[1] - span[0] + 1) // max(count, 1)
    if not 0 <= index < count or size < 500:
        return span
    return (span[0] + index * size, span[0] + (index + 1) * size - 1)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    port = _choose()
    _RECENT.append(port)
    return port


def _choose() -> int:
    span = _below_ephemeral()
    if span is not None:
        for _ in range(200):
            port = random.randint(*span)
            if port not in _RECENT and _bindable(port):
                return port
    for _ in range(20):  # no known range: let the kernel choose
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _RECENT:
            break
    return port
