"""`kubectl video status --watch` ends on Ctrl-C even when the interrupt lands where
Python drops it (in a finalizer the garbage collector runs)."""

from __future__ import annotations

import argparse
import signal
from typing import Any

import pytest

from controller.plugin import cli


class Dropped:
    """A finalizer during which Ctrl-C arrives: Python prints its KeyboardInterrupt as
    "Exception ignored" and carries on."""

    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)


class Target:
    namespace = "ns"

    def __init__(self) -> None:
        self.looks = 0

    def events(self) -> list[Any]:
        self.looks += 1
        if self.looks == 2:
            Dropped()  # made and collected at once
        if self.looks > 20:
            raise AssertionError("still watching long after Ctrl-C")
        return []

    def list(self, plural: str) -> list[Any]:
        return []


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the dropped one
def test_ctrl_c_in_a_finalizer_still_ends_the_watch() -> None:
    args = argparse.Namespace(refs=[], output="table", events=3, interval=0.01, watch=True)
    target = Target()
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        cli.watch(args, target)  # type: ignore[arg-type]
    assert target.looks == 2  # the look it was in finished; no other began
    assert signal.getsignal(signal.SIGINT) is before  # the handler put back
