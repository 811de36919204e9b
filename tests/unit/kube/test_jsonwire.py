"""JSON from the API server: orjson where it can, decoding exactly what the standard
library decodes; and kopf's watch stream uses it."""

from __future__ import annotations

import inspect
import json
import math

import pytest

from controller.informer.kopf_patches import use_fast_json
from controller.kube import jsonwire

EVENT = {
    "type": "MODIFIED",
    "object": {
        "apiVersion": "video.example.com/v1alpha1",
        "kind": "Scene",
        "metadata": {"name": "s-1", "resourceVersion": "42", "generation": 1},
        "spec": {"prompt": "phare au crépuscule, 灯台 🌊", "durationSeconds": 4, "ratio": 0.5},
        "status": {"phase": "Completed", "conditions": [], "ok": True, "jobId": None},
    },
}


@pytest.mark.parametrize("as_bytes", [True, False])
def test_a_watch_event_decodes_as_the_standard_library_does(as_bytes: bool) -> None:
    line = json.dumps(EVENT)
    data = line.encode() if as_bytes else line
    assert jsonwire.loads(data) == json.loads(line) == EVENT


def test_what_orjson_refuses_is_decoded_by_the_standard_library() -> None:
    value = jsonwire.loads('{"a": NaN, "b": Infinity, "c": "\\ud800"}')
    assert math.isnan(value["a"]) and value["b"] == math.inf and value["c"] == "\ud800"


@pytest.mark.parametrize("bad", [b"", b"{", b"<html>502</html>", b'{"a": 1} x'])
def test_broken_json_raises_a_value_error(bad: bytes) -> None:
    with pytest.raises(ValueError):
        jsonwire.loads(bad)


def test_kopfs_watch_stream_decodes_with_jsonwire() -> None:
    from kopf._cogs.clients import api

    # The call this replaces is still kopf's: a kopf upgrade that changed it shows here.
    assert "json.loads(line.decode('utf-8'))" in inspect.getsource(api.stream)
    use_fast_json()
    assert api.json.loads is jsonwire.loads
    use_fast_json()  # twice is harmless
    assert api.json.loads is jsonwire.loads
