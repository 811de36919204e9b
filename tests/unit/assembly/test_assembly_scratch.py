"""Scratch directories of dead operators are removed; live ones and foreign ones are not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from controller.assembly import scratch


def test_only_the_scratch_of_dead_processes_is_removed(tmp_path: Path) -> None:
    own, dead, live, foreign = (
        tmp_path / f"scene-operator-{n}" for n in ("own", "dead", "live", "x")
    )
    for d in (own, dead, live, foreign):
        (d / "assembly-1").mkdir(parents=True)
        (d / "assembly-1" / "final.mp4").write_bytes(b"x" * 100)
    other = tmp_path / "unrelated"
    other.mkdir()
    (other / scratch.LOCK).write_bytes(b"")
    # a process that locked its directory and was killed: the lock file stays, unheld
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"from controller.assembly import scratch; scratch.claim({str(dead)!r})",
        ],
        check=True,
    )
    # a live process holding its lock
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import sys; from controller.assembly import scratch; h = scratch.claim({str(live)!r}); "
         "print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        handle = scratch.claim(str(own))
        assert scratch.sweep(str(own)) == ["scene-operator-dead"]
        handle.close()
    finally:
        holder.communicate(b"", timeout=10)
    assert not dead.exists()
    assert (live / "assembly-1" / "final.mp4").exists()
    assert (own / "assembly-1").exists() and (foreign / "assembly-1").exists()  # no lock file
    assert other.exists()  # not one of ours


def test_a_claim_in_progress_is_never_swept(tmp_path: Path) -> None:
    """A process between creating its lock file and locking it must not lose its
    directory: the unlocked file it is about to lock has a name `sweep` does not read,
    and the file under the lock's name appears only once locked."""
    own, starting = tmp_path / "scene-operator-own", tmp_path / "scene-operator-starting"
    own.mkdir()
    starting.mkdir()
    (starting / f"{scratch.LOCK}.12345").write_bytes(b"")  # opened, not yet locked
    handle = scratch.claim(str(own))
    try:
        assert not (own / f"{scratch.LOCK}.{os.getpid()}").exists()  # renamed into place
        assert (own / scratch.LOCK).is_file()
        assert scratch.sweep(str(own)) == []
        assert starting.exists()
    finally:
        handle.close()
