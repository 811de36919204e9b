"""The model of the realistic scenario's polling (benchmarks/poll_model.py)."""

from __future__ import annotations

from benchmarks import poll_model


def test_the_poll_model_reads_less_and_sees_ends_sooner_once_jobs_ended() -> None:
    shape = poll_model.Shape(scenes=200, slots=50, sigma=0.1)
    fixed, learned = poll_model.run(shape, learn=False), poll_model.run(shape, learn=True)
    before, after = fixed["after the first wave"], learned["after the first wave"]
    assert after["reads per job"] < before["reads per job"] and after["p95"] < before["p95"]
    assert 1.0 <= learned["makespan / ideal"] < fixed["makespan / ideal"]
    assert poll_model.main(["--sigma", "0.1", "--scenes", "100"]) == 0
