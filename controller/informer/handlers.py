"""kopf wiring, and the only module that imports kopf.

Only event-watching handlers are used: kopf then keeps no progress annotations and adds
no finalizers of its own, so GitOps tools see no drift and the operator writes nothing
but status, its own Scenes, Events and (for deletionPolicy Delete) one finalizer.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, cast

from controller.api import vocabulary as v
from controller.api.common import Body
from controller.informer import listing as first_list
from controller.informer.listing import InitialListing
from controller.kube import client as kube

# kopf imports the kubernetes client at import time when it is installed (to recognise
# its model objects in helpers this operator does not use): ~68 MB of RSS, a quarter
# of the operator's memory. Hidden while kopf is imported; kube.load_configuration
# still imports it later for a kubeconfig only the library can read.
_hidden = "kubernetes" not in sys.modules
if _hidden:
    sys.modules["kubernetes"] = None  # type: ignore[assignment]  # import fails: absent
try:
    import kopf

    from controller.informer import kopf_patches  # every change to kopf's internals
finally:
    if _hidden:
        del sys.modules["kubernetes"]

EXIT_KOPF_FAILED = 70  # EX_SOFTWARE: restart me


class GatedWorkers(Protocol):
    """The work queue's workers, which wait for `ready` (queue/worker.py: Worker)."""

    ready: Callable[[], Awaitable[None]] | None


class Runtime(Protocol):
    """What kopf's handlers feed and run (controller/app.py: Runtime)."""

    @property
    def worker(self) -> GatedWorkers: ...  # started once the first LIST has filled the cache

    def on_scene_event(self, kind: str | None, body: dict[str, Any]) -> None: ...

    def on_project_event(self, kind: str | None, body: dict[str, Any]) -> None: ...

    def stalled(self) -> str | None: ...

    async def run(self) -> None: ...


KOPF_IDLE_SECONDS = 0.5  # a per-object worker's wait for its object's next event


def register(
    registry: kopf.OperatorRegistry, runtime: Runtime, listing: InitialListing | None = None
) -> None:
    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # The same credentials as our own client: KUBECONFIG, else in-cluster (kopf asks
        # again after a 401: a rotated token is read then).
        return connection_info(kube.load_configuration())

    @kopf.on.probe(id="progress", registry=registry)
    async def progress(**_: Any) -> str:
        # /healthz answers 500 while the workers are stuck (controller/queue/liveness.py).
        if problem := runtime.stalled():
            raise kopf.PermanentError(problem)
        return "ok"

    def on_project(event: Mapping[str, Any]) -> None:
        runtime.on_project_event(event.get("type"), cast(Body, event["object"]))
        if listing is not None:
            listing.delivered(cast(Body, event["object"]))

    def on_scene(event: Mapping[str, Any]) -> None:
        runtime.on_scene_event(event.get("type"), cast(Body, event["object"]))
        if listing is not None:
            listing.delivered(cast(Body, event["object"]))

    # Registered so kopf watches the two resources; their events reach on_* directly.
    @kopf.on.event(v.GROUP, v.VERSION, v.PROJECT_PLURAL, registry=registry)
    async def project_event(event: kopf.RawEvent, **_: Any) -> None:
        on_project(event)

    @kopf.on.event(v.GROUP, v.VERSION, v.SCENE_PLURAL, registry=registry)
    async def scene_event(event: kopf.RawEvent, **_: Any) -> None:
        on_scene(event)

    kopf_patches.install_all(
        {(v.GROUP, v.PROJECT_PLURAL): on_project, (v.GROUP, v.SCENE_PLURAL): on_scene}
    )


