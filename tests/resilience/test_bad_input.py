"""Bad input: hypothesis-generated Project specs (huge and odd unicode prompts, extreme
counts, unknown fields, wrong types). Each is rejected by the API server (400/422) or
accepted and then reported by the operator through conditions; the operator never
crashes, and a well-formed Project next to them still reaches Ready."""

from __future__ import annotations

import itertools
import json
import math
import re
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from controller.api import vocabulary as v
from controller.api.project import ProjectSpec
from tests.integration.clips import replicate_video
from tests.integration.helpers import condition, is_true
from tests.resilience.conftest import (
    EXAMPLES,
    log_lines,
    log_records,
    project_spec,
    tolerant,
    wait_for,
)
from tests.support.replicate_server import ReplicateServer

pytestmark = [pytest.mark.resilience, pytest.mark.integration]

SETTLE_SECONDS = 30.0
# Ready=False reasons that are a verdict, not "still working on it".
VERDICTS = {
    v.Reason.INVALID_SPEC,
    v.Reason.PLANNING_FAILED,
    v.Reason.SCENES_FAILED,
    v.Reason.BUDGET_EXHAUSTED,
    v.Reason.BUCKET_UNAVAILABLE,  # a missing bucket, reported before any job is paid
}

ODD_TEXT = [
    " ",
    "\x00",
    "\x00\x01\x7f",
    "\u202eevil\u202c",  # right-to-left override
    "\u200d\u200b\ufeff",  # zero-width joiner, space, BOM
    "👩‍👩‍👧‍👦" * 40,  # one grapheme, 7 code points, 25 UTF-8 bytes each
    "e\u0301" * 100,  # combining marks
    "\ud800",  # a lone surrogate (JSON-escaped by the client)
    "\uffff\ufffe",
    "\uff21\uff22\uff23 汉字 العربية עברית",  # fullwidth ABC, CJK, RTL scripts
    "line\nbreaks\r\nand\ttabs",
    "${jndi:ldap://x}'; DROP TABLE scenes;--",
    "a" * 5000,  # a prompt's limit
    "\U0001d518" * 5000,  # the limit in astral code points (4 UTF-8 bytes each)
]
OVERSIZE_TEXT = ["", "a" * 5001, "\U0001d518" * 5001, "x" * 200_000]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinities included: not JSON at all
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
texts = st.one_of(st.text(min_size=1, max_size=300), st.sampled_from(ODD_TEXT))
short_texts = st.one_of(
    st.text(min_size=1, max_size=60), st.sampled_from([t for t in ODD_TEXT if len(t) <= 200])
)
wrong_types = st.one_of(
    st.integers(), st.floats(), st.booleans(), st.lists(st.integers(), max_size=2)
)
extreme_ints = st.sampled_from(
    [0, -1, 50, 51, 61, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63), 10**30]
)
counts = st.one_of(st.integers(1, 3), extreme_ints, st.floats(), st.text(max_size=3), st.none())
unknown = st.dictionaries(
    st.text(min_size=1, max_size=12).filter(lambda k: k[:1].isalpha()), json_values, max_size=3
)


OMIT = object()


