"""The A/B table: medians and spreads side by side, a figure neither side measured left out."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.compare import from_results, table


def run(makespan: float, p95: float | None = None) -> dict:
    r: dict = {"makespan_seconds": makespan, "ratio": makespan / 10}
    if p95 is not None:
        r["completions"] = {"completion_to_completed_seconds": {"p95": p95}}
    return r


def test_medians_spreads_and_ratios_and_unmeasured_figures_left_out() -> None:
    text = table({"A": [run(10), run(12), run(11)], "B": [run(5), run(6), run(7)]})
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()}
    assert "11.00 (±18 %, n=3)" in rows["makespan (s)"]
    assert "6.00 (±33 %, n=3)" in rows["makespan (s)"]
    assert rows["makespan (s)"].endswith("| 0.55 |")
    assert "completion → Completed p95 (s)" not in rows  # neither side measured it


def test_a_figure_only_one_side_measured_shows_a_dash() -> None:
    text = table({"A": [run(10)], "B": [run(10, p95=4.0)]})
    row = next(line for line in text.splitlines() if "p95 (s)" in line)
    assert "| — |" in row and "4.00" in row


def test_the_table_is_rebuilt_from_a_folder_of_result_files(tmp_path: Path) -> None:
    for name, makespan in [("a-06ad720f164c-1", 10), ("a-06ad720f164c-2", 12), ("b-1", 5)]:
        (tmp_path / f"{name}.json").write_text(json.dumps(run(makespan)))
    sides = from_results(tmp_path)
    assert list(sides) == ["A 06ad720f164c", "B working tree"]
    assert [r["makespan_seconds"] for r in sides["A 06ad720f164c"]] == [10, 12]
    assert "| 0.45 |" in table(sides).splitlines()[2]
