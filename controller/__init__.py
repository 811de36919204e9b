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