def _strip(d: dict[str, Any]) -> dict[str, Any]:
    return {k: val for k, val in d.items() if val is not OMIT}


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly plausible specs with a few bad fields each, so that many get past the API
    server's schema and reach the operator."""

    def chance(percent: float) -> bool:
        # hypothesis favours the ends of a range: count from its middle.
        return 500 <= draw(st.integers(0, 999)) < 500 + 10 * percent

    def pick(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any], p_bad: float = 5) -> Any:
        if chance(8):
            return OMIT
        return draw(bad) if chance(p_bad) else draw(good)

    def obj(fields: dict[str, Any]) -> Any:
        if chance(2):
            return draw(wrong_types)
        return {**draw(unknown), **_strip(fields)} if draw(st.booleans()) else _strip(fields)

    # "local" rendering costs real CPU per clip second: the fuzz uses the Replicate fake
    # (tiny default clip bytes) and providers that cannot be reached.
    spec = {
        "prompt": pick(texts, st.one_of(st.sampled_from(OVERSIZE_TEXT), wrong_types, st.none())),
        "mode": pick(
            st.sampled_from(["MusicVideo", "AdCreative"]),
            st.sampled_from(["musicvideo", "", 1, None]),
        ),
        "scenes": obj(
            {
                "count": pick(st.integers(1, 3), st.one_of(counts, extreme_ints), p_bad=20),
                "durationSeconds": pick(
                    st.integers(1, 8), st.one_of(extreme_ints, st.text(max_size=2)), p_bad=10
                ),
                "aspectRatio": pick(
                    st.sampled_from(["16:9", "9:16", "1:1"]), st.sampled_from(["4:3", "", 169])
                ),
            }
        ),
        "planner": obj(
            {
                "provider": pick(
                    st.sampled_from(["local", "gemini"]), st.sampled_from(["openai", "", None, 7])
                ),
                "model": pick(short_texts, st.one_of(st.sampled_from(OVERSIZE_TEXT), wrong_types)),
            }
        ),
        "video": obj(
            {
                "provider": pick(
                    st.sampled_from(["replicate", "veo"]), st.sampled_from(["runway", "", None])
                ),
                "model": pick(
                    st.one_of(
                        st.sampled_from(
                            ["google/veo-3.1", "a/b:c:d", "/", "x#y?z", "\u00fc/\u00f6"]
                        ),
                        short_texts,
                    ),
                    st.one_of(st.sampled_from(OVERSIZE_TEXT), wrong_types),
                ),
                "params": pick(
                    st.dictionaries(st.text(max_size=8), json_values, max_size=3), wrong_types
                ),
            }
        ),
        "generateVideos": pick(st.booleans(), st.sampled_from(["yes", 1, None])),
        "retry": obj(
            {
                "limit": pick(st.integers(1, 3), extreme_ints),
                "backoff": obj(
                    {"factor": pick(st.floats(1, 3), st.one_of(st.floats(), st.integers(-1, 11)))}
                ),
            }
        ),
        "budget": obj({"maxGenerations": pick(st.integers(0, 5), extreme_ints)}),
        "paused": pick(st.booleans(), st.sampled_from(["false", 0])),
    }
    return _affordable({**draw(unknown), **_strip(spec)} if draw(st.booleans()) else _strip(spec))


def _affordable(spec: dict[str, Any]) -> dict[str, Any]:
    """Many scenes are fine to plan, but generating clips for all of them only costs time."""
    scenes = spec.get("scenes")
    count = scenes.get("count") if isinstance(scenes, dict) else None
    if isinstance(count, int) and count > 5 and spec.get("generateVideos") is True:
        spec = {**spec, "generateVideos": False}
    return spec


def describe(spec: Any) -> str:
    text = repr(spec)
    return text if len(text) < 400 else text[:400] + f"... ({len(text)} chars)"


def scene_summary(cluster: Any, namespace: str, project: str) -> list[str]:
    """Each Scene's phase and Ready reason: what a stuck Project was waiting on."""
    out = []
    for scene in tolerant(lambda: cluster.scenes(namespace, project), []):
        ready = condition(scene, "Ready") or {}
        st_ = scene.get("status") or {}
        out.append(
            f"{scene['metadata']['name']}: {st_.get('phase')} {ready.get('reason')} "
            f"{ready.get('message')!r} attempts={st_.get('attempts')}"
        )
    return out


def fuzz_name(i: int) -> str:
    """Short names, and names past the limits of a label value (63) and of
    `<project>-scene-NNN` (253), in turn (issue 12 #9)."""
    base, length = f"fuzz-{i:03d}", (0, 70, 253)[i % 3]
    return f"{base}-{'n' * (length - len(base) - 1)}" if length else base


def verdict(project: dict[str, Any]) -> str | None:
    """How the operator reported the Project, or None while it is still working."""
    st_ = project.get("status") or {}
    if st_.get("observedGeneration") != project["metadata"]["generation"]:
        return None
    ready = condition(project, "Ready")
    if ready is None:
        return None
    if ready["status"] == "True":
        return "Ready"
    if ready["reason"] in VERDICTS:
        return ready["reason"]
    if is_true(project, "Paused"):
        return "Paused"
    if is_true(project, "BudgetExhausted"):
        return "BudgetExhausted"
    return None


