"""A fake Kubernetes API: objects with resourceVersions and generations, merge patches,
409 on a stale resourceVersion or an existing name, 404 on a missing object, finalizers
that hold a deletion, and a watch that delivers every change to its subscribers."""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from controller.api.vocabulary import GROUP
from controller.kube.client import ApiError

Body = dict[str, Any]
Watcher = Callable[[str, str, Body], None]  # (event type, plural, object)
Hook = Callable[[str, str, str, str], Awaitable[None] | None]  # (verb, plural, ns, name)


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch."""
    out = dict(target)
    for k, val in patch.items():
        if val is None:
            out.pop(k, None)
        elif isinstance(val, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], val)
        else:
            out[k] = copy.deepcopy(val)
    return out


@dataclass
class FakeKube:
    objects: dict[tuple[str, str, str], Body] = field(default_factory=dict)
    events: list[Body] = field(default_factory=list)
    watchers: list[Watcher] = field(default_factory=list)
    calls: list[tuple[str, str, str, str]] = field(default_factory=list)
    # Called before every request; raise to fail it (an outage, a timeout, ...).
    before: list[Hook] = field(default_factory=list)
    _rv: itertools.count = field(default_factory=lambda: itertools.count(1))
    # The operator's CRDs, by name (cluster-scoped; read only, to see one being deleted).
    crds: dict[str, Body] = field(
        default_factory=lambda: {
            f"{plural}.{GROUP}": {"metadata": {"name": f"{plural}.{GROUP}"}}
            for plural in ("projects", "scenes")
        }
    )

    # ------------------------------------------------------------------ helpers for tests
    def watch(self, fn: Watcher) -> None:
        self.watchers.append(fn)

    def _notify(self, type_: str, plural: str, body: Body) -> None:
        for fn in self.watchers:
            fn(type_, plural, copy.deepcopy(body))

    async def _call(self, verb: str, plural: str, ns: str, name: str) -> None:
        self.calls.append((verb, plural, ns, name))
        for hook in list(self.before):
            result = hook(verb, plural, ns, name)
            if result is not None:
                await result

    def obj(self, plural: str, ns: str, name: str) -> Body | None:
        return self.objects.get((plural, ns, name))

    def put(self, plural: str, body: Body) -> Body:
        """Create or replace an object as a user would (kubectl apply): spec changes move
        metadata.generation."""
        meta = body.setdefault("metadata", {})
        key = (plural, meta.get("namespace", "default"), meta["name"])
        old = self.objects.get(key)
        if old is None:
            return self._create(plural, key, body)
        new = copy.deepcopy(body)
        new["metadata"] = merge(old["metadata"], meta)
        new["status"] = old.get("status", {})
        gen = old["metadata"]["generation"]
        new["metadata"]["generation"] = gen + (new.get("spec") != old.get("spec"))
        return self._store(plural, key, new, "MODIFIED")

    def delete(self, plural: str, ns: str, name: str) -> None:
        old = self.objects.get((plural, ns, name))
        if old is None:
            return
        if old["metadata"].get("finalizers"):
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"
            self._store(plural, (plural, ns, name), new, "MODIFIED")
            return
        del self.objects[(plural, ns, name)]
        self._notify("DELETED", plural, old)

    def delete_crd(self, name: str) -> None:
        """`kubectl delete crd NAME`: the CRD is Terminating while the API server deletes
        its objects (the test deletes them: FakeKube.delete)."""
        self.crds[name]["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"

    def annotate(self, plural: str, ns: str, name: str, **annotations: str) -> Body:
        old = self.objects[(plural, ns, name)]
        new = copy.deepcopy(old)
        new["metadata"].setdefault("annotations", {}).update(annotations)
        return self._store(plural, (plural, ns, name), new, "MODIFIED")

    def _create(self, plural: str, key: tuple[str, str, str], body: Body) -> Body:
        new = copy.deepcopy(body)
        meta = new["metadata"]
        meta.setdefault("namespace", key[1])
        meta["uid"] = str(uuid.uuid4())
        meta["generation"] = 1
        meta["creationTimestamp"] = "2030-01-01T00:00:00Z"
        new.setdefault("status", {})
        return self._store(plural, key, new, "ADDED")

    def _store(self, plural: str, key: tuple[str, str, str], body: Body, type_: str) -> Body:
        body["metadata"]["resourceVersion"] = str(next(self._rv))
        self.objects[key] = body
        self._notify(type_, plural, body)
        return copy.deepcopy(body)

    # ------------------------------------------------------------------ the KubeClient
    async def get(self, plural: str, namespace: str, name: str) -> Body | None:
        await self._call("get", plural, namespace, name)
        body = self.objects.get((plural, namespace, name))
        return copy.deepcopy(body) if body is not None else None

    async def get_crd(self, name: str) -> Body | None:
        await self._call("get_crd", "customresourcedefinitions", "", name)
        body = self.crds.get(name)
        return copy.deepcopy(body) if body is not None else None

    async def list(
        self, plural: str, namespace: str, *, label_selector: str | None = None
    ) -> list[Body]:
        await self._call("list", plural, namespace, "")
        return [
            copy.deepcopy(b)
            for (p, ns, _), b in sorted(self.objects.items())
            if (p, ns) == (plural, namespace)
        ]

    async def list_with_version(self, plural: str, namespace: str) -> tuple[list[Body], str]:
        """A LIST and its resourceVersion: newer than every object it holds."""
        items = await self.list(plural, namespace)
        return items, str(next(self._rv))

    async def list_pages(
        self, plural: str, namespace: str
    ) -> AsyncIterator[tuple[list[Body], str]]:
        yield await self.list_with_version(plural, namespace)  # one page

    async def create(self, plural: str, namespace: str, body: Body) -> Body:
        name = body["metadata"]["name"]
        await self._call("create", plural, namespace, name)
        key = (plural, namespace, name)
        if key in self.objects:
            raise ApiError(409, f"{name} already exists", "AlreadyExists")
        return self._create(plural, key, body)

    def _existing(self, plural: str, namespace: str, name: str, rv: str | None) -> Body:
        old = self.objects.get((plural, namespace, name))
        if old is None:
            raise ApiError(404, f"{name} not found", "NotFound")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise ApiError(409, "the object has been modified", "Conflict")
        return old

    async def patch_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status: dict[str, Any],
        *,
        resource_version: str | None = None,
    ) -> Body:
        await self._call("patch_status", plural, namespace, name)
        old = self._existing(plural, namespace, name, resource_version)
        new = copy.deepcopy(old)
        new["status"] = merge(old.get("status") or {}, status)
        return self._store(plural, (plural, namespace, name), new, "MODIFIED")

    async def patch_metadata(
        self, plural: str, namespace: str, name: str, metadata: dict[str, Any]
    ) -> Body:
        await self._call("patch_metadata", plural, namespace, name)
        old = self._existing(plural, namespace, name, metadata.get("resourceVersion"))
        new = copy.deepcopy(old)
        new["metadata"] = merge(
            old["metadata"], {k: v for k, v in metadata.items() if k != "resourceVersion"}
        )
        key = (plural, namespace, name)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            del self.objects[key]
            self._notify("DELETED", plural, new)
            return copy.deepcopy(new)
        return self._store(plural, key, new, "MODIFIED")

    async def post_event(
        self,
        obj: Body,
        *,
        reason: str,
        message: str,
        type_: str = "Normal",
        count: int = 1,
        first: Any = None,
    ) -> None:
        meta = obj.get("metadata", {})
        await self._call("post_event", "events", meta.get("namespace", ""), meta.get("name", ""))
        self.events.append(
            {
                "object": meta.get("name"),
                "kind": obj.get("kind"),
                "reason": reason,
                "message": message,
                "type": type_,
                "count": count,
            }
        )

    def reasons(self, name: str | None = None) -> list[str]:
        return [e["reason"] for e in self.events if name is None or e["object"] == name]
