"""The watchdog on kopf's own log: a root task that failed is noticed (kopf keeps
running without it, so no more watch events would arrive), nothing else is, and the
operator then exits so that it is restarted."""

from __future__ import annotations

import logging
import subprocess
import sys

from controller.informer.handlers import EXIT_KOPF_FAILED, KopfTaskFailures


def test_a_failed_kopf_root_task_is_noticed_and_nothing_else() -> None:
    seen: list[str] = []
    logger = logging.getLogger(KopfTaskFailures.LOGGER)
    watchdog = KopfTaskFailures(seen.append)
    logger.addHandler(watchdog)
    try:
        logger.info("Multidimensional multitasker has failed: not really (INFO)")
        logger.error("Root task 'daemon killer' is cancelled.")
        logger.error("Health reporter has failed: [Errno 98] address already in use")
        logger.error("Multidimensional multitasker has failed: 404 page not found")
    finally:
        logger.removeHandler(watchdog)
    logger.error("Multidimensional multitasker has failed: after removal")
    assert seen == ["Multidimensional multitasker has failed: 404 page not found"]


def test_the_operator_exits_for_a_restart_when_kopf_loses_a_task() -> None:
    """In a real process: the message kopf logs when its orchestrator dies makes the
    operator log why and exit with EXIT_KOPF_FAILED, so Kubernetes restarts it."""
    code = (
        "import logging\n"
        "from controller.informer import handlers\n"
        "from controller.observability import logs\n"
        "logs.setup('json', 'INFO')\n"
        "logging.getLogger(handlers.KopfTaskFailures.LOGGER).addHandler(\n"
        "    handlers.KopfTaskFailures(handlers.exit_for_a_restart))\n"
        "logging.getLogger(handlers.KopfTaskFailures.LOGGER).error(\n"
        "    'Multidimensional multitasker has failed: 404 page not found')\n"
        "print('still running')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    out = done.stdout + done.stderr
    assert done.returncode == EXIT_KOPF_FAILED, out
    assert "exiting for a restart" in out and "404 page not found" in out
    assert "still running" not in out


def test_kopf_builds_no_diff_base_for_the_event_handlers() -> None:
    """kopf's diff base (a deep copy of every body per watch event) serves change
    handlers, which the operator has none of: it is built empty, and never stored."""
    import kopf

    from controller.informer.handlers import NoDiffBase, configure_kopf

    settings = kopf.OperatorSettings()
    configure_kopf(settings)
    storage = settings.persistence.diffbase_storage
    assert isinstance(storage, NoDiffBase)
    body = kopf.Body({"metadata": {"name": "x", "annotations": {"a": "b"}}, "spec": {"n": 1}})
    assert storage.build(body=body) == {}
    assert storage.fetch(body=body) is None
    assert settings.posting.enabled is False
