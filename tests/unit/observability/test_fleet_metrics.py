"""The fleet gauges, counted from the operator's cache at scrape time, as Prometheus reads them."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from controller.informer.cache import Store
from controller.observability import fleet_metrics
from tests.unit.api.test_kstatus import PROJECTS, SCENES

NAMES = {
    "scene_operator_scenes",
    "scene_operator_projects",
    "scene_operator_projects_condition",
    "scene_operator_estimated_cost_usd",
}


def body(kind: str, ns: str, name: str, status: dict | None, rv: int = 1) -> dict:
    meta = {"namespace": ns, "name": name, "resourceVersion": str(rv)}
    out: dict = {"kind": kind, "metadata": meta, "spec": {"projectRef": {"name": "p"}}}
    if status is not None:
        out["status"] = status
    return out


def scrape(store: Store) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    fleet_metrics.register(store, registry)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_scenes_projects_conditions_and_cost_by_namespace() -> None:
    store = Store()
    for i, case in enumerate(("completed", "completed", "failed-permanent-error", "job-running")):
        store.upsert_scene(body("Scene", "a", f"s{i}", SCENES[case][0]().wire()))
    store.upsert_scene(body("Scene", "b", "fresh", None))  # no status yet
    for i, case in enumerate(("completed", "budget-exhausted-work-left", "paused")):
        status = PROJECTS[case][0]().wire()
        status["usage"] = {"generationsStarted": 2, "estimatedCostUsd": 1.25 * (i + 1)}
        store.upsert_project(body("Project", "a", f"p{i}", status))
    store.upsert_project(body("Project", "b", "p", PROJECTS["invalid-spec"][0]().wire()))

    got = scrape(store)
    assert {name for name, _ in got} == NAMES

    def at(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert at("scene_operator_scenes", namespace="a", phase="Completed") == 2
    assert at("scene_operator_scenes", namespace="a", phase="Failed") == 1
    assert at("scene_operator_scenes", namespace="a", phase="Processing") == 1
    assert at("scene_operator_scenes", namespace="b", phase="Unknown") == 1
    assert at("scene_operator_projects", namespace="a", ready="True") == 1
    assert at("scene_operator_projects", namespace="a", ready="False") == 2
    assert at("scene_operator_projects", namespace="b", ready="False") == 1
    assert at("scene_operator_projects_condition", namespace="a", condition="Stalled") == 1
    assert at("scene_operator_projects_condition", namespace="a", condition="BudgetExhausted") == 1
    assert at("scene_operator_projects_condition", namespace="a", condition="Paused") == 1
    assert at("scene_operator_projects_condition", namespace="b", condition="Stalled") == 1
    assert at("scene_operator_estimated_cost_usd", namespace="a") == 1.25 + 2.5 + 3.75
    assert at("scene_operator_estimated_cost_usd", namespace="b") == 0
    # bounded labels: no object names anywhere
    assert all(
        dict(labels).keys() <= {"namespace", "phase", "ready", "condition"} for _, labels in got
    )


def test_the_gauges_follow_the_cache_without_any_write_path() -> None:
    store = Store()
    store.upsert_scene(body("Scene", "a", "s", SCENES["job-running"][0]().wire(), rv=1))
    assert (
        scrape(store)[("scene_operator_scenes", (("namespace", "a"), ("phase", "Processing")))] == 1
    )
    store.upsert_scene(body("Scene", "a", "s", SCENES["completed"][0]().wire(), rv=2))
    got = scrape(store)
    assert got[("scene_operator_scenes", (("namespace", "a"), ("phase", "Completed")))] == 1
    assert ("scene_operator_scenes", (("namespace", "a"), ("phase", "Processing"))) not in got
    store.delete_scene(("a", "s"))
    assert not [k for k in scrape(store) if k[0] == "scene_operator_scenes"]


def test_registering_again_replaces_the_collector() -> None:
    registry = CollectorRegistry()
    fleet_metrics.register(Store(), registry)
    second = Store()
    second.upsert_scene(body("Scene", "z", "s", {"phase": "Pending"}))
    fleet_metrics.register(second, registry)  # no "Duplicated timeseries" error
    assert b'scene_operator_scenes{namespace="z",phase="Pending"} 1.0' in generate_latest(registry)


def test_a_scrape_while_the_cache_changes_does_not_fail() -> None:
    store = Store()
    registry = CollectorRegistry()
    fleet_metrics.register(store, registry)
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            store.upsert_scene(body("Scene", "a", f"s{i % 500}", {"phase": "Pending"}, rv=i))
            if i % 3 == 0:
                store.delete_scene(("a", f"s{(i * 7) % 500}"))
            i += 1

    writer = threading.Thread(target=churn)
    writer.start()
    try:
        for _ in range(50):
            assert b"scene_operator_scenes" in generate_latest(registry)
    finally:
        stop.set()
        writer.join()
