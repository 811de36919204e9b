"""Small helpers for end-to-end tests: reading resources and waiting on conditions."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes import client as k8s

from controller.api import vocabulary as v

T = TypeVar("T")


def wait_until(
    fn: Callable[[], T], timeout: float = 60.0, interval: float = 0.5, what: str = ""
) -> T:
    """Poll `fn` until it returns something truthy; fail with the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or fn}: last={last!r}")


class Cluster:
    def __init__(self, api_client: k8s.ApiClient) -> None:
        self.custom = k8s.CustomObjectsApi(api_client)
        self.core = k8s.CoreV1Api(api_client)

    def project(self, ns: str, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(
            v.GROUP, v.VERSION, ns, v.PROJECT_PLURAL, name
        )

    def scenes(self, ns: str, project: str | None = None) -> list[dict[str, Any]]:
        items = self.custom.list_namespaced_custom_object(v.GROUP, v.VERSION, ns, v.SCENE_PLURAL)[
            "items"
        ]
        if project is not None:
            items = [s for s in items if s["spec"]["projectRef"]["name"] == project]
        return sorted(items, key=lambda s: s["spec"]["sequence"])

    def create_project(
        self, ns: str, name: str, spec: dict[str, Any], annotations: dict[str, str] | None = None
    ) -> dict[str, Any]:
        body = {
            "apiVersion": v.API_VERSION,
            "kind": v.PROJECT_KIND,
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": spec,
        }
        return self.custom.create_namespaced_custom_object(
            v.GROUP, v.VERSION, ns, v.PROJECT_PLURAL, body
        )

    def patch_project(self, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object(
            v.GROUP, v.VERSION, ns, v.PROJECT_PLURAL, name, patch
        )

    def patch_scene(self, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object(
            v.GROUP, v.VERSION, ns, v.SCENE_PLURAL, name, patch
        )

    def patch_scene_status(self, ns: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object_status(
            v.GROUP, v.VERSION, ns, v.SCENE_PLURAL, name, {"status": status}
        )

    def events(self, ns: str, name: str | None = None) -> list[Any]:
        items = self.core.list_namespaced_event(ns).items
        return [e for e in items if name is None or e.involved_object.name == name]

    def wait_event(self, ns: str, name: str, reason: str, timeout: float = 15) -> None:
        """Events are posted after the status write they tell of (as client-go's recorder
        does, asynchronously): a test that saw the status waits for its Event."""
        wait_until(
            lambda: reason in self.event_reasons(ns, name) or None,
            timeout=timeout,
            interval=0.2,
            what=f"Event {reason} on {name}",
        )

    def event_reasons(self, ns: str, name: str | None = None) -> list[str]:
        return [
            e.reason
            for e in sorted(
                self.events(ns, name), key=lambda e: (e.first_timestamp or 0, e.metadata.name)
            )
        ]


def lose_completion(cluster: Cluster, ns: str, name: str) -> None:
    """Rewind a Completed Scene's status as if the write that said so had been lost:
    Processing, no job, no clip (the object stays in S3)."""
    cluster.patch_scene_status(
        ns,
        name,
        {
            "phase": "Processing",
            "clip": None,
            "originalVideoClipS3Key": None,
            "workingVideoClipS3Key": None,
        },
    )


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return c
    return None


def is_true(obj: dict[str, Any], type_: str) -> bool:
    c = condition(obj, type_)
    return bool(c and c["status"] == "True")


def wait_project(
    cluster: Cluster, ns: str, name: str, cond: str = "Ready", timeout: float = 90.0
) -> dict[str, Any]:
    """Wait until the Project's condition `cond` is True; return the Project."""

    def check() -> dict[str, Any] | None:
        p = cluster.project(ns, name)
        return p if is_true(p, cond) else None

    return wait_until(check, timeout=timeout, what=f"project {ns}/{name} {cond}=True")


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` (a Prometheus text exposition) matching `labels`."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(
                sample.labels.get(k) == val for k, val in labels.items()
            ):
                total += sample.value
    return total


def api_writes(metrics_text: str) -> float:
    """Kubernetes API writes made by the operator's client (not kopf's watch streams)."""
    name = "scene_operator_api_requests_total"
    return sum(
        metric_sum(metrics_text, name, verb=verb) for verb in ("POST", "PATCH", "PUT", "DELETE")
    )
