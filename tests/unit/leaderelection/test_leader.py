"""Leader election (controller/leaderelection/elector.py): the client-go Lease protocol against a fake of the
operator's own LeaseApi that keeps resourceVersions and answers 409 like the API server,
on a fake clock (time moves only when a test says so)."""

from __future__ import annotations

import asyncio
import copy
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controller.kube.client import ApiError
from controller.leaderelection.elector import (
    ElectionConfig,
    LeaderElector,
    held_by_other,
    next_spec,
    released_spec,
)

NS, NAME = "scene-operator", "scene-operator"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.t)

    def advance(self, seconds: float) -> None:
        self.t += seconds

    async def sleep(self, seconds: float) -> None:
        self.t += seconds
        await asyncio.sleep(0)


class FakeLeases:
    """Leases by name with resourceVersions; a stale PUT or a second create gets 409."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.rv = 0
        self.down = False
        self.after_get: asyncio.Event | None = None  # holds every GET's answer until set
        self.writes = 0

    def _check(self) -> None:
        if self.down:
            raise OSError("connection refused")

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._check()
        found = copy.deepcopy(self.objects.get(name))
        if self.after_get is not None:
            await self.after_get.wait()
        return found

    async def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check()
        name = body["metadata"]["name"]
        if name in self.objects:
            raise ApiError(409, f"leases {name!r} already exists", "AlreadyExists")
        return self._store(name, body)

    async def replace_lease(
        self, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        self._check()
        current = self.objects.get(name)
        if current is None:
            raise ApiError(404, "not found", "NotFound")
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise ApiError(409, "the object has been modified", "Conflict")
        return self._store(name, body)

    def _store(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        self.writes += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[name] = stored
        return copy.deepcopy(stored)

    def spec(self, name: str = NAME) -> dict[str, Any]:
        return self.objects[name]["spec"]


def candidate(
    api: FakeLeases, clock: FakeClock, identity: str, lost: list[str] | None = None, **kw: Any
) -> LeaderElector:
    config = ElectionConfig(namespace=NS, name=NAME, identity=identity, **kw)
    return LeaderElector(
        api, config, on_lost=(lost if lost is not None else []).append, clock=clock
    )


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# ------------------------------------------------------------------ pure decisions


@pytest.mark.parametrize(
    ("holder", "observed_at", "now", "held"),
    [
        ("b", 0.0, 14.9, True),  # another holder, record seen 14.9 s ago: still theirs
        ("b", 0.0, 15.0, False),  # unchanged for the lease duration: free to take
        ("a", 0.0, 1.0, False),  # our own record
        ("", 0.0, 1.0, False),  # released
        (None, 0.0, 1.0, False),
    ],
    ids=["fresh-other", "expired-other", "own", "released-empty", "released-none"],
)
def test_held_by_other(holder: str | None, observed_at: float, now: float, held: bool) -> None:
    spec = {"holderIdentity": holder, "leaseDurationSeconds": 15}
    assert held_by_other(spec, "a", observed_at, now, default=15.0) is held


def test_the_holders_record_sets_the_duration_a_candidate_waits() -> None:
    spec = {"holderIdentity": "b", "leaseDurationSeconds": 40}
    assert held_by_other(spec, "a", 0.0, 39.0, default=15.0)
    assert not held_by_other(spec, "a", 0.0, 40.0, default=15.0)


def test_next_spec_keeps_acquire_time_on_renew_and_counts_a_transition_on_take_over() -> None:
    old = {
        "holderIdentity": "a",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-01-01T00:00:00.000000Z",
        "renewTime": "2026-01-01T00:00:10.000000Z",
        "leaseTransitions": 3,
    }
    later = T0 + timedelta(seconds=12.5)
    renewed = next_spec(old, "a", 15.0, later)
    assert renewed == {
        "holderIdentity": "a",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-01-01T00:00:00.000000Z",
        "renewTime": "2026-01-01T00:00:12.500000Z",
        "leaseTransitions": 3,
    }
    taken = next_spec(old, "b", 6.5, later)
    assert taken["holderIdentity"] == "b"
    assert taken["acquireTime"] == taken["renewTime"] == "2026-01-01T00:00:12.500000Z"
    assert taken["leaseTransitions"] == 4
    assert taken["leaseDurationSeconds"] == 7  # whole seconds, rounded up: never shorter
    released = released_spec(old, later)
    assert released["holderIdentity"] is None and released["leaseDurationSeconds"] == 1
    assert released["leaseTransitions"] == 3


@pytest.mark.parametrize(
    ("lease", "renew", "retry"),
    [(10, 10, 2), (15, 10, 9), (15, 20, 2), (15, 10, 0)],
    ids=["renew-equals-lease", "retry-too-close", "renew-past-lease", "zero-retry"],
)
def test_timings_that_would_let_two_leaders_overlap_are_refused(
    lease: float, renew: float, retry: float
) -> None:
    with pytest.raises(ValueError, match="lease duration > renew deadline"):
        ElectionConfig(
            NS, NAME, "a", lease_duration=lease, renew_deadline=renew, retry_period=retry
        )


# ------------------------------------------------------------------ the protocol


def test_the_first_candidate_creates_the_lease_and_leads() -> None:
    async def main() -> None:
        api, clock = FakeLeases(), FakeClock()
        a = candidate(api, clock, "a", labels={"x": "1"}, annotations={"y": "2"})
        assert not a.is_leader()
        assert await a._attempt()
        spec = api.spec()
        assert spec["holderIdentity"] == "a"
        assert spec["leaseDurationSeconds"] == 15
        assert spec["acquireTime"] == spec["renewTime"] == "2026-01-01T00:16:40.000000Z"
        assert spec["leaseTransitions"] == 0
        meta = api.objects[NAME]["metadata"]
        assert meta["labels"] == {"x": "1"} and meta["annotations"] == {"y": "2"}
        assert (meta["namespace"], api.objects[NAME]["apiVersion"]) == (
            NS,
            "coordination.k8s.io/v1",
        )

    run(main())


def test_a_standby_waits_while_the_leader_renews_and_takes_over_a_lease_duration_after_the_last_renew() -> (
    None
):
    async def main() -> None:
        api, clock = FakeLeases(), FakeClock()
        a, b = candidate(api, clock, "a"), candidate(api, clock, "b")
        assert await a._attempt()
        for _ in range(20):  # 40 s of renewals every 2 s: the standby never gets it
            assert not await b._attempt()
            clock.advance(2.0)
            assert await a._attempt()
        first_acquired = api.spec()["acquireTime"]
        assert api.spec()["leaseTransitions"] == 0
        # The leader stops renewing. The standby first sees this record now...
        assert not await b._attempt()
        clock.advance(14.9)
        assert not await b._attempt()  # ...and must wait the whole lease duration
        assert api.spec()["holderIdentity"] == "a"
        clock.advance(0.1)
        assert await b._attempt()
        spec = api.spec()
        assert spec["holderIdentity"] == "b"
        assert spec["leaseTransitions"] == 1
        assert spec["acquireTime"] != first_acquired

    run(main())


def test_a_new_candidate_waits_a_full_lease_duration_even_for_an_old_record() -> None:
    """Clocks are never compared across machines: a record's renewTime is not trusted,
    only how long this candidate has seen it unchanged."""

    async def main() -> None:
        api, clock = FakeLeases(), FakeClock()
        assert await candidate(api, clock, "a")._attempt()
        clock.advance(3600)  # the record is an hour old (by its renewTime)
        b = candidate(api, clock, "b")
        assert not await b._attempt()
        clock.advance(15.0)
        assert await b._attempt()

    run(main())


def test_two_candidates_racing_for_an_expired_lease_cannot_both_win() -> None:
    async def main() -> None:
        api, clock = FakeLeases(), FakeClock()
        assert await candidate(api, clock, "old")._attempt()
        b, c = candidate(api, clock, "b"), candidate(api, clock, "c")
        assert not await b._attempt() and not await c._attempt()
        clock.advance(16)
        api.after_get = asyncio.Event()  # both read the same record before either writes
        attempts = asyncio.gather(b._attempt(), c._attempt())
        await asyncio.sleep(0)
        api.after_get.set()
        results = await attempts
        assert sorted(results) == [False, True]
        winner = "b" if results[0] else "c"
        assert api.spec()["holderIdentity"] == winner
        assert api.spec()["leaseTransitions"] == 1

    run(main())


def test_two_candidates_creating_the_lease_at_once_cannot_both_win() -> None:
    async def main() -> None:
        api, clock = FakeLeases(), FakeClock()
        api.after_get = asyncio.Event()
        a, b = candidate(api, clock, "a"), candidate(api, clock, "b")
        attempts = asyncio.gather(a._attempt(), b._attempt())
        await asyncio.sleep(0)
        api.after_get.set()
        assert sorted(await attempts) == [False, True]

    run(main())


# ------------------------------------------------------------------ leading and losing


def test_a_leader_that_cannot_renew_stops_at_the_renew_deadline_before_anyone_may_take_over() -> (
    None
):
    async def main() -> None:
        api, clock = FakeLeases(), FakeClock()
        lost: list[str] = []
        a = candidate(api, clock, "a", lost)
        b = candidate(api, clock, "b")
        task = asyncio.create_task(a.run())
        await a.wait_leading()
        assert a.is_leader()
        assert not await b._attempt()  # b sees a's last record now
        last_renew_started = clock.t
        api.down = True  # the API server is unreachable from the leader
        while not lost:
            await asyncio.sleep(0)
            if clock.t - last_renew_started > 60:
                pytest.fail("the leader never gave up")
        await task
        assert lost == ["the lease was not renewed before the renew deadline"]
        assert not a.is_leader()
        assert clock.t - last_renew_started <= 10.0 + 1e-9  # gave up at the renew deadline
        # ...while b may take over only 15 s after it last saw the record change.
        api.down = False
        assert not await b._attempt()
        clock.advance(15.0 - (clock.t - last_renew_started))
        assert await b._attempt()

    run(main())


def test_a_frozen_leader_is_no_leader_the_instant_its_deadline_passed() -> None:
    """SIGSTOP: no code ran while frozen; the first check after it must say no, before
    the elector's own loop has had a chance to notice."""

    async def main() -> None:
        api, clock = FakeLeases(), FakeClock()
        a = candidate(api, clock, "a")
        assert await a._attempt()
        a._leading = True
        clock.advance(9.99)
        assert a.is_leader()
        clock.advance(0.01)
        assert not a.is_leader()

    run(main())


