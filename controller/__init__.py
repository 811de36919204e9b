"""scene-operator: a Kubernetes operator for Projects, Scenes and their video clips."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("scene-operator")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"
