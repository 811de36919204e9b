"""The operator's in-memory view of Projects and Scenes, fed by kopf's watch events.

Like an informer cache: the latest body per object and an index of Scenes per Project.
Every Scene change is told to a listener (controller/controllers/capacity.py), which keeps
the running totals that make capacity and budget checks O(1) at 10,000 Scenes.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Callable
from typing import Any

from controller.api import vocabulary as v
from controller.api.common import Body, Key


def key_of(body: Body) -> Key:
    meta = body.get("metadata", {})
    return meta.get("namespace", ""), meta.get("name", "")


def resource_version(body: Body | None) -> int:
    try:
        return int((body or {}).get("metadata", {}).get("resourceVersion", "0"))
    except ValueError:
        return 0


# Never read by the operator (it writes labels only when it creates a Scene, and
# never writes a whole object back); a Scene's managedFields alone are 43 % of its JSON.
_DROPPED_METADATA = frozenset({"managedFields", "labels", "creationTimestamp"})
_DROPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def slim(body: Body) -> Body:
    """The body as cached: without managedFields, labels, creationTimestamp and
    kubectl's last-applied copy (like client-go's TransformStripManagedFields), with
    keys interned and short values shared (the same few dozen names and values repeat
    in every Scene), a long string the body repeats held once (a Completed Scene names
    its clip's S3 key three times), and the owner reference and projectRef one object
    for all the Scenes of a Project: ~6.6 kB of JSON -> ~2.8 kB of objects.
    A copy: the caller's dict is never mutated, nor is a cached body ever."""
    meta = body.get("metadata")
    if isinstance(meta, dict):
        annotations = meta.get("annotations") or {}
        drop = [a for a in _DROPPED_ANNOTATIONS if a in annotations]
        meta = {k: val for k, val in meta.items() if k not in _DROPPED_METADATA}
        if drop:
            meta["annotations"] = {k: val for k, val in annotations.items() if k not in drop}
        body = {**body, "metadata": meta}
    cached = _compact(body, {})
    meta, spec = cached.get("metadata"), cached.get("spec")
    if isinstance(meta, dict) and isinstance(meta.get("ownerReferences"), list):
        meta["ownerReferences"] = [_share_flat(r) for r in meta["ownerReferences"]]
    if isinstance(spec, dict) and "projectRef" in spec:
        spec["projectRef"] = _share_flat(spec["projectRef"])
    return cached


def _compact(value: Any, seen: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {sys.intern(k): _compact(v, seen) for k, v in value.items()}
    if isinstance(value, list):
        return [_compact(v, seen) for v in value]
    if isinstance(value, str):
        if len(value) <= 32:
            return _share(_shared, value, value)
        return seen.setdefault(value, value)
    return value


# Short values shared across cached bodies (phases, reasons, names, times). Not
# sys.intern: many are unique (resourceVersions, timestamps, job ids), and the
# interpreter's table of interned strings grew with every one the cache held, ~1.9 kB
# per Scene. Bounded: when full it starts over; cached bodies keep what they hold.
SHARED_VALUES_MAX = 16_384
_shared: dict[Any, Any] = {}
_shared_refs: dict[Any, Any] = {}  # owner references and projectRefs (about 2 per Project)


def _share(table: dict[Any, Any], key: Any, value: Any) -> Any:
    got = table.get(key)
    if got is None:
        if len(table) >= SHARED_VALUES_MAX:
            table.clear()
        got = table[key] = value
    return got


def _share_flat(value: Any) -> Any:
    """One object for equal dicts of scalars (types compared too: 1 is not true)."""
    if not isinstance(value, dict) or any(isinstance(v, (dict, list)) for v in value.values()):
        return value
    return _share(_shared_refs, tuple((k, type(v), v) for k, v in value.items()), value)


def project_of_scene(body: Body) -> Key:
    ns = body.get("metadata", {}).get("namespace", "")
    ref = (body.get("spec") or {}).get("projectRef") or {}
    return ns, str(ref.get("name", ""))


def pending_start(body: Body) -> bool:
    """A pending marker: a start counted in generationsStarted whose job id is not known
    yet (it may still be given back if the provider refuses the create)."""
    gen = (body.get("status") or {}).get("generation")
    return isinstance(gen, dict) and not gen.get("jobId")


def settled_generations(scene: Body) -> int:
    """Generations a Scene started that are known to be paid (pending marker excluded)."""
    started = (scene.get("status") or {}).get("generationsStarted", 0)
    started = started if isinstance(started, int) else 0
    return max(started - pending_start(scene), 0)


def generations_used(project: Body | None) -> int:
    """The Project's status counter of generations used (only ever goes up)."""
    used = ((project or {}).get("status") or {}).get("generationsUsed", 0)
    return used if isinstance(used, int) else 0


SceneListener = Callable[[Body | None, Body | None], None]  # (old, new); None: absent


class Store:
    def __init__(self) -> None:
        self.projects: dict[Key, Body] = {}
        self.scenes: dict[Key, Body] = {}
        self._by_project: dict[Key, set[str]] = collections.defaultdict(set)
        # Told of every change to a cached Scene (the capacity keeps running totals), so
        # Scenes enter and leave `scenes` only through upsert_scene and delete_scene.
        self.on_scene_change: SceneListener = lambda old, new: None

    # ------------------------------------------------------------------ projects
    def upsert_project(self, body: Body) -> bool:
        """Store if not older than what we have; return True if stored."""
        key = key_of(body)
        if resource_version(body) < resource_version(self.projects.get(key)):
            return False
        self.projects[key] = slim(body)
        return True

    def delete_project(self, key: Key) -> None:
        self.projects.pop(key, None)

    # ------------------------------------------------------------------ scenes
    def upsert_scene(self, body: Body) -> bool:
        key = key_of(body)
        old = self.scenes.get(key)
        if resource_version(body) < resource_version(old):
            return False  # a late watch event must not undo a write we already saw
        if old is not None:
            self._index(old, remove=True)
        self.scenes[key] = body = slim(body)
        self._index(body)
        self.on_scene_change(old, body)
        return True

    def delete_scene(self, key: Key) -> None:
        old = self.scenes.pop(key, None)
        if old is not None:
            self._index(old, remove=True)
            self.on_scene_change(old, None)

    def _index(self, body: Body, *, remove: bool = False) -> None:
        _ns, name = key_of(body)
        project = project_of_scene(body)
        if not remove:
            self._by_project[project].add(name)
            return
        names = self._by_project.get(project)
        if names is not None:
            names.discard(name)
            if not names:
                del self._by_project[project]

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


def scene_belongs_to(scene: Body, project: Body) -> bool:
    """Whether an existing Scene is this Project's: owned by it (ownerReference uid), or,
    with no Project owner at all, declared for it (spec.projectRef). A Scene owned by
    another Project, even an earlier one of the same name, is not."""
    refs = [
        r
        for r in scene.get("metadata", {}).get("ownerReferences") or []
        if r.get("kind") == v.PROJECT_KIND
    ]
    if refs:
        return is_owned_by(scene, project)
    return project_of_scene(scene) == key_of(project)
