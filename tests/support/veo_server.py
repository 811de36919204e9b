"""A local server that speaks Vertex AI's Veo long-running API (express mode: API key in
`x-goog-api-key`), so the real google-genai client can be tested offline.

Paths are the ones google-genai 3.x sends in Vertex mode (see shared/reference/providers.md):
    POST /v1beta1/publishers/google/models/{model}:predictLongRunning
    POST /v1beta1/{resource}:fetchPredictOperation   body {"operationName": NAME}
The `projects/P/locations/L/` form used with project/location auth is accepted too.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from tests.support.protocol import (
    DEFAULT_VIDEO_BYTES,
    Failure,
    ProtocolServer,
    Reply,
)

_GRPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_VERSION = r"/(?P<version>v1[a-z0-9]*)"
_CREATE = re.compile(
    _VERSION + r"/(?:projects/[^/]+/locations/[^/]+/)?"
    r"publishers/google/models/(?P<model>[^/:]+):predictLongRunning$"
)
_POLL = re.compile(_VERSION + r"/(?P<resource>.+):fetchPredictOperation$")

RAI_REASON = (
    "The prompt could not be submitted. This prompt contains sensitive words that violate "
    "Google's Responsible AI practices. Support codes: 15236754"
)


class VeoServer(ProtocolServer):
    """Operations run for `latency_seconds`; each ends as the next entry of `outcomes`
    says (taken at create time): "succeeded" (default, video bytes inline), "gcs" (only a
    gs:// URI), "filtered" (RAI: no videos), "failed[:<rpc code>[:<message>]]"."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        latency_seconds: float = 0.2,
        video_bytes: bytes | Callable[[dict[str, Any]], bytes] = DEFAULT_VIDEO_BYTES,
    ) -> None:
        super().__init__(latency_seconds=latency_seconds)
        self.api_key = api_key or "AIza" + secrets.token_hex(16)
        self.video_bytes = video_bytes
        self.fail_next_polls: list[Failure] = []
        self.outcomes: list[str] = []
        self.created: list[dict[str, Any]] = []
        self._ops: dict[str, dict[str, Any]] = {}

    @property
    def token(self) -> str:  # same attribute name as ReplicateServer
        return self.api_key

    def env(self) -> dict[str, str]:
        return {"GOOGLE_API_KEY": self.api_key, "GOOGLE_VERTEX_BASE_URL": self.base_url}

    def forget(self, name: str) -> None:
        """Simulate expiry: the operation answers 404 from now on."""
        with self.lock:
            self._ops.pop(name, None)

    # ------------------------------------------------------------------ hooks

    def route(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        if method != "POST":
            return None
        path = path.split("?", 1)[0]
        if m := _CREATE.match(path):
            return "create", m.groupdict()
        if m := _POLL.match(path):
            return "poll", m.groupdict()
        return None

    def authorized(self, headers: dict[str, str]) -> bool:
        return headers.get("x-goog-api-key") == self.api_key

    def error_reply(self, status: int, detail: str, headers: dict[str, str] | None = None) -> Reply:
        error = {"code": status, "message": detail, "status": _GRPC_STATUS.get(status, "UNKNOWN")}
        return Reply.json(status, {"error": error}, headers)

    def handle(self, route: str, params: dict[str, str], payload: Any) -> Reply:
        if route == "create":
            return self._create(params["model"], payload)
        if (failure := self.take(self.fail_next_polls)) is not None:
            return self.failure_reply(failure)
        name = payload.get("operationName", "")
        if name.rpartition("/operations/")[0] != params["resource"]:
            return self.error_reply(400, "operationName does not belong to the resource")
        with self.lock:
            op = self._ops.get(name)
            if op is None:
                return self.error_reply(404, f"Operation {name} not found.")
            return Reply.json(200, self._operation_json(op))

    # ------------------------------------------------------------------ operations

    def _create(self, model: str, payload: Any) -> Reply:
        if (failure := self.take(self.fail_next_creates)) is not None:
            return self.failure_reply(failure)
        instances = payload.get("instances")
        if not instances or not instances[0].get("prompt"):
            return self.error_reply(400, "instances[0].prompt is required")
        op_id = secrets.token_hex(16)
        name = f"projects/local/locations/us-central1/publishers/google/models/{model}/operations/{op_id}"
        op = {
            "name": name,
            "model": model,
            "instances": instances,
            "parameters": payload.get("parameters", {}),
            "time": time.time(),
            "outcome": self.take(self.outcomes) or "succeeded",
        }
        with self.lock:
            self._ops[name] = op
            self.created.append({k: v for k, v in op.items() if k != "outcome"})
        return Reply.json(200, {"name": name})

    def _operation_json(self, op: dict[str, Any]) -> dict[str, Any]:
        if time.time() - op["time"] < self.latency_seconds:
            return {"name": op["name"]}  # no "done": the SDK reports done=None
        kind, _, rest = op["outcome"].partition(":")
        done: dict[str, Any] = {"name": op["name"], "done": True}
        if kind == "failed":
            code, _, message = rest.partition(":")
            done["error"] = {
                "code": int(code or 3),
                "message": message or "Video generation failed.",
            }
            return done
        response: dict[str, Any] = {
            "@type": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"
        }
        if kind == "filtered":
            response.update(raiMediaFilteredCount=1, raiMediaFilteredReasons=[RAI_REASON])
        elif kind == "gcs":
            uri = f"gs://local-veo-output/{op['name'].rpartition('/')[2]}/sample_0.mp4"
            response["videos"] = [{"gcsUri": uri, "mimeType": "video/mp4"}]
        else:
            data = self.video_bytes(dict(op)) if callable(self.video_bytes) else self.video_bytes
            encoded = base64.b64encode(data).decode()
            response["videos"] = [{"bytesBase64Encoded": encoded, "mimeType": "video/mp4"}]
        done["response"] = response
        return done
