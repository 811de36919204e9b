"""The working clip (spec.edit): the edit hash, and the decision table of
controller/decide/scene/working.py — no edit, edit added, changed, removed, the
original replaced, the working object missing or changed, an edit that leaves nothing.

Every row is driven by a loop of `decide` alone (WRITE applies the status, DERIVE_WORKING
answers with the `Derived` the row gives): no I/O, and a provider job would show up as a
START, which no row may ever return.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from controller.api.scene import ClipEdit, ScenePhase, SceneStatus
from controller.api.vocabulary import Cond, Reason
from controller.decide.conditions import get_condition
from controller.decide.edit import Edit, edit_hash, edit_of, working_record
from controller.decide.scene import Decision, Derived, Effect, ObjectSeen, Observation, Rule, decide
from controller.decide.scene import StoredObject as Obj
from tests.unit.decide.scene_builders import BUCKET, completed, desired, key, observe

TRIM = Edit(trim_start=1.0)
OTHER = Edit(trim_start=0.5, trim_end=0.25, mute_audio=True)


def wkey(edit: Edit, take: int = 0) -> str:
    return replace(desired(), edit=edit).working_key("h1", take)


def derived(edit: Edit, take: int = 0, size: int = 700, etag: str = '"w1"') -> Derived:
    k = wkey(edit, take)
    return Derived(k, Obj(k, size, etag, f"sha-{etag}"), duration_seconds=3.0)


def run(o: Observation, answer: Derived | None = None) -> tuple[Observation, list[Decision]]:
    """decide until it rests; DERIVE_WORKING is answered with `answer` (once)."""
    decisions: list[Decision] = []
    for _ in range(10):
        d = decide(o)
        decisions.append(d)
        assert d.effect != Effect.START, "an edit must never start a provider job"
        if d.effect == Effect.WRITE:
            o = replace(o, status=d.status)
            if d.rule == Rule.WORKING_DERIVED:
                o = replace(o, derived=None)  # as run_pass does: recorded
        elif d.effect == Effect.DERIVE_WORKING:
            assert answer is not None, f"unexpected derive after {[x.rule for x in decisions]}"
            o = replace(o, derived=answer, working_check=None)
            answer = None
        else:
            assert d.effect == Effect.NONE, d
            return o, decisions
    raise AssertionError("did not rest")


def rules(decisions: list[Decision]) -> list[str]:
    return [d.rule.value for d in decisions]


def edited(edit: Edit) -> tuple[Observation, SceneStatus]:
    """A Completed Scene whose working clip for `edit` is derived and recorded."""
    o = observe(completed(), desired=replace(desired(), edit=edit))
    o, _ = run(o, derived(edit))
    return replace(o, derived=None), o.status


def ready(s: SceneStatus) -> tuple[str, str]:
    c = get_condition(s.conditions, Cond.READY)
    assert c is not None
    return c.status, c.reason


def events(decisions: list[Decision]) -> list[str]:
    return [e.reason for d in decisions for e in d.events]


# ----------------------------------------------------------------------------- edit hash


def test_edit_hash_is_stable_and_names_every_field() -> None:
    assert edit_hash(TRIM) == edit_hash(Edit(1.0, 0.0, False)) == TRIM.hash
    assert len(TRIM.hash) == 12
    hashes = {Edit(1.0).hash, Edit(0, 1.0).hash, Edit(1.0, 0, True).hash, Edit(0, 0, True).hash}
    assert len(hashes) == 4  # start, end and mute each change it


def test_edit_of_spec_rounds_to_milliseconds_and_empty_is_no_edit() -> None:
    assert edit_of(None) is None
    assert edit_of(ClipEdit()) is None
    assert edit_of(ClipEdit(trim_start_seconds=0, trim_end_seconds=0, mute_audio=False)) is None
    a = edit_of(ClipEdit(trim_start_seconds=1.0))
    b = edit_of(ClipEdit(trim_start_seconds=1.0000001))
    assert a == b == TRIM and a is not None and a.hash == TRIM.hash
    assert edit_of(ClipEdit(trim_start_seconds=1.001)) != TRIM


def test_working_key_sits_beside_the_original() -> None:
    assert wkey(TRIM, 2) == f"{key('h1', 2)[: -len('.mp4')]}-w{TRIM.hash}.mp4"
    assert desired().working_key("h1", 2) == key("h1", 2)  # no edit: the original


def test_spec_rejects_negative_and_unbounded_trims() -> None:
    with pytest.raises(ValueError):
        ClipEdit(trim_start_seconds=-1)
    with pytest.raises(ValueError):
        ClipEdit(trim_end_seconds=10_000)


# ----------------------------------------------------------------------------- decision table


def test_no_edit_working_key_is_the_original_and_nothing_is_derived() -> None:
    o, ds = run(observe(completed()))
    assert rules(ds) == [Rule.COMPLETED]
    assert o.status.working_video_clip_s3_key == o.status.original_video_clip_s3_key == key()
    assert o.status.working_clip is None
    scene = {"spec": {}, "status": o.status.wire()}
    assert working_record(scene) == o.status.clip.wire()  # type: ignore[union-attr]


def test_edit_added_says_editing_then_derives_and_records_the_working_clip() -> None:
    o = observe(completed(), desired=replace(desired(), edit=TRIM))
    first = decide(o)
    assert first.rule == Rule.EDIT_PENDING and first.effect == Effect.WRITE
    assert ready(first.status) == ("False", Reason.EDITING)
    assert first.status.working_video_clip_s3_key == key()  # still the verified original
    o, ds = run(o, derived(TRIM))
    assert rules(ds) == [
        Rule.EDIT_PENDING, Rule.DERIVE_WORKING, Rule.WORKING_DERIVED, Rule.COMPLETED,
    ]  # fmt: skip
    s = o.status
    assert s.working_video_clip_s3_key == wkey(TRIM)
    assert s.original_video_clip_s3_key == key() and s.clip is not None and s.clip.key == key()
    w = s.working_clip
    assert w is not None and (w.key, w.size, w.etag, w.sha256) == (
        wkey(TRIM),
        700,
        '"w1"',
        'sha-"w1"',
    )
    assert (w.edit_hash, w.duration_seconds, w.source_key, w.bucket) == (
        TRIM.hash,
        3.0,
        key(),
        BUCKET,
    )
    assert ready(s) == ("True", Reason.COMPLETED)
    assert events(ds) == [Reason.CLIP_EDITED]
    assert s.attempts == 1 and s.generations_started == 1  # nothing paid
    spec = {"edit": {"trimStartSeconds": 1.0}}
    assert working_record({"spec": spec, "status": s.wire()}) == w.wire()
    assert working_record({"spec": {"edit": {"trimEndSeconds": 1}}, "status": s.wire()}) is None
    pending = {"spec": spec, "status": first.status.wire()}  # still deriving
    assert working_record(pending) is None


def test_edit_changed_derives_a_new_working_clip() -> None:
    o, before = edited(TRIM)
    o = replace(o, desired=replace(desired(), edit=OTHER))
    o, ds = run(o, derived(OTHER, etag='"w2"'))
    assert Rule.WORKING_DERIVED in rules(ds)
    assert o.status.working_video_clip_s3_key == wkey(OTHER) != before.working_video_clip_s3_key
    assert o.status.working_clip is not None and o.status.working_clip.edit_hash == OTHER.hash
    assert o.status.clip == before.clip


def test_edit_removed_points_the_working_key_back_at_the_original() -> None:
    o, _ = edited(TRIM)
    o, ds = run(replace(o, desired=desired()))
    assert rules(ds)[0] == Rule.EDIT_REMOVED
    assert o.status.working_video_clip_s3_key == key() and o.status.working_clip is None
    assert events(ds) == [Reason.CLIP_EDITED]
    assert ready(o.status) == ("True", Reason.COMPLETED)


def test_original_replaced_derives_again_from_the_new_take() -> None:
    """A regenerated original (a new take): its verified upload drops the old working
    clip from status, and the working clip of the new original is derived."""
    o, _ = edited(TRIM)
    regen = o.status.model_copy(update={"take": 1, "phase": ScenePhase.PROCESSING})
    new = Obj(key("h1", 1), 2000, '"e2"', "sha-2")
    o = replace(o, status=regen, expected=ObjectSeen(key("h1", 1), new))
    o, ds = run(o, derived(TRIM, take=1, etag='"w3"'))
    assert rules(ds)[0] == Rule.ADOPT
    assert Rule.WORKING_DERIVED in rules(ds)
    s = o.status
    assert s.original_video_clip_s3_key == key("h1", 1)
    assert s.working_video_clip_s3_key == wkey(TRIM, 1)
    assert s.working_clip is not None and s.working_clip.source_key == key("h1", 1)


@pytest.mark.parametrize(
    "found",
    [None, Obj("k", 701, '"w9"', "sha-other")],
    ids=["working-object-missing", "working-object-changed"],
)
def test_working_object_missing_or_changed_is_derived_again_without_a_job(found) -> None:
    o, before = edited(TRIM)
    found = found and replace(found, key=wkey(TRIM))
    o = replace(o, working_check=ObjectSeen(wkey(TRIM), found))
    first = decide(o)
    # no status change is visible until the repair is done: no write, straight to it
    assert (first.rule, first.effect) == (Rule.DERIVE_WORKING, Effect.DERIVE_WORKING)
    # derived again: the same bytes (the trim is deterministic), a new verification
    o = replace(o, now=o.now + dt.timedelta(seconds=1))
    o, ds = run(o, derived(TRIM))
    assert Rule.WORKING_DERIVED in rules(ds) and events(ds) == [Reason.CLIP_EDITED]
    w, was = o.status.working_clip, before.working_clip
    assert w is not None and was is not None
    assert w.etag == was.etag and w.verified_at > was.verified_at
    assert o.status.clip == before.clip


def test_working_object_with_same_bytes_under_a_new_etag_is_kept() -> None:
    o, before = edited(TRIM)
    w = before.working_clip
    assert w is not None
    same = Obj(w.key, w.size, '"copied"', w.sha256, content_sha256=w.sha256)
    o, ds = run(replace(o, working_check=ObjectSeen(w.key, same)))
    assert rules(ds)[0] == Rule.WORKING_SAME_CONTENT
    assert Rule.DERIVE_WORKING not in rules(ds)
    assert o.status.working_clip is not None and o.status.working_clip.etag == '"copied"'


def test_working_object_intact_costs_nothing() -> None:
    o, before = edited(TRIM)
    w = before.working_clip
    assert w is not None
    intact = Obj(w.key, w.size, w.etag, w.sha256)
    d = decide(replace(o, working_check=ObjectSeen(w.key, intact)))
    assert (d.rule, d.effect) == (Rule.COMPLETED, Effect.NONE)


def test_edit_that_leaves_nothing_is_invalid_spec_and_changes_nothing() -> None:
    o, before = edited(TRIM)
    long = Edit(trim_start=5.0)
    o = replace(o, desired=replace(desired(), edit=long))
    refused = Derived(wkey(long), None, refused="leaves nothing of the 4.00 s clip")
    o, ds = run(o, refused)
    assert Rule.EDIT_REFUSED in rules(ds)
    s = o.status
    assert ready(s) == ("False", Reason.INVALID_SPEC)
    stalled = get_condition(s.conditions, Cond.STALLED)
    assert stalled is not None and stalled.reason == Reason.INVALID_SPEC
    assert "leaves nothing" in (s.last_error.message if s.last_error else "")
    assert events(ds).count(Reason.INVALID_SPEC) == 1
    # nothing changed: the original and the last working clip stay as they were
    assert (s.clip, s.working_clip) == (before.clip, before.working_clip)
    assert s.working_video_clip_s3_key == before.working_video_clip_s3_key
    # and downstream (the film) keeps using the last working clip
    scene = {"spec": {"edit": {"trimStartSeconds": 5}}, "status": s.wire()}
    assert working_record(scene) == before.working_clip.wire()  # type: ignore[union-attr]
    # the next pass does not try (or download) again
    d = decide(replace(o, derived=None))
    assert (d.rule, d.effect) == (Rule.EDIT_REFUSED, Effect.NONE)
    # a corrected edit is derived, and the refusal is forgotten
    o, ds = run(replace(o, derived=None, desired=replace(desired(), edit=OTHER)), derived(OTHER))
    assert o.status.last_error is None and o.status.refused_edit is None
    assert ready(o.status) == ("True", Reason.COMPLETED)


def test_kubectl_video_shows_the_working_clip_and_its_length() -> None:
    import datetime as dt

    from controller.plugin.report import render_scene, scene_view

    _, s = edited(TRIM)
    meta = {"name": "lighthouse-scene-001", "namespace": "default", "generation": 1}
    view = scene_view({"metadata": meta, "spec": {"sequence": 1}, "status": s.wire()})
    assert view.clip_key == wkey(TRIM) and view.trimmed_seconds == 3.0
    text = render_scene(view, dt.datetime(2025, 3, 1, tzinfo=dt.UTC))
    assert f"Clip:         {wkey(TRIM)}" in text and "Trimmed:      3.00 s" in text
