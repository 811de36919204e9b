"""The Scene pass: one run of the effect loop (controller/decide/effects.py) with the
real actuator (controller/controllers/scene/actuator.py), and what a pass leaves behind:
the Scene parked for a job slot or not, its memory settled, a deleted Scene's job
canceled."""

from __future__ import annotations

from collections.abc import Container
from typing import Protocol

from controller.controllers.memory import Memory
from controller.controllers.ports import Key
from controller.controllers.scene.actuator import Actuator, SceneEffects
from controller.controllers.scene.kept import KeptOutputs
from controller.decide.effects import Facts, run_pass
from controller.queue.state import Result


class Parking(Protocol):
    """Job slots as a pass leaves them (controllers/capacity.py: Capacity)."""

    @property
    def waiters(self) -> Container[Key]: ...

    def reconciled(self, scene: Key) -> None: ...

    def park(self, scene: Key, provider: str, project: Key) -> None: ...

    def unpark(self, scene: Key) -> None: ...


class SceneKeys(Protocol):
    """What the intake says of Scene keys, and the Project recount it makes due."""

    def scene_is_urgent(self, key: Key) -> bool: ...

    def recount(self, project: Key) -> None: ...


class Scenes:
    def __init__(
        self,
        *,
        effects: SceneEffects,
        memory: Memory,
        parking: Parking,
        keys: SceneKeys,
        kept: KeptOutputs,
    ) -> None:
        self.effects = effects
        self.memory = memory  # per-Scene memory between passes
        self.parking = parking
        self.keys = keys
        self.kept = kept  # outputs kept on disk for an upload S3 refused
        self.inputs = effects.read  # what a Scene's decision reads (also for tests)

    async def reconcile(self, key: Key) -> Result:
        actuator = Actuator(self.effects, key, self.memory.scene(key))
        try:
            result = await run_pass(actuator, Facts())
        finally:
            # A woken Scene's slot was held for it through the pass (so Scenes looking
            # meanwhile do not take it, HEAD S3 and park again): its start reserved it,
            # or it is given up now and the next wake offers it to another.
            self.parking.reconciled(key)
            if actuator.parked is not None:
                if key not in self.parking.waiters:  # its Project counts the waiting
                    self.keys.recount(actuator.parked[1])
                self.parking.park(key, *actuator.parked)
            else:
                self.parking.unpark(key)
                self.effects.waiting_since.pop(key, None)
            self.effects.search.release(key)  # recorded in status now, or not taken
        if actuator.gone:
            self.memory.scenes.pop(key, None)
            self.kept.drop(key)
        later = await self.effects.duplicates.look(key)
        self.memory.settle_scene(key)
        await self.effects.canceler.deleted(key)
        requeue = result.requeue_after
        if later is not None:
            requeue = later if requeue is None else min(requeue, later)
        return Result(requeue, urgent=self.keys.scene_is_urgent(key))
