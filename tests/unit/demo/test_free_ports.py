"""free_port: the ports one process is handed are distinct.

An operator's metrics and liveness ports are drawn one after the other and bound seconds
later; the same port drawn twice made the liveness endpoint fail to bind in a CI run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.demo import free_ports


def test_a_process_is_never_handed_the_same_port_twice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Linux's usual ephemeral range, and a narrow slice of what lies below it (about
    # 600 ports, as one of 38 workers), so that without the memory of recent ports
    # 300 draws would all but surely repeat one.
    ephemeral = tmp_path / "ip_local_port_range"
    ephemeral.write_text("32768\t60999\n")
    monkeypatch.setattr(free_ports, "_RANGE", ephemeral)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "38")
    span = free_ports._below_ephemeral()
    assert span is not None
    assert 500 <= span[1] - span[0] + 1 < 700
    ports = [free_ports.free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(span[0] <= p <= span[1] for p in ports)
