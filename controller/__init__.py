"""scene-operator: a Kubernetes operator for Projects, Scenes and their video clips."""

from __future__ import annotations


def _version() -> str:
    """The installed distribution's version (pyproject.toml's, the one place it is
    written; an editable install has it too)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("scene-operator")
    except PackageNotFoundError:
        return "0+unknown"


def _commit() -> str:
    """The source commit, stamped into controller/_build.py when an image is built
    (scripts/build-image.sh); "unknown" in any other install."""
    try:
        from controller._build import COMMIT

        return str(COMMIT)
    except ImportError:
        return "unknown"


__version__ = _version()
__commit__ = _commit()
