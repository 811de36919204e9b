"""Scenes waiting for a job slot, woken when one frees instead of polled.

A Scene that may not start (its provider or its Project is at its concurrency limit)
parks here. After every reconcile the runtime asks `pick` which parked Scenes to wake:
as many as there are free slots, oldest first, so 10,000 waiting Scenes cost nothing
while the provider is busy (a re-check every 3 s would be 222,000 S3 HEADs and a fifth
of the operator's CPU at 10,000 Scenes).

A woken Scene counts against its slots until it has been reconciled, so one free slot
wakes one Scene, not all of them. No I/O here.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable, Iterable

from controller.api.common import Key


class Waiters:
    def __init__(self) -> None:
        # Both orders hold the same Scenes: per provider (oldest first) for provider
        # slots, per Project for a slot freed inside one Project.
        self._by_provider: dict[str, dict[Key, Key]] = collections.defaultdict(dict)
        self._by_project: dict[Key, dict[Key, str]] = collections.defaultdict(dict)
        self._woken: dict[Key, tuple[str, Key]] = {}
        self.woken_by_provider: collections.Counter[str] = collections.Counter()
        self.woken_by_project: collections.Counter[Key] = collections.Counter()

    def __len__(self) -> int:
        return sum(len(d) for d in self._by_provider.values())

    def __contains__(self, scene: object) -> bool:
        return any(scene in d for d in self._by_provider.values())

    def wait(self, scene: Key, provider: str, project: Key) -> None:
        """Park a Scene; one already parked keeps its place in line."""
        if self._by_provider[provider].get(scene) == project:
            return
        self.discard(scene)
        self._by_provider[provider][scene] = project
        self._by_project[project][scene] = provider

    def line_of(self, provider: str) -> int:
        """How many Scenes wait for a slot of `provider`."""
        return len(self._by_provider.get(provider, ()))

    def hold(self, scene: Key, provider: str, project: Key) -> None:
        """Hold a free slot for a Scene let in without waiting, as for a woken one."""
        if scene not in self._woken:
            self._wake(scene, provider, project, [])

    def discard(self, scene: Key) -> None:
        """The Scene stopped waiting (started, deleted, paused, ...)."""
        self.reconciled(scene)
        for provider, scenes in list(self._by_provider.items()):
            project = scenes.pop(scene, None)
            if project is not None:
                self._drop(self._by_project, project, scene)
                if not scenes:
                    del self._by_provider[provider]

    def waiting_in(self, project: Key) -> int:
        """How many of a Project's Scenes are parked (its status says so)."""
        return len(self._by_project.get(project, ()))

    def held(self, scene: Key) -> tuple[str, Key] | None:
        """(provider, project) of the slot held for this woken Scene, if any."""
        return self._woken.get(scene)

    def reconciled(self, scene: Key) -> None:
        """A woken Scene has had its turn: its slot is no longer held for it."""
        held = self._woken.pop(scene, None)
        if held is not None:
            _dec(self.woken_by_provider, held[0])
            _dec(self.woken_by_project, held[1])

    def pick(
        self,
        provider_free: Callable[[str], int],
        project_free: Callable[[Key], int],
        freed_projects: Iterable[Key] = (),
        scan: int = 32,
    ) -> list[Key]:
        """Scenes to wake now. `*_free` give free slots net of Scenes already woken.

        First one Scene of each Project that just freed a slot (its own line), then the
        oldest Scenes of each provider with free slots. A Scene whose Project is full is
        moved to the back of its provider's line (at most `scan` per provider per call),
        so one full Project cannot block the line.
        """
        woken: list[Key] = []
        for project in freed_projects:
            for scene, provider in self._by_project.get(project, {}).items():
                if scene in self._woken:
                    continue
                if provider_free(provider) > 0 and project_free(project) > 0:
                    self._wake(scene, provider, project, woken)
                break
        for provider, line in list(self._by_provider.items()):
            free = provider_free(provider)
            if free <= 0:
                continue
            to_back: list[Key] = []
            limit = self.woken_by_provider[provider] + free + scan
            for scene, project in itertools.islice(line.items(), limit):
                if free <= 0 or len(to_back) >= scan:
                    break
                if scene in self._woken:
                    continue
                if project_free(project) > 0:
                    self._wake(scene, provider, project, woken)
                    free -= 1
                else:
                    to_back.append(scene)
            for scene in to_back:
                line[scene] = line.pop(scene)
        return woken

    def _wake(self, scene: Key, provider: str, project: Key, out: list[Key]) -> None:
        self._woken[scene] = (provider, project)
        self.woken_by_provider[provider] += 1
        self.woken_by_project[project] += 1
        out.append(scene)

    @staticmethod
    def _drop(table: dict[Key, dict[Key, str]], project: Key, scene: Key) -> None:
        scenes = table.get(project)
        if scenes is not None:
            scenes.pop(scene, None)
            if not scenes:
                del table[project]


def _dec(counter: collections.Counter, key: object) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]
