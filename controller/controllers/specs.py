"""Validated Project specs, kept while the Project's spec stays the same.

A full pydantic validation of the Project's spec in every Scene and Project pass would
cost ~2 % of the operator's CPU in the benchmark's profile. A spec only
changes with metadata.generation, so the result is kept per Project, uid, generation
and whether the operator's limits apply.
"""

from __future__ import annotations

from typing import Any

from controller.api.project import ProjectSpec
from controller.decide import tenancy
from controller.informer.cache import Body, Key, key_of
from controller.settings import Settings

Checked = tuple[ProjectSpec | None, str | None]


class ProjectSpecs:
    def __init__(self) -> None:
        self._kept: dict[tuple[Key, bool], tuple[Any, Checked]] = {}

    def of(self, project: Body, settings: Settings, limits: bool = True) -> Checked:
        """tenancy.project_spec of the Project's spec, validated once per generation.
        The spec returned is shared: callers copy it (model_copy) to change it."""
        meta = project.get("metadata") or {}
        version = (meta.get("uid"), meta.get("generation"))
        slot = (key_of(project), limits)
        kept = self._kept.get(slot)
        if kept is not None and kept[0] == version and None not in version:
            return kept[1]
        within = self._kept.get((slot[0], True))
        if not limits and within is not None and within[0] == version and within[1][0]:
            checked = within[1]  # within the limits: the same spec without them (one copy)
        else:
            checked = tenancy.project_spec(project.get("spec"), settings, limits)
        self._kept[slot] = (version, checked)
        return checked

    def forget(self, project: Key) -> None:
        for limits in (True, False):
            self._kept.pop((project, limits), None)
