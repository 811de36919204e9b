"""The operator process as the tests and the benchmark drive it: also SIGKILLed and scraped."""

from __future__ import annotations

import signal
import urllib.request

from controller.demo.operator import OperatorProcess as _Base


class OperatorProcess(_Base):
    def kill(self) -> None:
        """SIGKILL: no cleanup, as a node failure or OOM kill would do."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def metrics(self) -> str:
        """The operator's Prometheus exposition text."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()