def test_a_leader_frozen_during_a_renewal_writes_nothing_once_past_its_deadline() -> None:
    async def main() -> None:
        api, clock = FakeLeases(), FakeClock()
        a = candidate(api, clock, "a")
        assert await a._attempt()
        a._leading = True
        writes = api.writes
        api.after_get = asyncio.Event()
        renewal = asyncio.create_task(a._attempt())
        await asyncio.sleep(0)  # the GET is sent...
        clock.advance(30)  # ...and the process is frozen past its deadline (SIGSTOP)
        api.after_get.set()
        assert not await renewal
        assert api.writes == writes
        assert api.spec()["holderIdentity"] == "a"  # untouched: the standby's to take

    run(main())


def test_the_electors_own_writes_stop_with_its_leadership() -> None:
    async def main() -> None:
        api, clock = FakeLeases(), FakeClock()
        lost: list[str] = []
        a = candidate(api, clock, "a", lost)
        assert a.may_write()  # campaigning
        task = asyncio.create_task(a.run())
        await a.wait_leading()
        assert a.may_write()
        clock.advance(10.0)  # frozen past the deadline: not even a renewal may go out
        assert not a.may_write()
        await asyncio.wait_for(task, 5)
        assert lost and not a.may_write()

    run(main())


def test_renewals_move_the_deadline_from_the_start_of_each_successful_attempt() -> None:
    async def main() -> None:
        api, clock = FakeLeases(), FakeClock()
        a = candidate(api, clock, "a")
        task = asyncio.create_task(a.run())
        await a.wait_leading()
        for _ in range(50):  # 100 s of renewals
            await asyncio.sleep(0)
        assert clock.t - 1000.0 >= 20  # the loop ran many renew rounds
        assert a.is_leader()
        assert api.spec()["holderIdentity"] == "a"
        assert api.spec()["leaseTransitions"] == 0
        assert api.writes > 5
        task.cancel()

    run(main())


