"""The operator process runs with the allocator settings of the image, in the benchmark too."""

from __future__ import annotations

from pathlib import Path

from benchmarks.runner import image_env

ROOT = Path(__file__).resolve().parents[3]


def test_the_image_caps_malloc_arenas_and_the_benchmark_reads_the_same_setting() -> None:
    env = image_env(ROOT / "Dockerfile")
    assert env == {"MALLOC_ARENA_MAX": "2"}


def test_image_env_reads_only_malloc_lines(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM x\nENV PATH=/a:$PATH \\\n    HOME=/tmp\nENV MALLOC_ARENA_MAX=4\n")
    assert image_env(dockerfile) == {"MALLOC_ARENA_MAX": "4"}
