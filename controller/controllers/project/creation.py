"""Creating a Project's planned Scenes: deterministic names (a 409 of this Project's own
Scene counts as created), owned by the Project; a name another object holds is reported
and tried again later, never taken over."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

from controller.api import naming
from controller.api import vocabulary as v
from controller.api.project import PlanInfo, PlannedSceneRecord, ProjectSpec
from controller.api.scene import SceneSpec
from controller.controllers.memory import ProjectMemory
from controller.controllers.ports import Body, EventSink, Key, KubeClient
from controller.decide.project import name_conflict_message
from controller.informer.cache import key_of, scene_belongs_to
from controller.kube.errors import ApiError
from controller.queue.state import sooner

NAME_CONFLICT_RETRY = 30.0  # seconds between tries to create a Scene whose name is taken
RECREATE_SECONDS = 1.0  # a planned Scene deleted while it was created: created again then


def scene_name(project: str, sequence: int) -> str:
    return naming.scene_name(project, sequence)  # shortened near the name limits


class SceneCreator:
    def __init__(
        self,
        *,
        api: KubeClient,
        scene_names: Callable[[Key], list[str]],
        observed: Callable[[Body, str], None],
        events: EventSink,
        default_provider: str,
    ) -> None:
        self.api = api
        self.scene_names = scene_names  # the cache's Scenes of a Project
        # A Scene created or found, with its video provider: into the cache and the
        # slot line (Intake.scene_planned).
        self.observed = observed
        self.events = events
        self.default_provider = default_provider

    async def create_missing(
        self, project: Body, info: PlanInfo, mem: ProjectMemory
    ) -> float | None:
        """Create the plan's Scenes not in the cache; returns when to look again (a Scene
        deleted meanwhile, a name another object holds), or None."""
        key = key_of(project)
        existing = set(self.scene_names(key))
        try:
            pspec = ProjectSpec.model_validate(project.get("spec") or {})
        except ValidationError:
            return None
        conflicts: list[str] = []
        again = None
        provider = str(pspec.video.provider or self.default_provider)  # planned: no override
        for i, planned in enumerate(info.scenes, start=1):
            name = scene_name(key[1], i)
            if name in existing:
                continue
            scene = scene_body(project, name, i, planned, pspec)
            try:
                created = await self.api.create(v.SCENE_PLURAL, key[0], scene)
            except ApiError as e:
                if not e.conflict:
                    raise
                # Counted as created only if it is this Project's (created before a
                # restart); a Scene of another Project is reported, never taken over.
                found = await self.api.get(v.SCENE_PLURAL, key[0], name)
                if found is None:  # deleted meanwhile: create it on the next pass
                    again = sooner(again, RECREATE_SECONDS)
                    continue
                if not scene_belongs_to(found, project):
                    conflicts.append(name)
                    continue
                created = found
            self.observed(created, provider)
        return sooner(again, await self.report_name_conflicts(project, conflicts, mem))

    async def report_name_conflicts(
        self, project: Body, conflicts: list[str], mem: ProjectMemory
    ) -> float | None:
        """Scenes of the plan that exist but are not this Project's: a Warning Event when
        the set changes, the ScenesPlanned condition (see project_status), and another try
        later (the other Scene may be garbage-collected, or renamed by its owner)."""
        if conflicts and conflicts != mem.name_conflicts:
            message = name_conflict_message(conflicts)
            await self.events.post(project, v.Reason.SCENE_NAME_TAKEN, message, "Warning")
        mem.name_conflicts = conflicts
        return NAME_CONFLICT_RETRY if conflicts else None


def scene_body(
    project: Body, name: str, sequence: int, planned: PlannedSceneRecord, pspec: ProjectSpec
) -> Body:
    """The Scene a plan's entry becomes: labelled and owned by its Project."""
    key, meta = key_of(project), project["metadata"]
    return {
        "apiVersion": v.API_VERSION,
        "kind": v.SCENE_KIND,
        "metadata": {
            "name": name,
            "namespace": key[0],
            "labels": {
                v.LABEL_PROJECT: naming.project_label(key[1]),
                v.LABEL_MANAGED_BY: v.MANAGER,
            },
            "ownerReferences": [
                {
                    "apiVersion": v.API_VERSION,
                    "kind": v.PROJECT_KIND,
                    "name": key[1],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": SceneSpec(
            project_ref={"name": key[1]},
            sequence=sequence,
            prompt=planned.prompt,
            negative_prompt=planned.negative_prompt,
            duration_seconds=pspec.duration_seconds(),
            aspect_ratio=pspec.scenes.aspect_ratio,
        ).wire(),
    }