def test_a_leader_that_finds_another_holder_stops_at_once() -> None:
    async def main() -> None:
        api, clock = FakeLeases(), FakeClock()
        lost: list[str] = []
        a = candidate(api, clock, "a", lost)
        task = asyncio.create_task(a.run())
        await a.wait_leading()
        lease = api.objects[NAME]
        api._store(NAME, {**lease, "spec": {**lease["spec"], "holderIdentity": "intruder"}})
        await asyncio.wait_for(task, timeout=5)
        assert lost == ["the lease is held by intruder"]
        assert not a.is_leader()

    run(main())


def test_on_acquired_runs_before_the_work_may_start() -> None:
    async def main() -> None:
        api, clock = FakeLeases(), FakeClock()
        seen: list[tuple[str, bool]] = []
        a = candidate(api, clock, "a")

        async def acquired(lease: dict[str, Any]) -> None:
            seen.append((lease["spec"]["holderIdentity"], a.leading.is_set()))

        a.on_acquired = acquired
        task = asyncio.create_task(a.run())
        await a.wait_leading()
        assert seen == [("a", False)]
        task.cancel()

    run(main())


def test_release_hands_over_at_the_standbys_next_retry() -> None:
    async def main() -> None:
        api, clock = FakeLeases(), FakeClock()
        a, b = candidate(api, clock, "a"), candidate(api, clock, "b")
        assert await a._attempt()
        a._leading = True
        assert not await b._attempt()
        await a.release()
        assert not a.is_leader()
        spec = api.spec()
        assert spec["holderIdentity"] is None and spec["leaseDurationSeconds"] == 1
        assert await b._attempt()  # no lease duration to wait out
        assert api.spec()["holderIdentity"] == "b"
        assert api.spec()["leaseTransitions"] == 1

    run(main())


