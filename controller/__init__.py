"""scene-operator: a Kubernetes operator for Projects, Scenes and their video clips."""

from __future__ import annotations


def _version() -> str:
    """The installed distribution's version; from a source tree without an install,
    pyproject.toml's (the one place the version is written)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("scene-operator")
    except PackageNotFoundError:
        import tomllib
        from pathlib import Path

        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        try:
            return tomllib.loads(pyproject.read_text())["project"]["version"]
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "0+unknown"


__version__ = _version()


def _commit() -> str:
    """The source commit: written into controller/_build.py when an image is built, else
    read from a git checkout, else unknown."""
    try:
        from controller._build import COMMIT  # written at build time

        return str(COMMIT)
    except ImportError:
        pass
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return "unknown"
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


def __getattr__(name: str) -> str:
    # Lazy: only the metrics ask, and a git call at every import would cost each process.
    if name == "__commit__":
        globals()["__commit__"] = commit = _commit()
        return commit
    raise AttributeError(name)
