"""How long recent jobs ran, per provider and model: this process's memory, shared by
every Scene pass (the estimates are in controller/decide/job_durations.py).

Lost on restart like all memory: the new process polls on the fixed schedule until
jobs end again (a cold start).
"""

from __future__ import annotations

from collections import OrderedDict, deque

from controller.decide import job_durations as jd
from controller.observability import metrics as m

MAX_MODELS = 256  # model names are the users': the least recently ended are forgotten


class RecentDurations:
    def __init__(self, max_models: int = MAX_MODELS) -> None:
        self.max_models = max_models
        self._windows: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._estimates: dict[tuple[str, str], jd.Estimate | None] = {}

    def record(self, provider: str, model: str, seconds: float) -> None:
        """A job of `provider` and `model` ended after running `seconds`."""
        if seconds <= 0:
            return
        key = (provider, model)
        window = self._windows.pop(key, None) or deque(maxlen=jd.WINDOW)
        window.append(seconds)
        self._windows[key] = window  # the most recent last
        self._estimates[key] = jd.estimate(window)  # once per job ended, not per poll
        while len(self._windows) > self.max_models:
            old, _ = self._windows.popitem(last=False)
            self._estimates.pop(old, None)
        m.JOB_RUN_SECONDS.labels(provider).observe(seconds)

    def estimate(self, provider: str, model: str) -> jd.Estimate | None:
        return self._estimates.get((provider, model))