def test_release_never_clears_someone_elses_lease() -> None:
    async def main() -> None:
        api, clock = FakeLeases(), FakeClock()
        a, b = candidate(api, clock, "a"), candidate(api, clock, "b")
        assert await a._attempt()
        a._leading = True
        clock.advance(9.0)
        lease = api.objects[NAME]
        api._store(NAME, {**lease, "spec": {**lease["spec"], "holderIdentity": "b"}})
        await a.release()
        assert api.spec()["holderIdentity"] == "b"
        await b.release()  # b never led in this process: nothing to release
        assert api.spec()["holderIdentity"] == "b"

    run(main())


def test_an_unreachable_api_server_means_no_leadership_not_a_crash() -> None:
    async def main() -> None:
        api, clock = FakeLeases(), FakeClock()
        api.down = True
        a = candidate(api, clock, "a")
        assert not await a._attempt()
        assert not a.is_leader()
        assert a._valid_until == -math.inf

    run(main())


def test_the_elector_records_whom_it_took_the_lease_from() -> None:
    """The webhook routing unlabels that holder's Pod (it cannot do it itself)."""

    async def main() -> None:
        api, clock = FakeLeases(), FakeClock()
        a, b = candidate(api, clock, "pod-a_1"), candidate(api, clock, "pod-b_2")
        assert await a._attempt()
        assert a.previous_holder is None  # created: nobody before
        assert not await b._attempt()
        clock.advance(15.0)
        assert await b._attempt()
        assert b.previous_holder == "pod-a_1"

    run(main())
