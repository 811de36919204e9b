"""The Gemini planner, driving the real google-genai client against a local server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from controller.providers.base import PlannedScene, Planner, PlanRequest, ProviderError
from controller.providers.gemini_planner import GeminiPlanner
from tests.support.gemini_server import GeminiServer

REQUEST = PlanRequest(
    prompt="A lighthouse keeper finds a message in a bottle and sails into the storm.",
    mode="AdCreative",
    count=3,
    duration_seconds=8,
    aspect_ratio="16:9",
    style="35mm film, muted teal",
    character_description="an old woman in a yellow raincoat",
    product_description="a brass pocket compass",
)
ATTEMPTS = 3


@pytest.fixture
def server() -> Iterator[GeminiServer]:
    with GeminiServer() as srv:
        yield srv


def plan(server: GeminiServer, request: PlanRequest = REQUEST, **kw: Any) -> list[PlannedScene]:
    """One plan in a fresh event loop, closing the SDK's sessions afterwards."""
    options: dict[str, Any] = {
        "api_key": server.api_key,
        "base_url": server.base_url,
        "attempts": ATTEMPTS,
        "initial_delay": 0.05,
        "max_delay": 0.2,
        **kw,
    }

    async def main() -> list[PlannedScene]:
        planner = GeminiPlanner(**options)
        try:
            return await planner.plan(request)
        finally:
            await planner.aclose()

    return asyncio.run(main())


def plan_error(server: GeminiServer, request: PlanRequest = REQUEST, **kw: Any) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        plan(server, request, **kw)
    return info.value


def test_is_a_planner() -> None:
    planner: Planner = GeminiPlanner(api_key="k")
    assert (planner.name, planner.default_model) == ("gemini", "gemini-2.5-pro")


def test_happy_path_sends_schema_and_instructions(server: GeminiServer) -> None:
    scenes = plan(server)

    assert len(scenes) == 3
    assert all(s.prompt and s.negative_prompt for s in scenes)
    assert server.request_count == 1
    sent = server.requests[0]
    assert sent["path"] == "/v1beta/models/gemini-2.5-pro:generateContent"
    assert sent["authorized"]
    config = sent["body"]["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    schema = config.get("responseSchema") or config.get("responseJsonSchema")
    assert schema and "scenes" in schema["properties"]
    assert sent["body"]["contents"][0]["parts"][0]["text"] == REQUEST.prompt
    instruction = server.last_system_instruction or ""
    for needle in ("exactly 3 scenes", "8-second", "16:9", "advertising", "35mm film"):
        assert needle in instruction
    assert "yellow raincoat" in instruction and "brass pocket compass" in instruction


def test_model_and_count_follow_the_request(server: GeminiServer) -> None:
    request = PlanRequest(
        prompt="Neon city at night",
        mode="MusicVideo",
        count=1,
        duration_seconds=4,
        aspect_ratio="9:16",
        model="gemini-2.5-flash",
    )
    assert len(plan(server, request)) == 1
    assert server.requests[0]["model"] == "gemini-2.5-flash"
    instruction = server.last_system_instruction or ""
    assert "exactly 1 scene" in instruction and "music video" in instruction


def test_rate_limit_is_retried_by_the_sdk(server: GeminiServer) -> None:
    server.script = [429, "ok"]
    assert len(plan(server)) == 3
    assert server.request_count == 2


def test_dropped_connection_is_retried_by_the_sdk(server: GeminiServer) -> None:
    server.script = ["drop", "ok"]
    assert len(plan(server)) == 3
    assert server.request_count == 2


def test_persistent_server_error_is_retryable_after_all_attempts(server: GeminiServer) -> None:
    server.default_behaviour = 500
    error = plan_error(server)
    assert error.retryable
    assert (error.reason, error.status_code) == ("ProviderUnavailable", 500)
    assert "internal error" in error.message
    assert server.request_count == ATTEMPTS


def test_bad_request_is_permanent_with_the_providers_message(server: GeminiServer) -> None:
    server.script = [(400, "Unsupported response schema: maxLength too large")]
    error = plan_error(server)
    assert not error.retryable
    assert (error.reason, error.status_code) == ("InvalidRequest", 400)
    assert error.message == "Unsupported response schema: maxLength too large"
    assert server.request_count == 1  # 400 is not retried


@pytest.mark.parametrize("behaviour", ["invalid_json", "schema_mismatch", "empty"])
def test_unusable_plan_is_permanent(server: GeminiServer, behaviour: str) -> None:
    server.script = [behaviour]
    error = plan_error(server)
    assert (error.reason, error.retryable) == ("InvalidPlan", False)
    assert server.request_count == 1


def test_blocked_prompt_is_permanent(server: GeminiServer) -> None:
    server.script = ["blocked"]
    error = plan_error(server)
    assert (error.reason, error.retryable) == ("PromptBlocked", False)
    assert "SAFETY" in error.message


def test_output_stopped_for_safety_is_permanent(server: GeminiServer) -> None:
    server.script = ["safety_stop"]
    error = plan_error(server)
    assert (error.reason, error.retryable) == ("SafetyBlocked", False)
    assert "SAFETY" in error.message


def test_too_many_scenes_are_clamped(server: GeminiServer) -> None:
    server.script = ["too_many"]
    scenes = plan(server)
    assert len(scenes) == REQUEST.count
    assert scenes[0].prompt.startswith("Shot 1 of 5")  # the first ones, in order


def test_over_long_texts_are_truncated_not_rejected(server: GeminiServer) -> None:
    server.script = ["too_long"]
    scenes = plan(server)
    assert len(scenes) == 3
    assert all(len(s.prompt) == 5000 and len(s.negative_prompt) == 1000 for s in scenes)


def test_fewer_scenes_are_returned_as_they_came(server: GeminiServer) -> None:
    server.scene_count = 2
    assert len(plan(server)) == 2


def test_timeout_is_a_retryable_connection_error(server: GeminiServer) -> None:
    server.script = ["hang"]
    error = plan_error(server, timeout_seconds=0.3)
    assert (error.reason, error.retryable) == ("ConnectionError", True)


def test_refused_connection_is_retryable() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    planner = GeminiPlanner(api_key="k", base_url=f"http://127.0.0.1:{port}", attempts=1)
    with pytest.raises(ProviderError) as info:
        asyncio.run(planner.plan(REQUEST))
    assert (info.value.reason, info.value.retryable) == ("ConnectionError", True)


def test_api_key_never_appears_in_errors(server: GeminiServer) -> None:
    key = server.api_key
    server.script = [(400, f"API key {key} is not allowed to use this model")]
    error = plan_error(server)
    assert key not in str(error) and key not in error.message and key not in repr(error)

    server.default_behaviour = 503  # also the retried path
    error = plan_error(server)
    assert key not in str(error)


def test_wrong_key_is_unauthorized(server: GeminiServer) -> None:
    error = plan_error(server, api_key="AIza-not-the-key")
    assert (error.reason, error.retryable, error.status_code) == ("Unauthorized", False, 401)
    assert "AIza-not-the-key" not in str(error)


def test_missing_key_fails_in_plan_not_in_constructor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    planner = GeminiPlanner()
    with pytest.raises(ProviderError) as info:
        asyncio.run(planner.plan(REQUEST))
    assert (info.value.reason, info.value.retryable) == ("Unauthorized", False)


def test_key_and_base_url_come_from_the_environment(
    server: GeminiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    assert len(plan(server, api_key=None, base_url=None)) == 3
    assert server.requests[0]["authorized"]
