"""Capacity and budget: the one owner of job slots, reservations, in-flight and
generation counts, freed slots, parked Scenes, the budget left per Project and wake-ups.

A job slot is taken by a job recorded in status (running totals kept here from every
change to the cache; the Store keeps only the objects), by a pending-marker write under
way (a reservation), or by a parked Scene woken for a slot but not reconciled yet.
Budget left counts generations recorded plus reservations; the settled generations of
Scenes deleted in this process are kept for the Project's counter.
`wake` says which Scenes to queue now: one parked Scene per free slot, oldest first,
and every Scene a given-back budget may have held back. No I/O here.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

from controller.api.scene import ScenePhase
from controller.informer.cache import (
    Body,
    Key,
    Store,
    generations_used,
    pending_start,
    project_of_scene,
    settled_generations,
)
from controller.observability import metrics as m
from controller.queue.waiting import Waiters
from controller.settings import Settings


class Capacity:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.waiters = Waiters()
        # Running totals of what the cached Scenes record in status.
        self.inflight_by_provider: collections.Counter[str] = collections.Counter()
        self.inflight_by_project: collections.Counter[Key] = collections.Counter()
        self.started_by_project: collections.Counter[Key] = collections.Counter()
        self.pending_by_project: collections.Counter[Key] = collections.Counter()
        self.freed: list[Key] = []  # Projects where a job ended since the last wake
        # Projects whose generations-started total fell (a refused start gave its attempt
        # back, a Scene was deleted): Scenes held back by the budget may start now.
        self.budget_freed: list[Key] = []
        # Settled generations of Scenes deleted in this process (a Project's counter).
        self.deleted_settled: collections.Counter[Key] = collections.Counter()
        # scene -> (provider, project): a pending marker being written; no await between
        # the capacity check and the reservation, so two Scenes never take one slot.
        self.reserved: dict[Key, tuple[str, Key]] = {}
        for body in store.scenes.values():
            self._account(body, +1)
        store.on_scene_change = self.scene_changed

    # ------------------------------------------------------------------ the totals
    def scene_changed(self, old: Body | None, new: Body | None) -> None:
        """A cached Scene was stored (`new`) over `old` (None: new), or deleted (`new` None)."""
        if old is not None:
            self._account(old, -1)
        if new is not None:
            self._account(new, +1)
        if old is None:
            return
        if new is None:
            self.deleted_settled[project_of_scene(old)] += settled_generations(old)
        was, now = _inflight(old), _inflight(new) if new is not None else (None, 0)
        if was[0] and not now[0]:
            self.freed.append(project_of_scene(old))
        if was[1] > now[1]:
            self.budget_freed.append(project_of_scene(old))

    def _account(self, body: Body, sign: int) -> None:
        project = project_of_scene(body)
        provider, started = _inflight(body)
        if provider:
            self.inflight_by_provider[provider] += sign
            self.inflight_by_project[project] += sign
        self.started_by_project[project] += sign * started
        if pending_start(body):
            self.pending_by_project[project] += sign

    # ------------------------------------------------------------------ questions
    def _reserved(self) -> tuple[collections.Counter[str], collections.Counter[Key]]:
        by_provider: collections.Counter[str] = collections.Counter()
        by_project: collections.Counter[Key] = collections.Counter()
        for provider, project in self.reserved.values():
            by_provider[provider] += 1
            by_project[project] += 1
        return by_provider, by_project

    def free_slots(self) -> tuple[Callable[[str], int], Callable[[Key], int]]:
        """Free job slots per provider and per Project, net of jobs in flight, marker
        writes under way, and Scenes woken for a slot but not yet reconciled."""
        res_p, res_q = self._reserved()
        s, w = self.settings, self.waiters

        def provider_free(p: str) -> int:
            inflight = self.inflight_by_provider[p] + res_p[p] + w.woken_by_provider[p]
            return s.concurrency(p) - inflight

        def project_free(q: Key) -> int:
            inflight = self.inflight_by_project[q] + res_q[q] + w.woken_by_project[q]
            return s.project_concurrency - inflight

        return provider_free, project_free

    def limit_reached(self, provider: str, project: Key, scene: Key | None = None) -> str | None:
        """None if a job may start now, else which limit is reached (for the condition).
        A slot held for a woken Scene is free to that Scene only (`scene`), and stays
        held for it through its whole pass: others that look meanwhile see it taken."""
        provider_free, project_free = self.free_slots()
        own = self.waiters.held(scene) if scene is not None else None
        mine_p = 1 if own is not None and own[0] == provider else 0
        mine_q = 1 if own is not None and own[1] == project else 0
        if provider_free(provider) + mine_p <= 0:
            limit = self.settings.concurrency(provider)
            return f"{provider} has {limit} jobs in flight (SCENE_OPERATOR_CONCURRENCY_{provider.upper()})"
        if project_free(project) + mine_q <= 0:
            limit = self.settings.project_concurrency
            return f"the Project has {limit} jobs in flight (SCENE_OPERATOR_PROJECT_CONCURRENCY)"
        return None

    def budget_left(self, project: Key, cap: int | None) -> int | None:
        """Generations the Project may still start (None: no cap), pending starts counted."""
        if cap is None:
            return None
        pending = sum(1 for p in self.reserved.values() if p[1] == project)
        return cap - self.budget_used(project) - pending

    def budget_used(self, project: Key) -> int:
        """Generations this Project has used: those of its Scenes now (pending starts
        included), or, if more, the status counter (Scenes deleted since gave nothing
        back) plus the pending starts, which the counter does not hold yet."""
        counter = generations_used(self.store.projects.get(project))
        return max(self.started_by_project[project], counter + self.pending_by_project[project])

    # ------------------------------------------------------------------ reservations
    def reserve(self, scene: Key, provider: str, project: Key) -> bool:
        """Hold a slot for a pending-marker write; False if this Scene holds one already."""
        if scene in self.reserved:
            return False
        self.waiters.reconciled(scene)  # the slot held for it (if woken) is now reserved
        self.reserved[scene] = (provider, project)
        return True

    def release(self, scene: Key, *, started: bool) -> None:
        """The marker write ended: the job now counts in the totals, or (not started)
        its budget is given back and the Scenes it held back are woken."""
        held = self.reserved.pop(scene, None)
        if held is not None and not started:
            self.budget_freed.append(held[1])

    # ------------------------------------------------------------------ parking
    def reconciled(self, scene: Key) -> None:
        """A woken Scene has its turn: the slot held for it is released."""
        self.waiters.reconciled(scene)

    def park(self, scene: Key, provider: str, project: Key) -> None:
        self.waiters.wait(scene, provider, project)

    def admit(self, scene: Key, provider: str, project: Key) -> bool:
        """A Scene just planned: True if it may have its first pass now, a slot held for
        it as for a woken Scene; False if it was parked instead. It parks when Scenes of
        its provider already wait (it could not start before them) or no slot is free:
        a pass now would only HEAD S3 and park it, and a plan of 1,000 Scenes would
        fill the work queue with such passes."""
        if self.waiters.line_of(provider) or self.limit_reached(provider, project):
            self.park(scene, provider, project)
            return False
        self.waiters.hold(scene, provider, project)
        return True

    def unpark(self, scene: Key) -> None:
        self.waiters.discard(scene)

    def wake(self) -> list[Key]:
        """Scenes to queue now: as many parked ones as there are free job slots, and
        every Scene that may have been held back by a budget that was given back."""
        woken = self._budget_woken()
        freed, self.freed = self.freed, []
        for provider, count in self.inflight_by_provider.items():
            m.IN_FLIGHT.labels(provider).set(count)
        m.WAITING.set(len(self.waiters))
        if len(self.waiters):
            provider_free, project_free = self.free_slots()
            woken.extend(self.waiters.pick(provider_free, project_free, freed))
        return woken

    def _budget_woken(self) -> list[Key]:
        """A budget-exhausted decision counts pending starts; when one is given back
        (refused by the provider, or its marker never written) nothing else would decide
        those Scenes again. Rare, so every Scene of the Project that is neither done nor
        in flight is queued: one still being decided is re-run after (the queue's dirty
        mark), so a decision racing the give-back is not lost."""
        if not self.budget_freed:
            return []
        projects, self.budget_freed = set(self.budget_freed), []
        woken: list[Key] = []
        for project in projects:
            for name in self.store.scene_names_of(project):
                status = (self.store.scenes.get((project[0], name)) or {}).get("status") or {}
                if status.get("phase") != ScenePhase.COMPLETED and not status.get("generation"):
                    woken.append((project[0], name))
        return woken


def _inflight(body: Body) -> tuple[str | None, int]:
    """The provider of the job a Scene records (None: none), and its generations started."""
    status = body.get("status") or {}
    gen = status.get("generation") or None
    provider = gen.get("provider") if isinstance(gen, dict) else None
    started = status.get("generationsStarted", 0)
    return provider, started if isinstance(started, int) else 0
