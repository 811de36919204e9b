"""`kubectl video`: what it prints is safe for a terminal, only the operator's Events are
shown, the pause shows, and `open` signs URLs for the film and every clip."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from controller.api import vocabulary as v
from controller.plugin import links, report
from controller.plugin.client import PluginError


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b]0;title\x07plain", "]0;titleplain"),
        ("\x1b[2Jcleared", "[2Jcleared"),
        ("ok\rhidden", "okhidden"),
        ("csi\x9b6n", "csi6n"),
        ("bidi \u202egnp.exe", "bidi gnp.exe"),
        ("two\nlines\tand é ✓", "two\nlinesand é ✓"),
    ],
)
def test_printable_strips_what_a_terminal_would_act_on(raw: str, shown: str) -> None:
    assert report.printable(raw) == shown


def test_only_events_the_operator_reported() -> None:
    mine = {"reportingComponent": v.MANAGER, "source": {"component": v.MANAGER}}
    assert report.by_operator(mine)
    assert report.by_operator({"source": {"component": v.MANAGER}})  # older API servers
    assert not report.by_operator({"source": {"component": "kubectl"}})
    assert not report.by_operator({"reportingComponent": "mallory", "source": mine["source"]})
    assert not report.by_operator({})


def test_a_project_paused_by_its_annotation_shows_as_paused() -> None:
    base = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {}}
    assert not report.project_view(base, [], []).paused
    annotated = {**base, "metadata": {**base["metadata"], "annotations": {v.ANNOTATION_PAUSED: "true"}}}  # fmt: skip
    assert report.project_view(annotated, [], []).paused
    assert report.project_view({**base, "spec": {"paused": True}}, [], []).paused


def scene(name: str, **status: object) -> dict[str, object]:
    return {"metadata": {"name": name}, "status": status}


def test_open_lists_the_film_then_each_scenes_working_clip() -> None:
    project = {"status": {"finalVideo": {"bucket": "b", "s3Key": "f.mp4"}}}
    scenes = [
        scene(
            "s1",
            clip={"bucket": "b", "key": "o1.mp4"},
            workingClip={"bucket": "b", "key": "w1.mp4"},
        ),
        scene("s2", clip={"bucket": "b", "key": "o2.mp4"}),
        scene("s3"),  # no clip yet
    ]
    assert links.objects(project, scenes) == [
        links.Link("film", "b", "f.mp4"),
        links.Link("s1", "b", "w1.mp4"),
        links.Link("s2", "b", "o2.mp4"),
    ]
    assert links.objects({}, []) == []
    assert "no film or clip in S3 yet" in links.render("ns", "p", [], 60)


def test_presigned_urls_use_the_users_endpoint_and_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    (signed,) = links.presign([links.Link("film", "bk", "a/b.mp4")], 120)
    url = urlsplit(signed.url)
    assert (url.scheme, url.netloc) == ("http", "127.0.0.1:9")
    assert url.path == "/bk/a/b.mp4"
    assert parse_qs(url.query)["X-Amz-Expires"] == ["120"]
    assert "AKIDEXAMPLE" in parse_qs(url.query)["X-Amz-Credential"][0]
    text = links.render("ns", "p", [signed], 120)
    assert "s3://bk/a/b.mp4" in text and signed.url in text
    for bad in (0, links.MAX_EXPIRES + 1):
        with pytest.raises(PluginError, match="--expires"):
            links.presign([], bad)
