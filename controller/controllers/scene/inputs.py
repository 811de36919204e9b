"""What a Scene's decision reads besides its own status (its spec, its Project, the
budget), and the state of one Scene pass that the effects share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from pydantic import ValidationError

from controller.api import vocabulary as v
from controller.api.common import ErrorInfo
from controller.api.request import VideoRequest
from controller.api.scene import SceneSpec
from controller.controllers.memory import SceneMemory
from controller.controllers.ports import Body, Key
from controller.controllers.specs import ProjectSpecs
from controller.decide import scene as sc
from controller.decide import tenancy
from controller.decide.desired import desired_for
from controller.informer.cache import key_of, project_of_scene
from controller.settings import Settings

BudgetLeft = Callable[[Key, int | None], int | None]  # Capacity.budget_left


@dataclass(frozen=True)
class SceneInputs:
    """What a Scene's decision reads besides its own status."""

    desired: sc.Desired | None
    request: VideoRequest | None
    blocked: ErrorInfo | None
    controls: sc.Controls
    project: Body | None


@dataclass
class ScenePass:
    """One pass of one Scene: its key, its memory, and what `observe` read (the cached
    body and its inputs), shared by the effects of the pass."""

    key: Key
    mem: SceneMemory
    body: Body = field(default_factory=dict)
    inputs: SceneInputs = field(
        default_factory=lambda: SceneInputs(None, None, None, sc.Controls(), None)
    )


class InputReader:
    """A Scene's inputs from the cache: its spec validated, its Project's spec (validated
    once per generation), the operator's limits, and the budget left."""

    def __init__(
        self,
        *,
        settings: Settings,
        projects: Mapping[Key, Body],
        specs: ProjectSpecs,
        budget_left: BudgetLeft,
    ) -> None:
        self.settings = settings
        self.projects = projects
        self.specs = specs
        self.budget_left = budget_left

    def __call__(self, body: Body) -> SceneInputs:
        ns, _ = key_of(body)
        project = self.projects.get(project_of_scene(body))

        def blocked(reason: str, message: str) -> SceneInputs:
            err = ErrorInfo(reason=reason, message=message)
            return SceneInputs(None, None, err, sc.Controls(), project)

        try:
            spec = SceneSpec.model_validate(body.get("spec") or {})
        except ValidationError as e:
            return blocked(v.Reason.INVALID_SPEC, short(e))
        if project is None or project.get("metadata", {}).get("deletionTimestamp"):
            msg = f"project {spec.project_ref.name!r} not found in namespace {ns}"
            return blocked(v.Reason.PROJECT_NOT_FOUND, msg)
        # The operator's limits stop new jobs; a paid job in flight is still finished.
        limits = not (body.get("status") or {}).get("generation")
        pspec, problem = self.specs.of(project, self.settings, limits)
        if pspec is None:
            return blocked(v.Reason.INVALID_SPEC, f"project: {problem}")
        desired, request = desired_for(spec, pspec, ns, project["metadata"]["uid"], self.settings)
        problem = tenancy.scene_problem(desired, self.settings) if limits else None
        if problem:
            return blocked(v.Reason.INVALID_SPEC, problem)
        annotations = project.get("metadata", {}).get("annotations") or {}
        controls = sc.Controls(
            generate_videos=pspec.generate_videos,
            paused=pspec.paused,
            retry_limit=pspec.retry.limit,
            backoff=pspec.retry.backoff,
            missing_clip=pspec.repair.missing_clip,
            budget_left=self.budget_left(key_of(project), pspec.budget.max_generations),
            regenerate_token=annotations.get(v.ANNOTATION_REGENERATE),
            retry_token=annotations.get(v.ANNOTATION_RETRY),
        )
        return SceneInputs(desired, request, None, controls, project)


class ProjectRecheck:
    """A Scene with a job in flight whose Project is not in the cache: the cache may only
    be behind (a restart, a watch event not delivered yet). The Project is read from the
    API before its job is abandoned; found, it is cached and the Scene goes on."""

    def __init__(
        self,
        *,
        get_project: Callable[[str, str], Awaitable[Body | None]],
        observed: Callable[[Body], None],
        read: Callable[[Body], SceneInputs],
    ) -> None:
        self.get_project = get_project  # a GET of the Project from the API server
        self.observed = observed  # the intake's Project event handler
        self.read = read

    async def confirm(self, body: Body, inputs: SceneInputs) -> SceneInputs:
        blocked, status = inputs.blocked, body.get("status") or {}
        if (
            blocked is None
            or blocked.reason != v.Reason.PROJECT_NOT_FOUND
            or inputs.project is not None  # there, and being deleted: no doubt
            or not status.get("generation")
        ):
            return inputs
        fresh = await self.get_project(*project_of_scene(body))
        if fresh is None:
            return inputs
        self.observed(fresh)
        return self.read(body)


def short(e: ValidationError) -> str:
    return tenancy.short_error(e)
