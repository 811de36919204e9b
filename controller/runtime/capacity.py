"""Capacity and budget: the one owner of job slots, reservations, parked Scenes and
the budget left per Project.

A job slot is taken by a job recorded in status (the Store's running totals), by a
pending-marker write under way (a reservation), or by a parked Scene woken for a slot
but not reconciled yet. Budget left counts generations recorded plus reservations.
`wake` says which Scenes to queue now: one parked Scene per free slot, oldest first,
and every Scene a given-back budget may have held back. No I/O here.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

from controller import metrics as m
from controller.api.scene import ScenePhase
from controller.settings import Settings
from controller.store import Key, Store
from controller.waiting import Waiters


class Capacity:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.waiters = Waiters()
        # scene -> (provider, project): a pending marker being written; no await between
        # the capacity check and the reservation, so two Scenes never take one slot.
        self.reserved: dict[Key, tuple[str, Key]] = {}

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
        s, store, w = self.settings, self.store, self.waiters

        def provider_free(p: str) -> int:
            inflight = store.inflight_by_provider[p] + res_p[p] + w.woken_by_provider[p]
            return s.concurrency(p) - inflight

        def project_free(q: Key) -> int:
            inflight = store.inflight_by_project[q] + res_q[q] + w.woken_by_project[q]
            return s.project_concurrency - inflight

        return provider_free, project_free

    def limit_reached(self, provider: str, project: Key) -> str | None:
        """None if a job may start now, else which limit is reached (for the condition)."""
        provider_free, project_free = self.free_slots()  # a woken Scene's slot is kept for it
        if provider_free(provider) <= 0:
            limit = self.settings.concurrency(provider)
            return f"{provider} has {limit} jobs in flight (SCENE_OPERATOR_CONCURRENCY_{provider.upper()})"
        if project_free(project) <= 0:
            limit = self.settings.project_concurrency
            return f"the Project has {limit} jobs in flight (SCENE_OPERATOR_PROJECT_CONCURRENCY)"
        return None

    def budget_left(self, project: Key, cap: int | None) -> int | None:
        """Generations the Project may still start (None: no cap), pending starts counted."""
        if cap is None:
            return None
        pending = sum(1 for p in self.reserved.values() if p[1] == project)
        return cap - self.store.budget_used(project) - pending

    # ------------------------------------------------------------------ reservations
    def reserve(self, scene: Key, provider: str, project: Key) -> bool:
        """Hold a slot for a pending-marker write; False if this Scene holds one already."""
        if scene in self.reserved:
            return False
        self.reserved[scene] = (provider, project)
        return True

    def release(self, scene: Key, *, started: bool) -> None:
        """The marker write ended: the job now counts through the Store, or (not started)
        its budget is given back and the Scenes it held back are woken."""
        held = self.reserved.pop(scene, None)
        if held is not None and not started:
            self.store.budget_freed.append(held[1])

    # ------------------------------------------------------------------ parking
    def reconciled(self, scene: Key) -> None:
        """A woken Scene has its turn: the slot held for it is released."""
        self.waiters.reconciled(scene)

    def park(self, scene: Key, provider: str, project: Key) -> None:
        self.waiters.wait(scene, provider, project)

    def unpark(self, scene: Key) -> None:
        self.waiters.discard(scene)

    def wake(self) -> list[Key]:
        """Scenes to queue now: as many parked ones as there are free job slots, and
        every Scene that may have been held back by a budget that was given back."""
        woken = self._budget_woken()
        freed, self.store.freed = self.store.freed, []
        for provider, count in self.store.inflight_by_provider.items():
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
        if not self.store.budget_freed:
            return []
        projects, self.store.budget_freed = set(self.store.budget_freed), []
        woken: list[Key] = []
        for project in projects:
            for name in self.store.scene_names_of(project):
                status = (self.store.scenes.get((project[0], name)) or {}).get("status") or {}
                if status.get("phase") != ScenePhase.COMPLETED and not status.get("generation"):
                    woken.append((project[0], name))
        return woken
