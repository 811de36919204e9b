"""What `kubectl video status` and `events` show, built from API objects (pure functions).

Objects come in as the API server's JSON (dicts); a report is plain data that renders as
a cmctl-style text block, or as JSON/YAML for scripts.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from controller.api import vocabulary as v

MESSAGE_WIDTH = 70  # table cells are cut here; -o json/yaml keep the whole text


@dataclass(frozen=True)
class ConditionView:
    status: str = ""
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class EventView:
    time: str
    type: str
    reason: str
    object: str  # kind/name, e.g. scene/lighthouse-scene-001
    message: str
    count: int = 1


@dataclass(frozen=True)
class SceneView:
    namespace: str
    name: str
    sequence: int
    phase: str
    attempts: int
    take: int
    ready: ConditionView
    stalled: ConditionView  # kstatus: True when it cannot go on without a change
    clip_key: str  # the working clip (the original when there is no edit)
    job_id: str
    last_error: str
    events: list[EventView] = field(default_factory=list)
    trimmed_seconds: float | None = None  # the working clip's length when spec.edit trims it


@dataclass(frozen=True)
class ProjectView:
    namespace: str
    name: str
    phase: str
    ready: ConditionView
    stalled: ConditionView
    scene_count: int
    completed_scenes: int
    failed_scenes: int
    generations_started: int
    estimated_cost_usd: float
    paused: bool
    scenes: list[SceneView] = field(default_factory=list)
    events: list[EventView] = field(default_factory=list)
    final_video: str = ""  # s3://bucket/key of the assembled film, when there is one


# ------------------------------------------------------------------------ building views


def condition(obj: dict[str, Any], type_: str) -> ConditionView:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return ConditionView(
                str(c.get("status", "")), str(c.get("reason", "")), str(c.get("message", ""))
            )
    return ConditionView()


def event_time(event: dict[str, Any]) -> str:
    """When it last happened: core/v1 Events carry one of these, newest field first."""
    series = (event.get("series") or {}).get("lastObservedTime")
    return str(
        series
        or event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


def parse_time(stamp: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None


def chronological(event: EventView) -> dt.datetime:
    """Sort key: lastTimestamp (seconds) and eventTime (microseconds) compare as times."""
    return parse_time(event.time) or dt.datetime.min.replace(tzinfo=dt.UTC)


def event_view(event: dict[str, Any]) -> EventView:
    involved = event.get("involvedObject") or {}
    return EventView(
        time=event_time(event),
        type=str(event.get("type", "")),
        reason=str(event.get("reason", "")),
        object=f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        message=str(event.get("message", "")),
        count=int(event.get("count") or (event.get("series") or {}).get("count") or 1),
    )


def about(event: dict[str, Any], namespace: str, kind: str, names: set[str]) -> bool:
    involved = event.get("involvedObject") or {}
    where = involved.get("namespace") or (event.get("metadata") or {}).get("namespace")
    return involved.get("kind") == kind and involved.get("name") in names and where == namespace


def events_of(
    events: list[dict[str, Any]],
    namespace: str,
    kind: str,
    names: set[str],
    limit: int | None = None,
) -> list[EventView]:
    """Events about the named objects of one kind, oldest first; the last `limit` only."""
    views = sorted(
        (event_view(e) for e in events if about(e, namespace, kind, names)),
        key=chronological,
    )
    return views[-limit:] if limit else views


def scene_view(scene: dict[str, Any], events: list[EventView] | None = None) -> SceneView:
    meta, spec, st = scene["metadata"], scene.get("spec") or {}, scene.get("status") or {}
    err = st.get("lastError") or {}
    return SceneView(
        namespace=meta.get("namespace", ""),
        name=meta["name"],
        sequence=int(spec.get("sequence", 0)),
        phase=str(st.get("phase") or "Pending"),
        attempts=int(st.get("attempts", 0)),
        take=int(st.get("take", 0)),
        ready=condition(scene, v.Cond.READY),
        stalled=condition(scene, v.Cond.STALLED),
        clip_key=str(
            st.get("workingVideoClipS3Key")
            or (st.get("clip") or {}).get("key")
            or st.get("originalVideoClipS3Key")
            or ""
        ),
        job_id=str((st.get("generation") or {}).get("jobId") or ""),
        last_error=f"{err.get('reason')}: {err.get('message', '')}" if err else "",
        events=events or [],
        trimmed_seconds=(st.get("workingClip") or {}).get("durationSeconds"),
    )


def scenes_of(project: str, namespace: str, scenes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Project's Scenes by sequence (declared ones too: projectRef, not ownership)."""
    own = [
        s
        for s in scenes
        if ((s.get("spec") or {}).get("projectRef") or {}).get("name") == project
        and s["metadata"].get("namespace") == namespace
    ]
    return sorted(
        own, key=lambda s: ((s.get("spec") or {}).get("sequence", 0), s["metadata"]["name"])
    )


