"""Drift compares content, not only ETags (issue 12 #16): a clip whose ETag changed but
whose bytes still hash to the SHA-256 recorded at upload is the same clip, so no new take
is paid for; the new ETag is remembered so drift stops asking."""

from __future__ import annotations

import pytest

from controller.decide import scene as sc
from controller.decide.scene import Effect, ObjectSeen, StoredObject, decide
from tests.unit.decide.scene_builders import clip, completed, key, observe

SHA = "a" * 64


def recorded() -> sc.SceneStatus:
    s = completed()
    assert s.clip is not None
    return s.model_copy(update={"clip": clip(sha256=SHA)})


def look(etag: str, content: str | None, size: int = 1000) -> ObjectSeen:
    return ObjectSeen(key(), StoredObject(key(), size, etag, SHA, content_sha256=content))


def test_new_etag_same_bytes_keeps_the_clip_and_remembers_the_etag() -> None:
    d = decide(observe(recorded(), clip_check=look('"copied"', SHA)))
    assert d.effect == Effect.WRITE and d.rule == "clip-etag-changed-same-content"
    assert d.status.take == 0 and d.status.phase == sc.ScenePhase.COMPLETED
    assert d.status.clip is not None and d.status.clip.etag == '"copied"'
    assert d.status.clip.sha256 == SHA and d.status.clip.key == key()
    assert not d.events  # nothing happened to the user's clip
    # The next drift look finds it as recorded: nothing to do.
    again = decide(observe(d.status, clip_check=look('"copied"', None)))
    assert again.effect == Effect.NONE and again.rule == "completed"


@pytest.mark.parametrize(
    ("seen", "why"),
    [
        pytest.param(look('"copied"', "b" * 64), "other bytes", id="new-etag-other-bytes"),
        pytest.param(look('"copied"', None), "bytes not read", id="new-etag-bytes-unknown"),
        pytest.param(look('"copied"', SHA, size=999), "size", id="new-etag-other-size"),
    ],
)
def test_other_bytes_are_still_a_changed_clip(seen: ObjectSeen, why: str) -> None:
    d = decide(observe(recorded(), clip_check=seen))
    assert d.rule == "clip-missing-regenerate", why
    assert d.status.take == 1


def test_a_clip_recorded_without_a_checksum_falls_back_to_the_etag() -> None:
    d = decide(observe(completed(), clip_check=look('"copied"', SHA)))
    assert d.rule == "clip-missing-regenerate"
