"""The API server restarts in the middle of a run: the operator recovers by itself (same
process, no restart), the run finishes exactly, and new Projects are still seen."""

from __future__ import annotations

import time
from typing import Any

import pytest

from controller.demo.controlplane import ControlPlane
from tests.resilience.conftest import (
    PROJECTS,
    SCENES,
    SlowCreates,
    all_settled,
    check_all_completed,
    create_projects,
    env_float,
    jobs_by_scene,
    log_lines,
    orphan_events,
    project_spec,
    report_orphan_window,
    snapshot,
    tolerant,
    wait_for,
)

pytestmark = [pytest.mark.resilience, pytest.mark.integration]

# Seconds the API server stays down (after a graceful stop of up to 3 s).
APISERVER_DOWNTIME = env_float("RESILIENCE_APISERVER_DOWNTIME", 2.0)


@pytest.fixture
def local_control_plane(control_plane: Any) -> ControlPlane:
    if not isinstance(control_plane, ControlPlane):
        pytest.skip(
            f"restarting the API server needs the local control plane, not "
            f"{type(control_plane).__name__} (--kubeconfig / SCENE_OPERATOR_TEST_KUBECONFIG)"
        )
    return control_plane


def assert_run_exact(
    cluster, s3, namespace, counts, created, *, orphan_window_ok: bool = False
) -> Any:
    """Every scene Completed with its verified clip, counters exact, one job per scene
    (with `orphan_window_ok`, duplicates explained by JobMayBeOrphaned are reported)."""
    names = list(counts)
    snap = snapshot(cluster, namespace, names)
    problems = check_all_completed(s3, snap, counts)
    assert not problems, "\n".join(problems)
    jobs, unknown = jobs_by_scene(snap, created)
    assert not unknown
    duplicates = {n: c for n, c in jobs.items() if c != 1}
    orphans = orphan_events(cluster, namespace)
    if orphan_window_ok:
        unexplained = {n: c for n, c in duplicates.items() if orphans.get(n, 0) < c - 1}
        assert not unexplained, f"paid twice WITHOUT JobMayBeOrphaned: {unexplained}"
        report_orphan_window(
            duplicates, orphans, [], cause="the API server was down at the job-id write"
        )
    else:
        assert not duplicates, (
            f"paid twice (jobs per scene) {duplicates}; JobMayBeOrphaned events {orphans}"
        )
    return snap


def test_apiserver_restart_mid_run_recovers_without_an_operator_restart(
    local_control_plane: ControlPlane, cluster, namespace, run_operator, s3, replicate
) -> None:
    began = time.monotonic()
    op = run_operator(namespace, env={**replicate.env(), "SCENE_OPERATOR_PROJECT_CONCURRENCY": "2"})
    pid = op.proc.pid
    counts = create_projects(cluster, namespace, SCENES, PROJECTS, tag=namespace)
    names = list(counts)
    wait_for(
        lambda: snapshot(cluster, namespace, names).with_job() >= 2,
        timeout=60,
        interval=0.1,
        what="jobs in flight",
    )
    before = snapshot(cluster, namespace, names)
    down = time.monotonic()
    local_control_plane.restart_apiserver(downtime=APISERVER_DOWNTIME)
    outage = time.monotonic() - down
    assert op.alive(), f"operator died with the API server:\n{op.logs()[-4000:]}"
    # A Project created after the restart proves the watches came back, not only requeues.
    tolerant(
        lambda: cluster.create_project(
            namespace, "after", project_spec("A kite over the dunes after the outage", 2)
        ),
        None,
    )
    counts["after"] = 2
    wait_for(
        lambda: all_settled(cluster, namespace, [*names, "after"]),
        timeout=120 + 3 * SCENES,
        what="every project settled after the restart",
    )
    time.sleep(1.0)
    print(
        f"[resilience] API server down {outage:.1f}s with {before.with_job()} jobs in flight "
        f"({dict(before.phases())}); run finished {time.monotonic() - began:.1f}s; "
        f"{len(replicate.created)} jobs"
    )
    assert op.alive() and op.proc.pid == pid and op.starts == 1, "the operator was restarted"
    # Jobs whose create answered while the API server was down may be paid twice: that
    # bug has its own deterministic test below; here it is reported, not hidden.
    assert_run_exact(cluster, s3, namespace, counts, list(replicate.created), orphan_window_ok=True)


def test_apiserver_outage_while_creates_are_in_flight_never_pays_twice(
    local_control_plane: ControlPlane,
    cluster,
    namespace,
    run_operator,
    s3,
    slow_creates: SlowCreates,
) -> None:
    """The operator is alive the whole time: it knows every job id the provider returned,
    so an API server that is down when the id is to be written must not cost a second
    job (docs/architecture.md: the only pay-twice window is a crash)."""
    op = run_operator(namespace, env=slow_creates.env())
    counts = {"outage": 3}
    cluster.create_project(
        namespace, "outage", project_spec("A heron waits in the reeds at dawn", 3)
    )

    def markers_without_ids() -> bool:
        scenes = cluster.scenes(namespace, "outage")
        gens = [(s.get("status") or {}).get("generation") for s in scenes]
        return len(gens) == 3 and all(g and not g.get("jobId") for g in gens)

    wait_for(markers_without_ids, timeout=30, interval=0.05, what="3 creates in flight")
    local_control_plane.stop_apiserver(grace=0)
    time.sleep(slow_creates.create_seconds + 1.0)  # the creates answer while it is down
    assert len(slow_creates.created) == 3
    local_control_plane.start_apiserver()
    wait_for(
        lambda: all_settled(cluster, namespace, ["outage"]),
        timeout=90,
        what="project settled after the outage",
    )
    time.sleep(1.0)
    assert op.alive() and op.starts == 1
    logs = op.logs()
    try:
        assert_run_exact(cluster, s3, namespace, counts, list(slow_creates.created))
    except AssertionError as e:
        raise AssertionError(
            f"{e}\noperator log:\n{log_lines(logs, 'reconcile failed', 3)}\n"
            f"{log_lines(logs, 'JobMayBeOrphaned', 3)}"
        ) from None