def test_fuzzed_project_specs_are_rejected_or_reported_never_crash(
    cluster, namespace, run_operator, s3, seed: int
) -> None:
    with ReplicateServer(latency_seconds=0.3, video_bytes=replicate_video) as replicate:
        op = run_operator(
            namespace,
            env={
                **replicate.env(),
                "SCENE_OPERATOR_DEFAULT_VIDEO_PROVIDER": "replicate",
                "GEMINI_API_KEY": "",
                "GOOGLE_API_KEY": "",
            },
        )
        pid = op.proc.pid
        cluster.create_project(
            namespace, "good", project_spec("A well-formed paper boat sails down a gutter", 3)
        )
        names = (fuzz_name(i) for i in itertools.count())
        outcomes: dict[str, int] = {}
        problems: list[str] = []

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            phases=(Phase.explicit, Phase.generate),  # no shrinking: each try costs seconds
            suppress_health_check=list(HealthCheck),
        )
        @given(spec=specs())
        def check(spec: dict[str, Any]) -> None:
            name = next(names)
            try:
                cluster.create_project(namespace, name, spec)
            except ApiException as e:
                field = re.search(r"spec\.[A-Za-z.]+|Invalid value|body", e.body or "")
                key = f"rejected {e.status} ({field.group(0) if field else e.reason})"
                outcomes[key] = outcomes.get(key, 0) + 1
                if e.status not in (400, 422):
                    problems.append(f"{name}: API answered {e.status} {e.reason}: {describe(spec)}")
                return
            except (ValueError, TypeError) as e:  # not JSON at all (NaN, ...): never sent
                outcomes["not JSON"] = outcomes.get("not JSON", 0) + 1
                assert any(isinstance(x, float) and not math.isfinite(x) for x in _leaves(spec)), e
                return
            stored = cluster.project(namespace, name)
            try:
                ProjectSpec.model_validate(stored.get("spec") or {})
                valid = True
            except ValidationError:
                valid = False
            try:
                project = wait_for(
                    lambda: (p := cluster.project(namespace, name)) and verdict(p) and p,
                    timeout=SETTLE_SECONDS,
                    interval=0.25,
                    what=f"a verdict on {name}",
                )
            except AssertionError:
                p = tolerant(lambda: cluster.project(namespace, name), {})
                problems.append(
                    f"{name}: accepted but never reported within {SETTLE_SECONDS}s: "
                    f"conditions {(p.get('status') or {}).get('conditions')}; "
                    f"spec {describe(stored.get('spec'))}; "
                    f"scenes {scene_summary(cluster, namespace, name)}; "
                    f"operator log:\n{log_lines(op.logs(), name, limit=40, last=True)}"
                )
            else:
                got = verdict(project)
                outcomes[f"accepted: {got}"] = outcomes.get(f"accepted: {got}", 0) + 1
                if valid == (got == v.Reason.INVALID_SPEC):
                    problems.append(f"{name}: valid={valid} but verdict {got}")
            # Projects are kept (not deleted): deleting one right after its verdict races
            # the operator's last status write, a separate (minor) finding.
            if not op.alive():
                problems.append(f"operator died after {name}: {describe(spec)}")
                raise AssertionError("\n".join(problems))

        began = time.monotonic()
        hypothesis_seed(seed)(check)()
        print(
            f"[resilience] {EXAMPLES} fuzzed specs in {time.monotonic() - began:.1f}s: {outcomes}"
        )
        wait_for(
            lambda: is_true(cluster.project(namespace, "good"), "Ready"),
            timeout=60,
            what="the well-formed project Ready",
        )
        assert op.alive() and op.proc.pid == pid and op.starts == 1
        crashes = reconcile_failures(op.logs())
        if crashes:
            problems.append(
                "reconcile passes raised instead of reporting (distinct errors):\n"
                + "\n".join(f"  {n} x {err}" for err, n in crashes.items())
            )
        assert not problems, "\n".join(problems)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for item in value.values() for x in _leaves(item)]
    if isinstance(value, list):
        return [x for item in value for x in _leaves(item)]
    return [value]


