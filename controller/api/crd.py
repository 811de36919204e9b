"""CustomResourceDefinitions generated from the pydantic models (the single source of truth).

The pydantic JSON schema is turned into a *structural* OpenAPI v3 schema that a 1.20 API
server accepts: `$ref`s inlined, `anyOf [X, null]` collapsed to X, titles dropped, free-form
maps marked `x-kubernetes-preserve-unknown-fields`, and `default: {}` on optional spec
objects whose fields have defaults (so the API server fills the nested defaults).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from controller.api import vocabulary as v
from controller.api.project import ProjectSpec, ProjectStatus
from controller.api.scene import SceneSpec, SceneStatus

Schema = dict[str, Any]


def _resolve(node: Any, defs: dict[str, Schema]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = _resolve(defs[node["$ref"].split("/")[-1]], defs)
        extra = {k: _resolve(val, defs) for k, val in node.items() if k != "$ref"}
        return {**target, **extra}
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) == 1:
            rest = {k: val for k, val in node.items() if k != "anyOf"}
            return _resolve({**options[0], **rest}, defs)
    return {k: _resolve(val, defs) for k, val in node.items()}


def _structural(node: Schema, *, in_spec: bool) -> Schema:
    out: Schema = {}
    for key, val in node.items():
        if key in ("title", "$defs"):
            continue
        # Status needs no defaults (the operator writes it whole); "" defaults say nothing.
        if key == "default" and (val is None or val == "" or not in_spec):
            continue
        if key == "description" and isinstance(val, str):
            val = " ".join(val.split())  # docstrings wrap at 100 columns; kubectl explain rewraps
        out[key] = val
    if out.get("type") == "object" and out.get("additionalProperties") is True:
        out.pop("additionalProperties")
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "properties" in out:
        props = {}
        required = set(out.get("required", []))
        for name, prop in out["properties"].items():
            child = _structural(prop, in_spec=in_spec)
            nested_defaults = any("default" in p for p in child.get("properties", {}).values())
            if in_spec and nested_defaults and name not in required and "default" not in child:
                child["default"] = {}
            props[name] = child
        out["properties"] = props
    if "items" in out:
        out["items"] = _structural(out["items"], in_spec=in_spec)
    item_props = out.get("items", {}).get("properties", {})
    if out.get("type") == "array" and {"type", "status", "lastTransitionTime"} <= item_props.keys():
        # conditions: a map keyed by type, as metav1.Condition lists are
        out["x-kubernetes-list-type"] = "map"
        out["x-kubernetes-list-map-keys"] = ["type"]
    return out


def openapi_schema(model: type[BaseModel], *, in_spec: bool) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _structural(_resolve(raw, defs), in_spec=in_spec)


def _ready_column() -> dict[str, Any]:
    return {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    }


def _message_column() -> dict[str, Any]:
    """The Ready message, shown by `kubectl get -o wide` (priority 1), as cert-manager does."""
    return {
        "name": "Message",
        "type": "string",
        "priority": 1,
        "jsonPath": '.status.conditions[?(@.type=="Ready")].message',
    }


# Deleting a CRD deletes every object of it: GitOps tools never prune or delete these
# (docs/operations.md, Uninstalling: the CRDs go last and by hand).
KEEP_ON_PRUNE = {
    "kustomize.toolkit.fluxcd.io/prune": "disabled",
    "argocd.argoproj.io/sync-options": "Delete=false",
}
AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
# The standard texts every CRD generator (controller-gen) gives these two fields.
API_VERSION_DOC = (
    "APIVersion defines the versioned schema of this representation of an object. Servers "
    "should convert recognized schemas to the latest internal value, and may reject "
    "unrecognized values."
)
KIND_DOC = (
    "Kind is a string value representing the REST resource this object represents. Servers "
    "may infer this from the endpoint the client submits requests to. Cannot be updated. "
    "In CamelCase."
)


def _crd(
    kind: str,
    plural: str,
    singular: str,
    short: str,
    spec: type[BaseModel],
    status: type[BaseModel],
    columns: list[dict[str, Any]],
    description: str,
) -> dict[str, Any]:
    schema = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": API_VERSION_DOC},
            "kind": {"type": "string", "description": KIND_DOC},
            # ObjectMeta: kubectl explain documents it; only name/generateName may be set here
            "metadata": {"type": "object"},
            "spec": openapi_schema(spec, in_spec=True),
            "status": openapi_schema(status, in_spec=False),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{v.GROUP}", "annotations": dict(KEEP_ON_PRUNE)},
        "spec": {
            "group": v.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": [short],
                "categories": [v.CATEGORY],
            },
            "versions": [
                {
                    "name": v.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def project_crd() -> dict[str, Any]:
    columns = [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Scenes", "type": "integer", "jsonPath": ".status.sceneCount"},
        {"name": "Completed", "type": "integer", "jsonPath": ".status.completedScenes"},
        {"name": "Failed", "type": "integer", "jsonPath": ".status.failedScenes"},
        {
            "name": "Assembled",
            "type": "string",
            "jsonPath": f'.status.conditions[?(@.type=="{v.Cond.ASSEMBLED}")].status',
        },
        _ready_column(),
        _message_column(),
        AGE,
    ]
    return _crd(
        v.PROJECT_KIND,
        v.PROJECT_PLURAL,
        v.PROJECT_SINGULAR,
        v.PROJECT_SHORT,
        ProjectSpec,
        ProjectStatus,
        columns,
        "An idea for a short video, planned into Scenes with one generated clip each.",
    )


def scene_crd() -> dict[str, Any]:
    columns = [
        {"name": "Project", "type": "string", "jsonPath": ".spec.projectRef.name"},
        {"name": "Seq", "type": "integer", "jsonPath": ".spec.sequence"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Attempts", "type": "integer", "jsonPath": ".status.attempts"},
        {
            "name": "Trimmed",
            "type": "number",
            "description": "Seconds of the working clip, when spec.edit trims the original",
            "jsonPath": ".status.workingClip.durationSeconds",
        },
        _ready_column(),
        _message_column(),
        AGE,
    ]
    return _crd(
        v.SCENE_KIND,
        v.SCENE_PLURAL,
        v.SCENE_SINGULAR,
        v.SCENE_SHORT,
        SceneSpec,
        SceneStatus,
        columns,
        "One planned shot of a Project and its clip in S3.",
    )


def render_yaml(crd: dict[str, Any]) -> str:
    header = "# Generated by `python -m controller crds` from controller/api. Do not edit.\n"
    return header + yaml.safe_dump(crd, sort_keys=False, width=100, allow_unicode=True)


def crd_files() -> dict[str, str]:
    return {"projects.yaml": render_yaml(project_crd()), "scenes.yaml": render_yaml(scene_crd())}


def write_crds(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in crd_files().items():
        path = folder / name
        path.write_text(text)
        written.append(path)
    return written
