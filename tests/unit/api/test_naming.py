"""Names derived from a Project's name stay within the API server's limits (issue 12 #9):
a label value holds 63 characters, a name 253; near the limits they are shortened
deterministically, and two different long names never share a shortened one."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.api import naming

LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
subdomains = st.lists(label, min_size=1, max_size=8).map(".".join).filter(lambda n: len(n) <= 253)


@pytest.mark.parametrize(
    ("project", "label_value", "scene"),
    [
        pytest.param("lighthouse", "lighthouse", "lighthouse-scene-001", id="short-name-as-is"),
        pytest.param("a" * 63, "a" * 63, "a" * 63 + "-scene-001", id="63-chars-label-as-is"),
        pytest.param("a" * 243, None, "a" * 243 + "-scene-001", id="243-chars-scene-as-is"),
    ],
)
def test_names_that_fit_are_kept(project: str, label_value: str | None, scene: str) -> None:
    if label_value is not None:
        assert naming.project_label(project) == label_value
    assert naming.scene_name(project, 1) == scene


@pytest.mark.parametrize("length", [64, 100, 244, 253])
def test_long_names_are_shortened_within_the_limits(length: int) -> None:
    project = ("p-" * 200)[: length - 1] + "z"
    value = naming.project_label(project)
    assert len(value) <= 63 and LABEL_VALUE.match(value), value
    for seq in (1, 42, 999):
        name = naming.scene_name(project, seq)
        assert len(name) <= 253 and naming.is_subdomain(name), name
        assert name.endswith(f"-scene-{seq:03d}")
    # Deterministic: a restart derives the same names (so a 409 means "created before").
    assert naming.scene_name(project, 7) == naming.scene_name(project, 7)
    assert naming.project_label(project) == value


def test_shortened_names_of_different_projects_differ() -> None:
    a, b = "x" * 250 + "abc", "x" * 250 + "abd"
    assert naming.scene_name(a, 1) != naming.scene_name(b, 1)
    assert naming.project_label(a) != naming.project_label(b)


@pytest.mark.parametrize("sep", ["-", "."])
def test_a_cut_never_leaves_a_dash_or_dot_before_the_hash(sep: str) -> None:
    project = "a" * 51 + sep + "b" * 40  # the label value cut falls right after `sep`
    value = naming.project_label(project)
    assert LABEL_VALUE.match(value) and value.startswith("a" * 51 + "-"), value
    assert naming.is_subdomain(naming.event_name(project + ".c" * 80, "0123456789ab"))


@given(subdomains, st.integers(1, 999))
def test_every_valid_project_name_gives_valid_names(project: str, seq: int) -> None:
    assert naming.is_subdomain(naming.scene_name(project, seq))
    value = naming.project_label(project)
    assert len(value) <= 63 and LABEL_VALUE.match(value)
    event = naming.event_name(naming.scene_name(project, seq), "0123456789ab")
    assert naming.is_subdomain(event), event


def test_the_download_file_name_fits_the_file_system() -> None:
    long_ns, long_name = "n" * 63, "s" * 243 + "-scene-001"
    name = naming.download_file_name(long_ns, long_name, "prediction-abcdefghijklmnop")
    assert len(name.encode()) <= naming.MAX_FILE_NAME and name.endswith("efghijklmnop.mp4")
    other = naming.download_file_name(long_ns, "s" * 243 + "-scene-002", "prediction-abc")
    assert other != name
    assert naming.download_file_name("ns", "p-scene-001", "job1") == "ns-p-scene-001-job1.mp4"
