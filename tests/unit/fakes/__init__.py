"""Fakes of the operator's own interfaces (controller/controllers/ports.py) for unit tests of
the runtime: a Kubernetes API that keeps objects and resourceVersions, a clip store, and
providers whose every verb a test can script (Crossplane's ExternalClientFns style)."""

from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never waits on anything (a pass over fakes) to its end,
    without an event loop: fast enough for thousands of property-test passes."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError("the coroutine waited on something: not a pass over fakes")
