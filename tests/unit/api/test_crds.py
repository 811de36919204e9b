"""The CRDs under crds/ are generated from the pydantic models, structural, and agree with them.

Pure and fast: no API server. ``tests/integration/test_crds_api.py`` checks the same CRDs
against a real 1.20 API server.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from controller.api import vocabulary as v
from controller.api.common import RESERVED_PARAMS, AspectRatio
from controller.api.crd import crd_files, project_crd, scene_crd
from controller.api.project import MAX_PROMPT, MAX_SCENES, Mode, ProjectSpec, ProjectStatus
from controller.api.scene import SceneSpec, SceneStatus

CRD_DIR = Path(__file__).resolve().parents[3] / "crds"
REGENERATE = "python -m controller crds --output crds"

Schema = dict[str, Any]


def root_schema(crd: dict[str, Any]) -> Schema:
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


CRDS = {"projects": project_crd(), "scenes": scene_crd()}
MODELS: dict[str, tuple[type[BaseModel], Schema]] = {
    "ProjectSpec": (ProjectSpec, root_schema(CRDS["projects"])["properties"]["spec"]),
    "ProjectStatus": (ProjectStatus, root_schema(CRDS["projects"])["properties"]["status"]),
    "SceneSpec": (SceneSpec, root_schema(CRDS["scenes"])["properties"]["spec"]),
    "SceneStatus": (SceneStatus, root_schema(CRDS["scenes"])["properties"]["status"]),
}


# --- a small OpenAPI v3 (structural subset) validator, pruner and defaulter ------------------


def _type_ok(value: Any, kind: str) -> bool:
    match kind:
        case "string":
            return isinstance(value, str)
        case "boolean":
            return isinstance(value, bool)
        case "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        case "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "object":
            return isinstance(value, dict)
        case "array":
            return isinstance(value, list)
    raise AssertionError(f"unknown type {kind!r}")


def crd_errors(value: Any, schema: Schema, path: str = "") -> list[str]:
    """What the API server's OpenAPI validation would complain about (the subset we use)."""
    if "type" in schema and not _type_ok(value, schema["type"]):
        return [f"{path}: must be of type {schema['type']}"]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, str):
        if len(value) > schema.get("maxLength", math.inf):
            errors.append(f"{path}: longer than {schema['maxLength']}")
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{path}: shorter than {schema['minLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: does not match {schema['pattern']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value > schema.get("maximum", math.inf):
            errors.append(f"{path}: above {schema['maximum']}")
        if value < schema.get("minimum", -math.inf):
            errors.append(f"{path}: below {schema['minimum']}")
    if isinstance(value, dict):
        errors += [f"{path}.{k}: required" for k in schema.get("required", []) if k not in value]
        for key, child in schema.get("properties", {}).items():
            if key in value:
                errors += crd_errors(value[key], child, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += crd_errors(item, schema["items"], f"{path}[{i}]")
    return errors


def pruned_paths(value: Any, schema: Schema, path: str = "") -> list[str]:
    """Fields the API server would silently drop (not in the schema, no preserve-unknown)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    out = []
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key, child in value.items():
            if key not in props:
                out.append(f"{path}.{key}")
            else:
                out += pruned_paths(child, props[key], f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += pruned_paths(item, schema["items"], f"{path}[{i}]")
    return out


def crd_default(value: Any, schema: Schema) -> Any:
    """Structural defaulting as the API server does it: fill missing fields, then recurse."""
    if isinstance(value, dict):
        out = dict(value)
        props = schema.get("properties", {})
        for key, child in props.items():
            if key not in out and "default" in child:
                out[key] = child["default"]
        return {k: crd_default(val, props[k]) if k in props else val for k, val in out.items()}
    if isinstance(value, list) and "items" in schema:
        return [crd_default(item, schema["items"]) for item in value]
    return value


def is_within(small: Any, big: Any) -> bool:
    """Every field of ``small`` is in ``big`` with an equal value (``big`` may have more)."""
    if isinstance(small, dict):
        return isinstance(big, dict) and all(
            k in big and is_within(val, big[k]) for k, val in small.items()
        )
    if isinstance(small, list):
        return (
            isinstance(big, list)
            and len(small) == len(big)
            and all(is_within(a, b) for a, b in zip(small, big, strict=True))
        )
    if isinstance(small, bool) or isinstance(big, bool):
        return small is big
    return bool(small == big)  # 2 == 2.0: a number field read as float is the same value


def walk(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    """Every schema node (not the data inside default/enum/example)."""
    yield path or "<root>", schema
    for name, child in schema.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


# --- the committed files ----------------------------------------------------------------------


def test_committed_crds_equal_what_the_models_generate() -> None:
    generated = crd_files()
    on_disk = {p.name: p.read_text() for p in sorted(CRD_DIR.glob("*.yaml"))}
    assert sorted(on_disk) == sorted(generated), (
        f"crds/ holds {sorted(on_disk)}, the models generate {sorted(generated)}: "
        f"run `{REGENERATE}` and commit the result"
    )
    for name, text in generated.items():
        if on_disk[name] != text:
            diff = "".join(
                difflib.unified_diff(
                    on_disk[name].splitlines(keepends=True),
                    text.splitlines(keepends=True),
                    f"crds/{name} (committed)",
                    f"crds/{name} (generated)",
                    n=2,
                )
            )
            pytest.fail(
                f"crds/{name} is out of date with controller/api: run `{REGENERATE}` "
                f"and commit the result.\n{diff[:4000]}"
            )


def test_committed_files_parse_to_the_generated_objects() -> None:
    # Guards against a renderer that writes YAML which reads back differently.
    for name, crd in (("projects.yaml", project_crd()), ("scenes.yaml", scene_crd())):
        assert yaml.safe_load((CRD_DIR / name).read_text()) == crd


# --- structural schema -----------------------------------------------------------------------

# Every key apiextensions.k8s.io/v1 JSONSchemaProps knows on a 1.20 API server that a
# structural schema may use. Anything else is either rejected or silently dropped by the
# server (e.g. pydantic's `const`, `title`, `$defs`), so its constraint would not hold.
ALLOWED_KEYS = {
    "type", "description", "default", "enum", "format", "example",
    "maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum", "multipleOf",
    "maxLength", "minLength", "pattern",
    "maxItems", "minItems", "items",
    "maxProperties", "minProperties", "required", "properties", "additionalProperties",
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
}  # fmt: skip
FORBIDDEN_KEYS = {
    "$ref", "$defs", "definitions", "anyOf", "allOf", "oneOf", "not", "title", "nullable",
    "x-kubernetes-validations", "const", "uniqueItems", "patternProperties",
}  # fmt: skip
TYPES = {"object", "array", "string", "integer", "number", "boolean"}


@pytest.fixture(params=sorted(CRDS), ids=str)
def crd(request: pytest.FixtureRequest) -> dict[str, Any]:
    return CRDS[request.param]


def test_no_non_structural_keywords_anywhere(crd: dict[str, Any]) -> None:
    found = [
        f"{path}: {key}"
        for path, node in walk(root_schema(crd))
        for key in node
        if key in FORBIDDEN_KEYS or key not in ALLOWED_KEYS
    ]
    assert not found, f"keywords a 1.20 structural schema cannot carry: {found}"


def test_no_forbidden_keyword_even_inside_data() -> None:
    # A plain text search of the committed files too, so nothing hides in a spot walk() skips.
    for name in ("projects.yaml", "scenes.yaml"):
        text = (CRD_DIR / name).read_text()
        for key in ("$ref", "anyOf", "allOf", "oneOf", "title:", "nullable", "x-kubernetes-validations"):  # fmt: skip
            assert key not in text, f"crds/{name} contains {key!r}"


def test_every_node_is_typed(crd: dict[str, Any]) -> None:
    problems = []
    for path, node in walk(root_schema(crd)):
        if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            problems.append(f"{path}: no type and no x-kubernetes-preserve-unknown-fields")
        if "type" in node and node["type"] not in TYPES:
            problems.append(f"{path}: type {node['type']!r}")
        if "properties" in node and node.get("type") != "object":
            problems.append(f"{path}: has properties but type {node.get('type')!r}")
        if node.get("type") == "array" and not isinstance(node.get("items"), dict):
            problems.append(f"{path}: array without an items schema")
        if node.get("additionalProperties") is True:
            problems.append(f"{path}: additionalProperties: true (use preserve-unknown-fields)")
        if "additionalProperties" in node and "properties" in node:
            problems.append(f"{path}: both properties and additionalProperties")
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            if key in node and not isinstance(node[key], bool):
                # pydantic's gt=/lt= emit JSON Schema 2020 numbers; OpenAPI v3.0 wants a bool.
                problems.append(f"{path}: {key} must be a bool, got {node[key]!r}")
        missing = set(node.get("required", [])) - set(node.get("properties", {}))
        if missing:
            problems.append(f"{path}: required {sorted(missing)} not among the properties")
    assert not problems, "\n".join(problems)


def test_preserve_unknown_fields_only_on_free_form_maps(crd: dict[str, Any]) -> None:
    free = [path for path, node in walk(root_schema(crd)) if node.get("x-kubernetes-preserve-unknown-fields")]  # fmt: skip
    assert free == [".spec.video.params"], free
    for path, node in walk(root_schema(crd)):
        if path in free:
            assert node["type"] == "object"
            assert "properties" not in node, path


def test_root_and_metadata_are_as_kubernetes_requires(crd: dict[str, Any]) -> None:
    root = root_schema(crd)
    assert root["type"] == "object"
    assert root["required"] == ["spec"]
    assert set(root["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}
    # Only name/generateName restrictions are allowed under metadata; we use none.
    assert root["properties"]["metadata"] == {"type": "object"}
    assert "default" not in root["properties"]["status"]


def test_list_map_keys_are_required(crd: dict[str, Any]) -> None:
    lists = [(p, n) for p, n in walk(root_schema(crd)) if n.get("x-kubernetes-list-type") == "map"]
    assert [p for p, _ in lists] == [".status.conditions"]
    for path, node in lists:
        items = node["items"]
        for key in node["x-kubernetes-list-map-keys"]:
            assert key in items.get("required", []) or "default" in items["properties"][key], (
                f"{path}: list-map key {key} must be required or defaulted"
            )


def test_every_default_is_valid_against_its_own_schema() -> None:
    # The API server refuses a CRD whose defaults do not validate (or would be pruned).
    checked = []
    for crd in CRDS.values():
        for path, node in walk(root_schema(crd)):
            if "default" in node:
                checked.append(path)
                assert crd_errors(node["default"], node, path) == []
                assert pruned_paths(node["default"], node, path) == []
    assert {".spec.retry", ".spec.retry.limit", ".spec.scenes.aspectRatio"} <= set(checked)


def test_no_defaults_inside_metadata_or_top_level(crd: dict[str, Any]) -> None:
    root = root_schema(crd)
    assert "default" not in root
    assert all("default" not in root["properties"][k] for k in ("apiVersion", "kind", "metadata"))


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "kind", "plural", "singular", "short"),
    [
        ("projects", "Project", "projects", "project", "vproj"),
        ("scenes", "Scene", "scenes", "scene", "scn"),
    ],
)
def test_names(key: str, kind: str, plural: str, singular: str, short: str) -> None:
    crd = CRDS[key]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == f"{plural}.video.scene-operator.io"
    spec = crd["spec"]
    assert spec["group"] == "video.scene-operator.io" == v.GROUP
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": kind,
        "listKind": f"{kind}List",
        "plural": plural,
        "singular": singular,
        "shortNames": [short],
        "categories": ["video"],
    }
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" == v.VERSION
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}


def _columns(key: str) -> dict[str, dict[str, Any]]:
    (version,) = CRDS[key]["spec"]["versions"]
    return {c["name"]: c for c in version["additionalPrinterColumns"]}


def test_project_printer_columns() -> None:
    columns = _columns("projects")
    assert list(columns) == [
        "Phase",
        "Scenes",
        "Completed",
        "Failed",
        "Assembled",
        "Ready",
        "Message",
        "Age",
    ]
    assert columns["Assembled"]["jsonPath"] == '.status.conditions[?(@.type=="Assembled")].status'
    assert columns["Phase"]["jsonPath"] == ".status.phase"
    assert columns["Scenes"] == {"name": "Scenes", "type": "integer", "jsonPath": ".status.sceneCount"}  # fmt: skip
    assert columns["Completed"]["jsonPath"] == ".status.completedScenes"
    assert columns["Failed"]["jsonPath"] == ".status.failedScenes"
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Age"] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}  # fmt: skip


def test_scene_printer_columns() -> None:
    columns = _columns("scenes")
    assert {"Phase", "Ready", "Message", "Age"} <= columns.keys()
    assert columns["Phase"]["jsonPath"] == ".status.phase"
    assert columns["Project"]["jsonPath"] == ".spec.projectRef.name"
    assert columns["Age"]["type"] == "date"


@pytest.mark.parametrize("key", sorted(CRDS))
def test_printer_columns_point_at_schema_fields(key: str) -> None:
    schema = root_schema(CRDS[key])
    for name, column in _columns(key).items():
        path = column["jsonPath"]
        if path.startswith((".metadata.", ".status.conditions[")):
            continue
        node = node_at(schema, path.lstrip("."))
        assert column["type"] == node["type"], f"{name}: column {column['type']}, field {node}"
    conditions = node_at(schema, "status.conditions")["items"]
    assert {"type", "status", "message"} <= conditions["properties"].keys()


@pytest.mark.parametrize("key", sorted(CRDS))
def test_the_ready_message_is_a_wide_column(key: str) -> None:
    # cert-manager's convention: `kubectl get -o wide` adds why an object is not Ready.
    columns = _columns(key)
    assert columns["Message"] == {
        "name": "Message",
        "type": "string",
        "priority": 1,
        "jsonPath": '.status.conditions[?(@.type=="Ready")].message',
    }
    assert all(c.get("priority", 0) == 0 for n, c in columns.items() if n != "Message")


def test_every_field_is_documented(crd: dict[str, Any]) -> None:
    # `kubectl explain` shows these descriptions; metadata is ObjectMeta, documented by
    # Kubernetes itself (the API server allows nothing but name/generateName there).
    undocumented = [
        path
        for path, node in walk(root_schema(crd))
        if path != ".metadata" and not str(node.get("description", "")).strip()
    ]
    assert not undocumented, f"fields without a description (add a docstring): {undocumented}"


def test_conditions_require_what_metav1_condition_requires(crd: dict[str, Any]) -> None:
    items = node_at(root_schema(crd), "status.conditions")["items"]
    required = {"type", "status", "reason", "message", "lastTransitionTime"}
    assert set(items["required"]) == required
    assert items["properties"]["reason"]["minLength"] == 1
    assert items["properties"]["status"]["enum"] == ["True", "False", "Unknown"]


# k8s.io/apimachinery/pkg/apis/meta/v1 Condition's validation markers, verbatim.
METAV1_TYPE = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
METAV1_REASON = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


def test_condition_type_and_reason_carry_the_metav1_patterns(crd: dict[str, Any]) -> None:
    props = node_at(root_schema(crd), "status.conditions")["items"]["properties"]
    assert (props["type"]["pattern"], props["type"]["maxLength"]) == (METAV1_TYPE, 316)
    reason = props["reason"]
    assert (reason["pattern"], reason["maxLength"], reason["minLength"]) == (
        METAV1_REASON,
        1024,
        1,
    )


def test_every_condition_type_and_reason_the_operator_writes_matches_them() -> None:
    types = [val for k, val in vars(v.Cond).items() if not k.startswith("_")]
    reasons = [val for k, val in vars(v.Reason).items() if not k.startswith("_")]
    assert types and reasons
    assert [t for t in types if not re.fullmatch(METAV1_TYPE, t)] == []
    assert [r for r in reasons if not re.fullmatch(METAV1_REASON, r)] == []
    # The model refuses what the API server would (pydantic validates the same pattern).
    ok = {"status": "True", "message": "", "lastTransitionTime": "2030-01-01T00:00:00Z"}
    from controller.api.common import Condition

    Condition.model_validate({**ok, "type": "example.com/Ready", "reason": "Done_1"})
    for bad in ({"type": "Ready!", "reason": "Done"}, {"type": "Ready", "reason": "has space"}):
        with pytest.raises(ValidationError):
            Condition.model_validate({**ok, **bad})


def is_timestamp(name: str) -> bool:
    return name == "at" or name.endswith(("At", "Time", "Timestamp"))


def test_every_timestamp_is_a_date_time(crd: dict[str, Any]) -> None:
    stamps = {
        path: node.get("format")
        for path, node in walk(root_schema(crd))
        if is_timestamp(path.rsplit(".", 1)[-1])
    }
    assert stamps, "no timestamps found: the walk is wrong"
    assert {p: f for p, f in stamps.items() if f != "date-time"} == {}
    # and nothing but timestamps carries the format
    dated = [p for p, node in walk(root_schema(crd)) if node.get("format") == "date-time"]
    assert sorted(dated) == sorted(stamps)


# --- the models and the CRD agree -------------------------------------------------------------


def node_at(schema: Schema, dotted: str) -> Schema:
    for part in dotted.split("."):
        schema = schema["properties"][part]
    return schema


def test_bounds_agree_with_the_models() -> None:
    project = root_schema(CRDS["projects"])["properties"]["spec"]
    scene = root_schema(CRDS["scenes"])["properties"]["spec"]
    assert MAX_PROMPT == 5000
    assert node_at(project, "prompt")["maxLength"] == MAX_PROMPT
    assert node_at(project, "prompt")["minLength"] == 1
    assert node_at(scene, "prompt")["maxLength"] == MAX_PROMPT
    assert (node_at(project, "scenes.count")["minimum"], node_at(project, "scenes.count")["maximum"]) == (1, MAX_SCENES) == (1, 50)  # fmt: skip
    ratios = [r.value for r in AspectRatio]
    assert ratios == ["16:9", "9:16", "1:1"]
    assert node_at(project, "scenes.aspectRatio")["enum"] == ratios
    assert node_at(scene, "aspectRatio")["enum"] == ratios
    assert node_at(project, "mode")["enum"] == [m.value for m in Mode]
    assert node_at(project, "retry.limit")["default"] == ProjectSpec(prompt="x").retry.limit == 3
    assert project["required"] == ["prompt"]
    assert sorted(scene["required"]) == ["projectRef", "prompt", "sequence"]


VALID_PROJECT: dict[str, Any] = {"prompt": "a cat surfing at dawn"}
VALID_SCENE: dict[str, Any] = {"projectRef": {"name": "p"}, "sequence": 1, "prompt": "a wave"}


def _with(base: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    *parents, last = dotted.split(".")
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
    if value is _DELETE:
        node.pop(last)
    else:
        node[last] = value
    return doc


_DELETE = object()

AGREEMENT_CASES = [
    # (model, base, field, value, valid?)
    ("ProjectSpec", VALID_PROJECT, "prompt", "x" * 5000, True),
    ("ProjectSpec", VALID_PROJECT, "prompt", "x" * 5001, False),
    ("ProjectSpec", VALID_PROJECT, "prompt", "é" * 5000, True),  # runes, not bytes
    ("ProjectSpec", VALID_PROJECT, "prompt", "", False),
    ("ProjectSpec", VALID_PROJECT, "prompt", _DELETE, False),
    ("ProjectSpec", VALID_PROJECT, "scenes.count", 1, True),
    ("ProjectSpec", VALID_PROJECT, "scenes.count", 50, True),
    ("ProjectSpec", VALID_PROJECT, "scenes.count", 0, False),
    ("ProjectSpec", VALID_PROJECT, "scenes.count", -1, False),
    ("ProjectSpec", VALID_PROJECT, "scenes.count", 51, False),
    ("ProjectSpec", VALID_PROJECT, "scenes.aspectRatio", "9:16", True),
    ("ProjectSpec", VALID_PROJECT, "scenes.aspectRatio", "4:3", False),
    ("ProjectSpec", VALID_PROJECT, "scenes.durationSeconds", 61, False),
    ("ProjectSpec", VALID_PROJECT, "mode", "AdCreative", True),
    ("ProjectSpec", VALID_PROJECT, "mode", "Documentary", False),
    ("ProjectSpec", VALID_PROJECT, "retry.limit", 0, False),
    ("ProjectSpec", VALID_PROJECT, "retry.backoff.factor", 0.5, False),
    ("ProjectSpec", VALID_PROJECT, "video.provider", "sora", False),
    ("ProjectSpec", VALID_PROJECT, "repair.missingClip", "Panic", False),
    ("ProjectSpec", VALID_PROJECT, "storage.bucket", "ab", False),
    ("ProjectSpec", VALID_PROJECT, "budget.maxGenerations", -1, False),
    ("ProjectSpec", VALID_PROJECT, "video.params", {"seed": 1, "x": [1, None, {"y": "z"}]}, True),
    ("SceneSpec", VALID_SCENE, "sequence", 0, False),
    ("SceneSpec", VALID_SCENE, "sequence", 999, True),
    ("SceneSpec", VALID_SCENE, "sequence", 1000, False),
    ("SceneSpec", VALID_SCENE, "projectRef", _DELETE, False),
    ("SceneSpec", VALID_SCENE, "projectRef.name", "", False),
    ("SceneSpec", VALID_SCENE, "aspectRatio", "4:3", False),
    ("SceneSpec", VALID_SCENE, "prompt", "x" * 5001, False),
]


@pytest.mark.parametrize(
    ("model_name", "base", "field", "value", "valid"),
    AGREEMENT_CASES,
    ids=[
        f"{m}.{f}={'<del>' if x is _DELETE else str(x)[:12]}" for m, _, f, x, _ in AGREEMENT_CASES
    ],
)
def test_model_and_crd_accept_and_reject_the_same(
    model_name: str, base: dict[str, Any], field: str, value: Any, valid: bool
) -> None:
    model, schema = MODELS[model_name]
    doc = _with(base, field, value)
    errors = crd_errors(doc, schema, ".spec")
    try:
        model.model_validate(doc)
        model_ok = True
    except ValidationError:
        model_ok = False
    assert model_ok is valid, f"pydantic {'rejected' if valid else 'accepted'} {field}"
    assert (errors == []) is valid, f"CRD schema disagrees on {field}: {errors}"


# --- property tests: anything the CRD accepts, the models read losslessly and write back ---

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip
INT64 = 2**63 - 1


def _text(schema: Schema) -> st.SearchStrategy[str]:
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True)
    lo, hi = schema.get("minLength", 0), schema.get("maxLength")
    short = st.text(min_size=lo, max_size=min(hi, lo + 20) if hi is not None else lo + 20)
    if hi is None:
        return short
    # Also exactly at the bound, where off-by-one disagreements live.
    at_bound = st.characters(exclude_categories=["Cs"]).map(lambda c: c * hi)
    return st.one_of(short, at_bound)


def from_schema(schema: Schema) -> st.SearchStrategy[Any]:
    """Values valid by a structural schema (bounds included)."""
    if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
        # Free-form (video.params): a structural schema cannot refuse the reserved keys in
        # any letter case, so the operator does (InvalidSpec, tested with the refusals).
        keys = st.text(min_size=1, max_size=8).filter(lambda k: k.lower() not in RESERVED_PARAMS)
        return st.dictionaries(keys, _JSON, max_size=4)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    match schema["type"]:
        case "string":
            return _text(schema)
        case "boolean":
            return st.booleans()
        case "integer":
            return st.integers(schema.get("minimum", -INT64 - 1), schema.get("maximum", INT64))
        case "number":
            lo, hi = schema.get("minimum"), schema.get("maximum")
            return st.floats(lo, hi, allow_nan=False, allow_infinity=False) | st.integers(
                math.ceil(lo) if lo is not None else -(2**53),
                math.floor(hi) if hi is not None else 2**53,
            )
        case "array":
            items = from_schema(schema["items"])
            if schema.get("x-kubernetes-list-type") == "map":
                keys = schema["x-kubernetes-list-map-keys"]
                return st.lists(items, max_size=4, unique_by=lambda i: tuple(i[k] for k in keys))
            return st.lists(items, max_size=3)
        case "object":
            props = schema.get("properties", {})
            required = set(schema.get("required", []))
            return st.fixed_dictionaries(
                {k: from_schema(s) for k, s in props.items() if k in required},
                optional={k: from_schema(s) for k, s in props.items() if k not in required},
            )
    raise AssertionError(schema)


PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("model_name", sorted(MODELS))
@PROPERTY_SETTINGS
@given(data=st.data())
def test_crd_valid_documents_round_trip_through_the_model(model_name: str, data: st.DataObject) -> None:  # fmt: skip
    model, schema = MODELS[model_name]
    doc = data.draw(from_schema(schema), label=model_name)

    # 1. Whatever the API server accepts, the operator can read.
    parsed = model.model_validate(doc)
    wire = parsed.wire()
    # 2. wire() -> validate -> equal, and wire() is stable.
    again = model.model_validate(wire)
    assert again == parsed
    assert again.wire() == wire
    # 3. Nothing the user (or the operator) wrote is lost or changed on the way: with
    #    extra="ignore", a CRD field name the model spells differently would vanish here.
    assert is_within(doc, wire), f"lost or changed:\n{doc}\n{wire}"
    # 4. What the model writes back is valid for the API server and nothing of it is pruned.
    assert crd_errors(wire, schema) == []
    assert pruned_paths(wire, schema) == []
    # 5. The API server's defaults mean the same to the model as its own defaults, and the
    #    wire form already carries every default (a fixed point of server-side defaulting).
    assert model.model_validate(crd_default(doc, schema)) == parsed
    assert crd_default(wire, schema) == wire


@PROPERTY_SETTINGS
@given(
    spec=st.builds(
        dict,
        prompt=st.text(min_size=1, max_size=MAX_PROMPT),
        mode=st.sampled_from(list(Mode)),
        scenes=st.fixed_dictionaries(
            {},
            optional={
                "count": st.integers(1, MAX_SCENES),
                "durationSeconds": st.integers(1, 60),
                "aspectRatio": st.sampled_from(list(AspectRatio)),
            },
        ),
        generateVideos=st.booleans(),
        retry=st.fixed_dictionaries({"limit": st.integers(1, 20)}),
    )
)
def test_project_spec_wire_round_trip(spec: dict[str, Any]) -> None:
    first = ProjectSpec.model_validate(spec)
    wire = first.wire()
    assert ProjectSpec.model_validate(wire) == first
    assert wire["prompt"] == spec["prompt"]
    assert wire["mode"] == spec["mode"].value
    assert wire["scenes"]["aspectRatio"] == spec["scenes"].get("aspectRatio", "16:9")
    assert wire["retry"]["limit"] == spec["retry"]["limit"]
    assert first.scene_count() == spec["scenes"].get("count", 1 if spec["mode"] == Mode.MUSIC_VIDEO else 3)  # fmt: skip
    assert crd_errors(wire, MODELS["ProjectSpec"][1]) == []


def test_every_model_field_is_in_the_crd() -> None:
    # The reverse direction: a field the operator sets but the CRD lacks is pruned silently.
    def aliases(model: type[BaseModel]) -> set[str]:
        return {f.alias or name for name, f in model.model_fields.items()}

    for name, (model, schema) in MODELS.items():
        assert aliases(model) == set(schema["properties"]), name
    status = MODELS["SceneStatus"][1]["properties"]
    assert {"originalVideoClipS3Key", "workingVideoClipS3Key"} <= status.keys()
