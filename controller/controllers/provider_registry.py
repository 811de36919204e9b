"""Builds providers by name, once, from the environment (each SDK reads its own vars)."""

from __future__ import annotations

from typing import Any

from controller.providers.base import Planner, VideoProvider
from controller.settings import Settings


class Providers:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._video: dict[str, VideoProvider] = {}
        self._planners: dict[str, Planner] = {}

    def video(self, name: str) -> VideoProvider:
        if name not in self._video:
            self._video[name] = self._make_video(name)
        return self._video[name]

    def planner(self, name: str) -> Planner:
        if name not in self._planners:
            self._planners[name] = self._make_planner(name)
        return self._planners[name]

    def _make_video(self, name: str) -> Any:
        if name == "replicate":
            from controller.providers.replicate_video import ReplicateVideoProvider
            from controller.webhooks import endpoint, gated

            return gated(
                ReplicateVideoProvider(
                    max_workers=self.settings.io_threads,
                    fetch_rules=self._fetch_rules(),
                    webhook=endpoint(self.settings),
                ),
                self.settings,
            )
        if name == "veo":
            from controller.providers.veo_video import VeoVideoProvider

            return VeoVideoProvider(fetch_rules=self._fetch_rules())
        if name == "local":
            from controller.providers.local_video import LocalVideoProvider

            return LocalVideoProvider(latency_seconds=self.settings.local_render_latency_seconds)
        raise ValueError(f"unknown video provider {name!r}")

    def _fetch_rules(self) -> Any:
        from controller.providers.fetch import FetchRules

        return FetchRules.from_settings(self.settings)

    def _make_planner(self, name: str) -> Any:
        if name == "gemini":
            from controller.providers.gemini_planner import GeminiPlanner

            return GeminiPlanner()
        if name == "local":
            from controller.providers.local_planner import LocalPlanner

            return LocalPlanner()
        raise ValueError(f"unknown planner {name!r}")