def connection_info(cfg: Any) -> kopf.ConnectionInfo:
    """kopf's credentials from our client's configuration (a kubeconfig.Connection, or
    the kubernetes package's Configuration: the same attributes)."""
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix(
        "authorization"
    )
    scheme, _, token = (header or "").rpartition(" ")
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        username=getattr(cfg, "username", None) or None,
        password=getattr(cfg, "password", None) or None,
        scheme=scheme or None,
        token=token or None,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
    )


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    settings.posting.enabled = False  # our Events are specific, not log echoes
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=v.GROUP)
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.networking.error_backoffs = [1, 2, 5, 10, 20]
    # kopf runs one task per object that had an event, kept for idle_timeout (5 s) in
    # case another comes: ~7 kB each plus the last raw body it holds (managedFields and
    # all). At 10,000 Scenes changing every few seconds that is most of them at once.
    # The handlers only hand the body over, so a worker may as well end right away.
    settings.queueing.idle_timeout = KOPF_IDLE_SECONDS


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf builds a diff base for every watch event (a deep copy of the whole body, then
    copies of its spec, labels and annotations), for change handlers this operator does
    not have: 5 % of its CPU in the benchmark's profile. Event handlers need none of it,
    and nothing is stored on the objects either."""

    def build(self, *, body: Any, extra_fields: Any = None) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, {})

    def fetch(self, *, body: Any) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        return None


class KopfTaskFailures(logging.Handler):
    """kopf logs a root task that failed (seen: the Scene watch answered 404 while a
    restarted API server had not served the CRD yet: "Multidimensional multitasker has
    failed") and keeps running without it: no more watch events, so new Projects would
    never be seen. Such a half-alive operator is worse than a restart."""

    LOGGER = "kopf._core.reactor.running"
    # kopf's root tasks that feed watch events (others, like the health reporter, fail
    # for reasons handled elsewhere: a taken liveness port stops kopf with an error).
    WATCHING = ("multidimensional multitasker", "resource observer", "namespace observer")

    def __init__(self, on_failure: Callable[[str], None]) -> None:
        super().__init__(level=logging.ERROR)
        self.on_failure = on_failure

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(message.lower().startswith(f"{task} has failed") for task in self.WATCHING):
            self.on_failure(message)


def exit_for_a_restart(message: str) -> None:
    """Exit at once so Kubernetes restarts the pod: all state is in the API server and
    S3, and a restart loses nothing and pays nothing twice (the kill tests)."""
    logging.getLogger("scene_operator").critical(
        "kopf lost a watch and cannot recover it in this process: exiting for a restart",
        extra={"error": message},
    )
    logging.shutdown()  # flush the log line above
    os._exit(EXIT_KOPF_FAILED)


def said(error: BaseException) -> BaseException:
    """`error`, logged first when it is a taken liveness port: not transient (restarting
    would only fail again), so the process exits and says why."""
    if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
        logging.getLogger("scene_operator").critical(
            "cannot listen on the liveness endpoint", extra={"error": str(error)}
        )
    return error


async def run(
    runtime: Runtime,
    *,
    namespaces: list[str],
    clusterwide: bool,
    standalone: bool,
    peering_name: str | None,
    liveness_endpoint: str | None,
) -> None:
    registry = kopf.OperatorRegistry()
    listing = InitialListing(namespaces, clusterwide=clusterwide)
    kopf_patches.install_listing(listing, first_list.PLURALS)  # workers wait for it
    runtime.worker.ready = listing.opened
    register(registry, runtime, listing)
    log = logging.getLogger("scene_operator")
    workers = asyncio.create_task(runtime.run())
    watchdog = KopfTaskFailures(exit_for_a_restart)
    logging.getLogger(KopfTaskFailures.LOGGER).addHandler(watchdog)
    try:
        while True:
            stop = asyncio.Event()
            operator = asyncio.create_task(
                kopf.operator(
                    registry=registry,
                    standalone=standalone,
                    peering_name=peering_name,
                    namespaces=namespaces,
                    clusterwide=clusterwide,
                    liveness_endpoint=liveness_endpoint,
                    stop_flag=stop,
                    memories=kopf_patches.NoMemories(),
                )
            )
            await asyncio.wait({operator, workers}, return_when=asyncio.FIRST_COMPLETED)
            if workers.cancelled() and not operator.done():
                # A stopping kopf cancels every task started after it, the workers' own
                # (timeouts, sub-tasks) too: let it finish, and judge by how it ended.
                await asyncio.wait({operator})
            if operator.done() and not operator.cancelled() and operator.exception() is None:
                return  # a normal stop (signal)
            if workers.done():
                stop.set()
                operator.cancel()
                if workers.cancelled() and operator.done() and not operator.cancelled():
                    raise said(operator.exception() or RuntimeError("kopf stopped"))
                workers.result()  # raises what stopped the workers
                return
            error = None if operator.cancelled() else operator.exception()
            if error is None:
                return  # a normal stop (signal)
            if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
                raise said(error)
            # kopf gave up (e.g. a watch answered 404 while the API server restarted):
            # start watching again in the same process; the cache and queue survive.
            log.error("kopf stopped, restarting its watches", extra={"error": str(error)})
            await asyncio.sleep(2.0)
    finally:
        logging.getLogger(KopfTaskFailures.LOGGER).removeHandler(watchdog)
        workers.cancel()
