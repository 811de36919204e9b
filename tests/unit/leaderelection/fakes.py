"""An edge that records which of its calls got through the leadership guard."""

from __future__ import annotations

from typing import Any


class FakeProvider:
    name = "fake"

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def start(self, request: Any) -> str:
        self.calls.append("start")
        return "job-1"

    async def poll(self, job_id: str, request: Any) -> str:
        self.calls.append("poll")
        return "running"

    def put_clip(self, bucket: str, key: str, path: Any, *, metadata: dict) -> str:
        self.calls.append("put_clip")
        return "fact"

    def head(self, bucket: str, key: str) -> str:
        self.calls.append("head")
        return "fact"