def project_view(
    project: dict[str, Any],
    scenes: list[dict[str, Any]],
    events: list[dict[str, Any]],
    event_limit: int | None = 10,
) -> ProjectView:
    """A Project, its Scenes, and the latest Events of all of them together."""
    meta, st = project["metadata"], project.get("status") or {}
    usage = st.get("usage") or {}
    ns = meta.get("namespace", "")
    own = scenes_of(meta["name"], ns, scenes)
    names = {s["metadata"]["name"] for s in own}
    merged = sorted(
        events_of(events, ns, v.PROJECT_KIND, {meta["name"]})
        + events_of(events, ns, v.SCENE_KIND, names),
        key=chronological,
    )
    return ProjectView(
        namespace=ns,
        name=meta["name"],
        phase=str(st.get("phase") or "Pending"),
        ready=condition(project, v.Cond.READY),
        stalled=condition(project, v.Cond.STALLED),
        scene_count=int(st.get("sceneCount", len(own))),
        completed_scenes=int(st.get("completedScenes", 0)),
        failed_scenes=int(st.get("failedScenes", 0)),
        generations_started=int(usage.get("generationsStarted", 0)),
        estimated_cost_usd=float(usage.get("estimatedCostUsd", 0) or 0),
        paused=bool((project.get("spec") or {}).get("paused")),
        scenes=[scene_view(s) for s in own],
        events=merged[-event_limit:] if event_limit else merged,
        final_video=_final(st.get("finalVideo")),
    )


def _final(fv: dict[str, Any] | None) -> str:
    return f"s3://{fv['bucket']}/{fv['s3Key']} ({fv['durationSeconds']} s)" if fv else ""


# ------------------------------------------------------------------------ rendering


def age(timestamp: str, now: dt.datetime) -> str:
    """kubectl's short age: 42s, 5m, 3h, 2d."""
    then = parse_time(timestamp)
    if then is None:
        return "-"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def cut(text: str, width: int = MESSAGE_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def table(rows: Sequence[tuple[str, ...]], indent: str = "") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in rows
    ]


def ready_text(c: ConditionView) -> str:
    if not c.status:
        return "-"
    return f"{c.status} ({c.reason})" if c.reason else c.status


def events_table(events: list[EventView], now: dt.datetime, indent: str = "  ") -> list[str]:
    if not events:
        return [f"{indent}<none>"]
    rows = [("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE")]
    rows += [(age(e.time, now), e.type, e.reason, e.object, cut(e.message)) for e in events]
    return table(rows, indent)


def render_project(p: ProjectView, now: dt.datetime) -> str:
    lines = [
        f"Project {p.namespace}/{p.name}",
        f"  Phase:        {p.phase}{'  (paused)' if p.paused else ''}",
        f"  Ready:        {ready_text(p.ready)}",
    ]
    if p.ready.message:
        lines.append(f"  Message:      {p.ready.message}")
    if p.stalled.status == "True":
        lines.append(f"  Stalled:      {p.stalled.reason}: {p.stalled.message}")
    lines += [
        f"  Scenes:       {p.scene_count} ({p.completed_scenes} completed, {p.failed_scenes} failed)",
        f"  Generations:  {p.generations_started} started, estimated cost ${p.estimated_cost_usd:.2f}",
        *([f"  Final video:  {p.final_video}"] if p.final_video else []),
        "",
        "Scenes:",
    ]
    if p.scenes:
        rows = [("SEQ", "SCENE", "PHASE", "ATTEMPTS", "READY", "MESSAGE", "CLIP")]
        rows += [
            (
                str(s.sequence),
                s.name,
                s.phase,
                str(s.attempts),
                ready_text(s.ready),
                cut(s.ready.message or s.last_error or "-", 50),
                (s.clip_key or (f"job {s.job_id}" if s.job_id else "-"))
                + (f" ({s.trimmed_seconds:.2f} s)" if s.trimmed_seconds is not None else ""),
            )
            for s in p.scenes
        ]
        lines += table(rows, "  ")
    else:
        lines.append("  <none>")
    lines += ["", f"Events (latest {len(p.events)}):", *events_table(p.events, now)]
    return "\n".join(lines)


def render_scene(s: SceneView, now: dt.datetime) -> str:
    lines = [
        f"Scene {s.namespace}/{s.name}",
        f"  Sequence:     {s.sequence}",
        f"  Phase:        {s.phase}",
        f"  Attempts:     {s.attempts} (take {s.take})",
        f"  Ready:        {ready_text(s.ready)}",
        f"  Message:      {s.ready.message or '-'}",
        f"  Clip:         {s.clip_key or '-'}",
    ]
    if s.trimmed_seconds is not None:
        lines.append(f"  Trimmed:      {s.trimmed_seconds:.2f} s (working clip, from spec.edit)")
    if s.job_id:
        lines.append(f"  Job:          {s.job_id}")
    if s.stalled.status == "True":
        lines.append(f"  Stalled:      {s.stalled.reason}: {s.stalled.message}")
    if s.last_error:
        lines.append(f"  Last error:   {s.last_error}")
    lines += ["", f"Events (latest {len(s.events)}):", *events_table(s.events, now)]
    return "\n".join(lines)


def as_data(views: list[ProjectView | SceneView] | list[EventView]) -> dict[str, Any]:
    return {"items": [asdict(view) for view in views]}


def dump(data: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip()