def reconcile_failures(logs: str) -> dict[str, int]:
    """Distinct errors of 'reconcile failed' log records (exceptions out of a pass)."""
    found: dict[str, int] = {}
    for rec in log_records(logs, '"reconcile failed"'):
        tb = str(rec.get("exception", "")).strip().splitlines()
        err = f"{rec.get('kind')}: {tb[-1] if tb else rec.get('error')}"[:300]
        found[err] = found.get(err, 0) + 1
    return found


def settled_scene(kube, ns: str, project: str) -> dict[str, Any] | None:
    scenes = kube.scenes(ns, project)
    s = scenes[0] if scenes else None
    return s if s and (s.get("status") or {}).get("phase") in ("Completed", "Failed") else None


@pytest.mark.parametrize(
    ("video", "expect"),
    [
        ({"provider": "replicate", "model": "x#y?z"}, "x#y?z"),
        ({"provider": "replicate", "model": "bad model name"}, "bad model name"),
        ({"provider": "veo"}, "API key"),
    ],
    ids=["model-with-url-characters", "model-with-spaces", "veo-without-key"],
)
def test_unusable_video_settings_fail_with_their_own_reason(
    video, expect, cluster, namespace, run_operator, s3
) -> None:
    """A provider that cannot even be called (no key, a model reference the client
    refuses) is a permanent, explained failure: not an exception out of the reconcile
    pass, and not 'JobMayBeOrphaned' (no job was started, the operator did not stop)."""
    with ReplicateServer(latency_seconds=0.3, video_bytes=replicate_video) as replicate:
        op = run_operator(namespace, env={**replicate.env(), "GOOGLE_API_KEY": ""})
        cluster.create_project(
            namespace, "unusable", project_spec("A fox crosses a frozen river", 1, video=video)
        )
        scene = wait_for(
            lambda: settled_scene(cluster, namespace, "unusable"), timeout=60, what="verdict"
        )
        err = scene["status"].get("lastError") or {}
        orphans = [
            e.reason
            for e in cluster.events(namespace, scene["metadata"]["name"])
            if e.reason == v.Reason.JOB_MAY_BE_ORPHANED
        ]
        crashes = reconcile_failures(op.logs())
        assert scene["status"]["phase"] == "Failed", scene["status"]
        assert (
            expect in err.get("message", "")
            and err.get("reason") != v.Reason.JOB_MAY_BE_ORPHANED
            and not orphans
            and not crashes
        ), (
            f"lastError {err}; JobMayBeOrphaned events {len(orphans)}; "
            f"attempts {scene['status'].get('attempts')}; reconcile failures {crashes}"
        )
        assert replicate.created == []


def test_missing_bucket_is_reported_as_a_condition(cluster, namespace, run_operator, s3) -> None:
    """storage.bucket names a bucket that does not exist: the scene must end with a
    condition that says so (not retry the upload forever while Ready says InProgress)."""
    with ReplicateServer(latency_seconds=0.3, video_bytes=replicate_video) as replicate:
        op = run_operator(namespace, env=replicate.env())
        bucket = f"no-such-bucket-{namespace[-6:]}"
        cluster.create_project(
            namespace,
            "nobucket",
            project_spec("A lantern drifts on a dark canal", 1, storage={"bucket": bucket}),
        )

        def reported() -> dict[str, Any] | None:
            p = cluster.project(namespace, "nobucket")
            return p if verdict(p) else None

        try:
            p = wait_for(reported, timeout=45, what="a verdict on the project")
        except AssertionError:
            scene = (cluster.scenes(namespace, "nobucket") or [{}])[0]
            st_ = scene.get("status") or {}
            reasons = cluster.event_reasons(namespace, scene.get("metadata", {}).get("name"))
            raise AssertionError(
                f"no verdict after 45s: scene phase {st_.get('phase')}, Ready "
                f"{condition(scene, 'Ready')}, lastError {st_.get('lastError')}; events "
                f"{reasons}; provider jobs paid {len(replicate.created)}; operator log:\n"
                f"{log_lines(op.logs(), 'UploadFailed', 2)}"
            ) from None
        ready = condition(p, "Ready")
        assert ready and bucket in json.dumps(p["status"]) + json.dumps(
            cluster.scenes(namespace, "nobucket")[0]["status"]
        ), ready
