"""Operator helpers: annotate for regenerate/retry, and a readable status table."""

from __future__ import annotations

import secrets
import time
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from controller import vocabulary as v

KINDS = {
    "scene": v.SCENE_PLURAL,
    "scenes": v.SCENE_PLURAL,
    "scn": v.SCENE_PLURAL,
    "project": v.PROJECT_PLURAL,
    "projects": v.PROJECT_PLURAL,
    "vproj": v.PROJECT_PLURAL,
}


def parse_ref(ref: str) -> tuple[str, str]:
    kind, _, name = ref.partition("/")
    if kind.lower() not in KINDS or not name:
        raise SystemExit(f"expected scene/NAME or project/NAME, got {ref!r}")
    return KINDS[kind.lower()], name


def _api() -> k8s.CustomObjectsApi:
    k8s_config.load_config()
    return k8s.CustomObjectsApi()


def new_token() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


def annotate(ref: str, namespace: str, which: str) -> str:
    """Set the regenerate or retry annotation to a fresh token; the operator acts once."""
    plural, name = parse_ref(ref)
    key = v.ANNOTATION_REGENERATE if which == "regenerate" else v.ANNOTATION_RETRY
    token = new_token()
    _api().patch_namespaced_custom_object(
        v.GROUP, v.VERSION, namespace, plural, name, {"metadata": {"annotations": {key: token}}}
    )
    return f"{plural[:-1]}/{name} annotated {key}={token}"


def _cond(obj: dict[str, Any], type_: str) -> str:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c.get("status", "")
    return ""


def _final(fv: dict[str, Any] | None) -> str:
    return f"s3://{fv['bucket']}/{fv['s3Key']} ({fv['durationSeconds']} s)" if fv else "-"


def status_table(ref: str, namespace: str) -> str:
    plural, name = parse_ref(ref)
    if plural != v.PROJECT_PLURAL:
        raise SystemExit("status takes project/NAME")
    api = _api()
    project = api.get_namespaced_custom_object(v.GROUP, v.VERSION, namespace, plural, name)
    scenes = api.list_namespaced_custom_object(v.GROUP, v.VERSION, namespace, v.SCENE_PLURAL)[
        "items"
    ]
    scenes = sorted(
        (s for s in scenes if s["spec"]["projectRef"]["name"] == name),
        key=lambda s: s["spec"]["sequence"],
    )
    st = project.get("status") or {}
    usage = st.get("usage") or {}
    lines = [
        f"project {namespace}/{name}: phase={st.get('phase', '-')} ready={_cond(project, 'Ready') or '-'} "
        f"scenes={st.get('sceneCount', 0)} completed={st.get('completedScenes', 0)} failed={st.get('failedScenes', 0)} "
        f"generations={usage.get('generationsStarted', 0)} cost~${usage.get('estimatedCostUsd', 0)}",
        f"final video: assembled={_cond(project, 'Assembled') or '-'} {_final(st.get('finalVideo'))}",
        "",
    ]
    rows = [("SEQ", "SCENE", "PHASE", "READY", "ATTEMPTS", "TAKE", "JOB / CLIP", "LAST ERROR")]
    for s in scenes:
        ss = s.get("status") or {}
        gen = ss.get("generation") or {}
        where = gen.get("jobId") or (ss.get("clip") or {}).get("key", "")
        err = ss.get("lastError") or {}
        rows.append(
            (
                str(s["spec"]["sequence"]),
                s["metadata"]["name"],
                ss.get("phase", "-"),
                _cond(s, "Ready") or "-",
                str(ss.get("attempts", 0)),
                str(ss.get("take", 0)),
                where or "-",
                f"{err.get('reason')}: {err.get('message', '')[:60]}" if err else "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)
