"""JSON from the API server, decoded by orjson: the watch streams (kopf's) and the
answers to our own requests. Decoding them was the operator's largest single CPU item
in the benchmark's profile; orjson takes about half the time of the standard library.

What orjson refuses (NaN, infinities, lone surrogates) goes to the standard library,
which accepts it or raises the same ValueError. The one difference, integers beyond 64
bits decoded as floats, cannot come from the API server: it stores them as floats.
Encoding stays with the standard library: orjson writes NaN as null, and a write must
fail rather than say something else.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - declared in pyproject; an older venv still runs
    orjson = None  # type: ignore[assignment]


def loads(data: str | bytes | bytearray) -> Any:
    if orjson is not None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # the standard library accepts what orjson refuses, or raises alike
    return json.loads(data)


class KopfJson:
    """Stands in for the `json` module in kopf's API client, whose watch stream calls
    `json.loads(line.decode("utf-8"))` per event."""

    loads = staticmethod(loads)
    dumps = staticmethod(json.dumps)
    JSONDecodeError = json.JSONDecodeError
