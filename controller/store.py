"""The operator's in-memory view of Projects and Scenes, fed by kopf's watch events.

Like an informer cache: the latest body per object, an index of Scenes per Project, and
running totals (jobs in flight per provider and project, generations started per project)
kept incrementally so capacity and budget checks cost O(1) at 10,000 scenes.
"""

from __future__ import annotations

import collections
from typing import Any

from controller import vocabulary as v

Key = tuple[str, str]  # (namespace, name)
Body = dict[str, Any]


def key_of(body: Body) -> Key:
    meta = body.get("metadata", {})
    return meta.get("namespace", ""), meta.get("name", "")


def _rv(body: Body | None) -> int:
    try:
        return int((body or {}).get("metadata", {}).get("resourceVersion", "0"))
    except ValueError:
        return 0


def project_of_scene(body: Body) -> Key:
    ns = body.get("metadata", {}).get("namespace", "")
    ref = (body.get("spec") or {}).get("projectRef") or {}
    return ns, str(ref.get("name", ""))


def _inflight(body: Body) -> tuple[str | None, int]:
    status = body.get("status") or {}
    gen = status.get("generation") or None
    provider = gen.get("provider") if isinstance(gen, dict) else None
    started = status.get("generationsStarted", 0)
    return provider, started if isinstance(started, int) else 0


class Store:
    def __init__(self) -> None:
        self.projects: dict[Key, Body] = {}
        self.scenes: dict[Key, Body] = {}
        self._by_project: dict[Key, set[str]] = collections.defaultdict(set)
        self.inflight_by_provider: collections.Counter[str] = collections.Counter()
        self.inflight_by_project: collections.Counter[Key] = collections.Counter()
        self.started_by_project: collections.Counter[Key] = collections.Counter()

    # ------------------------------------------------------------------ projects
    def upsert_project(self, body: Body) -> bool:
        """Store if not older than what we have; return True if stored."""
        key = key_of(body)
        if _rv(body) < _rv(self.projects.get(key)):
            return False
        self.projects[key] = body
        return True

    def delete_project(self, key: Key) -> None:
        self.projects.pop(key, None)

    # ------------------------------------------------------------------ scenes
    def upsert_scene(self, body: Body) -> bool:
        key = key_of(body)
        old = self.scenes.get(key)
        if _rv(body) < _rv(old):
            return False  # a late watch event must not undo a write we already saw
        if old is not None:
            self._account(old, -1)
        self.scenes[key] = body
        self._account(body, +1)
        return True

    def delete_scene(self, key: Key) -> None:
        old = self.scenes.pop(key, None)
        if old is not None:
            self._account(old, -1)

    def _account(self, body: Body, sign: int) -> None:
        _ns, name = key_of(body)
        project = project_of_scene(body)
        if sign > 0:
            self._by_project[project].add(name)
        else:
            names = self._by_project.get(project)
            if names is not None:
                names.discard(name)
                if not names:
                    del self._by_project[project]
        provider, started = _inflight(body)
        if provider:
            self.inflight_by_provider[provider] += sign
            self.inflight_by_project[project] += sign
        self.started_by_project[project] += sign * started

    def scenes_of(self, project: Key) -> list[Body]:
        ns = project[0]
        return [
            self.scenes[(ns, n)]
            for n in sorted(self._by_project.get(project, ()))
            if (ns, n) in self.scenes
        ]

    def scene_names_of(self, project: Key) -> list[str]:
        return sorted(self._by_project.get(project, ()))


def is_owned_by(scene: Body, project: Body) -> bool:
    uid = project.get("metadata", {}).get("uid")
    refs = scene.get("metadata", {}).get("ownerReferences") or []
    return any(r.get("uid") == uid and r.get("kind") == v.PROJECT_KIND for r in refs)
