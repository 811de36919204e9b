"""The harness's side of the cluster: its own API client (counted, so its calls can be
subtracted), the Project it creates, readiness from a server-side table, a watch that
notes when each Scene is seen Completed, and the clip the fake provider serves."""

from __future__ import annotations

import collections
import contextlib
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from controller.api import vocabulary as v

SCENE_DURATION = 4
PROMPT = (
    "A lighthouse keeper finds a message in a bottle. A storm gathers over the sea. "
    "The keeper climbs the tower to light the lamp. At dawn a ship comes home."
)
STYLE = "benchmark film {n}"  # in every scene prompt: jobs can be matched to scenes
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


class Api:
    """The harness's own API calls (httpx, one pooled client), counted by verb/resource so
    they can be subtracted from the API server's totals."""

    def __init__(self, server: str, token: str) -> None:
        import httpx

        self.http = httpx.Client(
            base_url=server,
            verify=False,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(60.0),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )
        self.calls: collections.Counter[tuple[str, str]] = collections.Counter()
        self._lock = threading.Lock()

    def _count(self, verb: str, resource: str) -> None:
        with self._lock:
            self.calls[(verb, resource)] += 1

    def create(self, path: str, body: dict[str, Any], resource: str) -> None:
        self._count("POST", resource)
        r = self.http.post(path, json=body)
        if r.status_code >= 300 and r.status_code != 409:
            raise RuntimeError(f"POST {path}: {r.status_code} {r.text[:300]}")

    def list(self, path: str, resource: str, **params: str) -> dict[str, Any]:
        self._count("LIST", resource)
        r = self.http.get(path, params=params)
        r.raise_for_status()
        return r.json()

    def table(self, path: str, resource: str) -> dict[str, Any]:
        """A LIST as a server-side table (printer columns only), from the watch cache."""
        self._count("LIST", resource)
        r = self.http.get(
            path,
            params={"resourceVersion": "0", "includeObject": "None"},
            headers={"Accept": TABLE},
        )
        r.raise_for_status()
        return r.json()

    def metrics(self) -> str:
        r = self.http.get("/metrics")
        r.raise_for_status()
        return r.text

    def close(self) -> None:
        self.http.close()


def project_body(
    namespace: str, name: str, n: int, scenes: int, drift_interval: int, bucket: str
) -> dict[str, Any]:
    return {
        "apiVersion": v.API_VERSION,
        "kind": v.PROJECT_KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "prompt": PROMPT,
            "style": STYLE.format(n=n),
            "scenes": {"count": scenes, "durationSeconds": SCENE_DURATION},
            "planner": {"provider": "local"},
            "video": {"provider": "replicate"},
            "generateVideos": True,
            "storage": {"bucket": bucket},
            "repair": {"intervalSeconds": drift_interval},
            "assembly": {"enabled": False},  # measures the clip pipeline, not PyAV
        },
    }


def readiness(table: dict[str, Any]) -> tuple[int, int, int]:
    """(projects, Ready ones, completed scenes) from a server-side table of Projects."""
    cols = [c.get("name", "") for c in table.get("columnDefinitions") or []]
    i_ready = cols.index("Ready") if "Ready" in cols else None
    i_done = cols.index("Completed") if "Completed" in cols else None
    rows = table.get("rows") or []
    ready = done = 0
    for row in rows:
        cells = row.get("cells") or []
        if i_ready is not None and i_ready < len(cells) and cells[i_ready] == "True":
            ready += 1
        if i_done is not None and i_done < len(cells) and isinstance(cells[i_done], int):
            done += cells[i_done]
    return len(rows), ready, done


def tiny_clip() -> bytes:
    """A real (tiny) H.264 MP4 of the scenes' length (the operator checks it), rendered
    once and served for every job."""
    from controller.providers.render import render_clip

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "clip.mp4"
        render_clip(
            path,
            prompt="benchmark",
            sequence=1,
            duration_seconds=SCENE_DURATION,
            aspect_ratio="16:9",
            fps=4,
            height=32,
        )
        return path.read_bytes()


class CompletedWatch:
    """Watches Scenes in a thread and notes, per clip job id, the time.time() at which
    its Scene was first seen Completed (status timestamps have only whole seconds)."""

    def __init__(self, server: str, token: str) -> None:
        import httpx

        self.http = httpx.Client(
            base_url=server,
            verify=False,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(10.0, read=None),
        )
        self.completed: dict[str, float] = {}
        self.events = 0
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="completed-watch", daemon=True)

    def start(self) -> CompletedWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.http.close()
        self._thread.join(5)

    def seen(self) -> dict[str, float]:
        with self.lock:
            return dict(self.completed)

    def _run(self) -> None:
        path = f"/apis/{v.GROUP}/{v.VERSION}/{v.SCENE_PLURAL}"
        version = ""
        while not self._stop.is_set():
            params = {"watch": "1", "allowWatchBookmarks": "true", "timeoutSeconds": "3600"}
            if version:
                params["resourceVersion"] = version
            # closed at stop, or a dropped watch: start again from the last version
            with contextlib.suppress(Exception), self.http.stream("GET", path, params=params) as r:
                for line in r.iter_lines():
                    if (seen := self._event(line, time.time())) is not None:
                        version = seen
            if not self._stop.is_set():
                time.sleep(0.5)

    def _event(self, line: str, now: float) -> str | None:
        if not line:
            return None
        event = json.loads(line)
        obj = event.get("object") or {}
        if event.get("type") == "ERROR":
            return ""  # e.g. 410 Gone: start again from now
        status = obj.get("status") or {}
        job = (status.get("clip") or {}).get("jobId")
        with self.lock:
            self.events += 1
            if status.get("phase") == "Completed" and job:
                self.completed.setdefault(job, now)
        return (obj.get("metadata") or {}).get("resourceVersion")
