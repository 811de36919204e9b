"""Fakes of the operator's own interfaces (controller/runtime/ports.py) for unit tests of
the runtime: a Kubernetes API that keeps objects and resourceVersions, a clip store, and
providers whose every verb a test can script (Crossplane's ExternalClientFns style)."""
