"""A local server that speaks the Gemini Developer API's `generateContent`, so the real
google-genai client can be tested offline (see shared/reference/providers.md).

google-genai 3.x (with `api_version="v1beta"`) sends
    POST /v1beta/models/{model}:generateContent      header x-goog-api-key
and expects HTTP 200 with `candidates[0].content.parts[0].text` holding the JSON plan.

Behaviour is scripted per request: `script` is a queue consumed one entry per authorized
request, then `default_behaviour` applies. An entry is one of
    "ok"               a valid plan (see `scene_count`)
    "too_many"         a valid plan with two scenes more than asked
    "empty"            a valid plan with no scenes
    "too_long"         a valid plan whose texts exceed the schema's maxLength
    "invalid_json"     truncated JSON text (finishReason MAX_TOKENS)
    "schema_mismatch"  valid JSON of the wrong shape
    "blocked"          200 with promptFeedback.blockReason SAFETY and no candidates
    "safety_stop"      a candidate stopped with finishReason SAFETY and no text
    "drop"             close the connection without answering
    "hang"             answer "ok" only after `hang_seconds` (for client timeouts)
    an int, or (int, message)   that HTTP status with Google's error body
All controls are plain attributes guarded by `lock`, so tests may change them at runtime.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from typing import Any, Self

from tests.support.protocol import LocalHTTPServer, Reply

Behaviour = str | int | tuple[int, str]

DEFAULT_SCENE_COUNT = 3

_PATH = re.compile(r"^/(?P<version>v1[a-z0-9]*)/models/(?P<model>[^/:]+):generateContent$")
# "exactly N scene(s)" is how GeminiPlanner states the count; other clients get the default.
_COUNT = re.compile(r"\bexactly (\d+) scenes?\b", re.IGNORECASE)

_GRPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
# The texts the real service answers with (abridged).
_MESSAGES = {
    400: "Request contains an invalid argument.",
    401: "API key not valid. Please pass a valid API key.",
    403: "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API.",
    429: "You exceeded your current quota, please check your plan and billing details.",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}


class GeminiServer(LocalHTTPServer):
    quiet_errors = True  # a client that timed out and left is expected here, not a failure

    def __init__(
        self,
        api_key: str | None = None,
        *,
        scene_count: int | None = None,
        hang_seconds: float = 5.0,
    ) -> None:
        super().__init__()
        self.api_key = api_key or "AIza" + secrets.token_hex(16)
        # None: as many scenes as the request asks for ("exactly N scenes"), else 3.
        self.scene_count = scene_count
        self.hang_seconds = hang_seconds
        self.script: list[Behaviour] = []
        self.default_behaviour: Behaviour = "ok"
        # One dict per request: method, path, model, version, body, authorized, behaviour.
        self.requests: list[dict[str, Any]] = []
        self._stopping = threading.Event()  # releases "hang" handlers on stop()

    # ------------------------------------------------------------------ lifecycle

    def env(self) -> dict[str, str]:
        return {"GEMINI_API_KEY": self.api_key, "GOOGLE_GEMINI_BASE_URL": self.base_url}

    def start(self) -> Self:
        self._stopping.clear()
        return super().start()

    def stop(self) -> None:
        self._stopping.set()
        super().stop()

    # ------------------------------------------------------------------ for assertions

    @property
    def request_count(self) -> int:
        with self.lock:
            return len(self.requests)

    @property
    def last_request(self) -> dict[str, Any] | None:
        with self.lock:
            return self.requests[-1] if self.requests else None

    @property
    def last_system_instruction(self) -> str | None:
        last = self.last_request
        if last is None or not isinstance(last["body"], dict):
            return None
        return _texts(last["body"].get("systemInstruction")) or None

    # ------------------------------------------------------------------ protocol

    def dispatch(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> Reply | None:
        answer = self.respond(method, path, {k.lower(): v for k, v in headers.items()}, body)
        if answer is None:  # no status line at all: the client sees a dropped connection
            return None
        status, payload = answer
        return Reply.json(status, payload, {"Content-Type": "application/json; charset=UTF-8"})

    def respond(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, Any]] | None:
        """(status, JSON body) for one request, or None to drop the connection."""
        match = _PATH.match(path.split("?", 1)[0]) if method == "POST" else None
        try:
            body: Any = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        key = headers.get("x-goog-api-key")
        record: dict[str, Any] = {
            "method": method,
            "path": path,
            "model": match["model"] if match else None,
            "version": match["version"] if match else None,
            "body": body,
            "authorized": key == self.api_key,
            "behaviour": None,
        }
        with self.lock:
            self.requests.append(record)
        if match is None:
            return _error(404, f"no route for {method} {path}")
        if not key:
            return _error(403)
        if key != self.api_key:
            return _error(401)
        if not isinstance(body, dict) or not body.get("contents"):
            return _error(400, "* GenerateContentRequest.contents: contents is not specified")
        with self.lock:
            behaviour = self.script.pop(0) if self.script else self.default_behaviour
            record["behaviour"] = behaviour
        if isinstance(behaviour, tuple):
            return _error(*behaviour)
        if isinstance(behaviour, int):
            return _error(behaviour)
        return self._answer(behaviour, match["model"], body)

    def _answer(self, behaviour: str, model: str, body: dict[str, Any]) -> tuple[int, Any] | None:
        asked = self._asked_count(body)
        if behaviour == "drop":
            return None
        if behaviour == "hang":
            if self._stopping.wait(self.hang_seconds):
                return None
            behaviour = "ok"
        if behaviour == "blocked":
            return 200, {
                "promptFeedback": {"blockReason": "SAFETY"},
                "usageMetadata": {"promptTokenCount": 42, "totalTokenCount": 42},
                "modelVersion": model,
            }
        if behaviour == "safety_stop":
            candidate = {"finishReason": "SAFETY", "index": 0}
            return 200, {"candidates": [candidate], "modelVersion": model}
        if behaviour in ("ok", "too_many", "empty"):
            n = {"ok": asked, "too_many": asked + 2, "empty": 0}[behaviour]
            return _candidate(model, json.dumps({"scenes": _scenes(n, body)}))
        if behaviour == "too_long":  # models do not always honour maxLength
            long = [{"description": "d" * 6000, "negative_description": "n" * 1500}] * asked
            return _candidate(model, json.dumps({"scenes": long}))
        if behaviour == "invalid_json":
            return _candidate(model, '{"scenes": [{"description": "A wide shot of', "MAX_TOKENS")
        if behaviour == "schema_mismatch":
            return _candidate(model, json.dumps({"shots": [{"text": "A wide shot."}]}))
        return _error(500, f"GeminiServer: unknown scripted behaviour {behaviour!r}")

    def _asked_count(self, body: dict[str, Any]) -> int:
        with self.lock:
            if self.scene_count is not None:
                return self.scene_count
        text = _texts(body.get("systemInstruction")) + "\n" + _texts(body.get("contents"))
        match = _COUNT.search(text)
        return int(match[1]) if match else DEFAULT_SCENE_COUNT


def _texts(node: Any) -> str:
    """All `text` parts of a Content (or a list of Contents), joined."""
    if isinstance(node, list):
        return "\n".join(_texts(item) for item in node)
    if isinstance(node, dict):
        return "\n".join(
            str(p.get("text", "")) for p in node.get("parts") or [] if isinstance(p, dict)
        )
    return ""


def _scenes(n: int, body: dict[str, Any]) -> list[dict[str, str]]:
    concept = " ".join(_texts(body.get("contents")).split())[:200] or "the concept"
    return [
        {
            "description": f"Shot {i} of {n}: a cinematic view of {concept}, slow dolly-in, "
            "soft golden light.",
            "negative_description": "blurry, distorted faces, text, watermark",
        }
        for i in range(1, n + 1)
    ]


def _candidate(model: str, text: str, finish: str = "STOP") -> tuple[int, dict[str, Any]]:
    return 200, {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": text}]},
                "finishReason": finish,
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 42,
            "candidatesTokenCount": len(text) // 4,
            "totalTokenCount": 42 + len(text) // 4,
        },
        "modelVersion": model,
    }


def _error(status: int, message: str | None = None) -> tuple[int, dict[str, Any]]:
    error: dict[str, Any] = {
        "code": status,
        "message": message or _MESSAGES.get(status, "error"),
        "status": _GRPC_STATUS.get(status, "UNKNOWN"),
    }
    if status == 429:  # the service says when to come back in details, not a header
        error["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}
        ]
    return status, {"error": error}
