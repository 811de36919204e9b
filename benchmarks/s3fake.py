"""The S3 fake (moto's server mode, as controller.demo.s3server runs it) in a process of
its own: its CPU is then measured apart (/proc), and its O(objects) listing does not share
the harness's interpreter lock with the Replicate fake and the harness."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from typing import Any

from controller.demo.s3server import S3Server

# moto looks for the request's service among its own package folders, listing them and
# stat-ing each one (some 175) on every request: 40 % of a HEAD's CPU. The list cannot
# change while the server runs, so it is taken once; nothing S3 answers changes.
_SERVE = """
import sys, threading
from moto import backends
modules = tuple(backends.list_of_moto_modules())
backends.list_of_moto_modules = lambda: modules
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
threading.Event().wait()
"""


class S3Process(S3Server):
    """Same endpoint, credentials and client as S3Server; the server runs in a child."""

    def start(self) -> S3Process:
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-c", _SERVE, str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the S3 fake exited at start")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the S3 fake did not start in 30 s")

    @property
    def pid(self) -> int | None:
        proc = getattr(self, "proc", None)
        return proc.pid if proc is not None else None

    def stop(self) -> None:
        proc: Any = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.proc = None
