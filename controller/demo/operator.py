"""Run the operator as a real separate process (`python -m controller run`), as users do.

The demo starts it this way; the tests and the benchmark extend it
(tests/support/operator_process.py: SIGKILL, metrics scrape).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from controller.demo.free_ports import free_port


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: str,
        *,
        env: dict[str, str] | None = None,
        namespaces: list[str] | None = None,
        log_path: Path | None = None,
        unset: Iterable[str] = (),
    ) -> None:
        self.kubeconfig = kubeconfig
        self.extra_env = dict(env or {})
        self.unset = tuple(unset)  # variables of this process the operator must not see
        self.namespaces = namespaces or []
        self.log_path = (
            log_path
            or Path(os.environ.get("TMPDIR", "/tmp")) / f"operator-{os.getpid()}-{free_port()}.log"
        )
        self.metrics_port = int(self.extra_env.get("SCENE_OPERATOR_METRICS_PORT") or free_port())
        self.liveness_port = int(self.extra_env.get("SCENE_OPERATOR_LIVENESS_PORT") or free_port())
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def env(self) -> dict[str, str]:
        env = {k: val for k, val in os.environ.items() if k not in self.unset}
        env.update(
            {
                "KUBECONFIG": self.kubeconfig,
                "SCENE_OPERATOR_METRICS_PORT": str(self.metrics_port),
                "SCENE_OPERATOR_LIVENESS_PORT": str(self.liveness_port),
                "SCENE_OPERATOR_LOG_FORMAT": "json",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> OperatorProcess:
        args = [sys.executable, "-m", "controller", "run"]
        for ns in self.namespaces:
            args += ["--namespace", ns]
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        # Its own session: a terminal's Ctrl-C reaches the demo, which stops the operator
        # once, in order (kopf takes a second stop signal badly: a traceback in its log).
        self.proc = subprocess.Popen(
            args, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.starts += 1
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_healthy(self, timeout: float = 120.0) -> None:
        # A deadline, not a measure: a loaded CI machine (parallel workers on 2 cores) can
        # take tens of seconds to import and start the operator.
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"operator exited:\n{self.logs()[-4000:]}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2
                ):
                    return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"operator not healthy after {timeout}s:\n{self.logs()[-4000:]}")

    def __enter__(self) -> OperatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
