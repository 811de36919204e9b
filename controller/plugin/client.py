"""The plugin's API access: kubeconfig context and namespace as kubectl picks them.

kubectl hands a plugin its environment (KUBECONFIG) but none of its own flags, so the
plugin resolves the context (current, or --context) and the namespace (-n, else the
context's namespace, else "default") itself; inside a Pod it uses the ServiceAccount.
"""

from __future__ import annotations

import builtins
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from controller.api import vocabulary as v

POD_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# Events about this API group's objects only: the API server filters, not the plugin.
EVENT_SELECTOR = f"involvedObject.apiVersion={v.API_VERSION}"
KINDS = {
    "project": v.PROJECT_PLURAL,
    "projects": v.PROJECT_PLURAL,
    v.PROJECT_SHORT: v.PROJECT_PLURAL,
    "scene": v.SCENE_PLURAL,
    "scenes": v.SCENE_PLURAL,
    v.SCENE_SHORT: v.SCENE_PLURAL,
}


class PluginError(Exception):
    """A message for the user; the command exits 1."""


def parse_ref(ref: str) -> tuple[str, str]:
    """project/NAME, scene/NAME (or their plural and short names), or NAME for a Project."""
    kind, slash, name = ref.partition("/")
    if not slash:
        return v.PROJECT_PLURAL, kind
    if kind.lower() not in KINDS or not name:
        raise PluginError(f"expected project/NAME, scene/NAME or NAME, got {ref!r}")
    return KINDS[kind.lower()], name


def new_token() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


@dataclass
class Target:
    """An API client and the namespace to use (None with --all-namespaces)."""

    api_client: k8s.ApiClient
    namespace: str | None
    context: str

    @classmethod
    def resolve(
        cls,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        namespace: str | None = None,
        all_namespaces: bool = False,
    ) -> Target:
        try:
            contexts, current = k8s_config.list_kube_config_contexts(config_file=kubeconfig)
        except (ConfigException, FileNotFoundError) as exc:
            if context or kubeconfig:
                raise PluginError(f"kubeconfig: {exc}") from None
            return cls._in_cluster(namespace, all_namespaces)
        chosen = next((c for c in contexts if c["name"] == context), None) if context else current
        if chosen is None:
            raise PluginError(f"context {context!r} not found in the kubeconfig")
        ns = namespace or (chosen.get("context") or {}).get("namespace") or "default"
        client = k8s_config.new_client_from_config(config_file=kubeconfig, context=chosen["name"])
        return cls(client, None if all_namespaces else ns, chosen["name"])

    @classmethod
    def _in_cluster(cls, namespace: str | None, all_namespaces: bool) -> Target:
        try:
            k8s_config.load_incluster_config()
        except ConfigException:
            raise PluginError("no kubeconfig found and not running in a Pod") from None
        ns = namespace or (
            POD_NAMESPACE.read_text().strip() if POD_NAMESPACE.exists() else "default"
        )
        return cls(k8s.ApiClient(), None if all_namespaces else ns, "in-cluster")

    # ------------------------------------------------------------------ reads

    def _custom(self) -> k8s.CustomObjectsApi:
        return k8s.CustomObjectsApi(self.api_client)

    def _need_namespace(self) -> str:
        if self.namespace is None:
            raise PluginError("a single object needs a namespace: use -n, not -A")
        return self.namespace

    def get(self, plural: str, name: str) -> dict[str, Any]:
        ns = self._need_namespace()
        try:
            return self._custom().get_namespaced_custom_object(v.GROUP, v.VERSION, ns, plural, name)
        except ApiException as exc:
            raise _explain(exc, f"{plural[:-1]}/{name} in namespace {ns}") from None

    def list(self, plural: str) -> list[dict[str, Any]]:
        try:
            if self.namespace is None:
                found = self._custom().list_cluster_custom_object(v.GROUP, v.VERSION, plural)
            else:
                found = self._custom().list_namespaced_custom_object(
                    v.GROUP, v.VERSION, self.namespace, plural
                )
        except ApiException as exc:
            raise _explain(exc, plural) from None
        return list(found.get("items") or [])

    def events(self) -> builtins.list[dict[str, Any]]:
        """Events about Projects and Scenes (raw JSON, camelCase as the API serves it)."""
        core = k8s.CoreV1Api(self.api_client)
        try:
            if self.namespace is None:
                resp = core.list_event_for_all_namespaces(
                    field_selector=EVENT_SELECTOR, _preload_content=False
                )
            else:
                resp = core.list_namespaced_event(
                    self.namespace, field_selector=EVENT_SELECTOR, _preload_content=False
                )
        except ApiException as exc:
            raise _explain(exc, "events") from None
        return list(json.loads(resp.data).get("items") or [])

    # ------------------------------------------------------------------ writes

    def annotate(self, plural: str, name: str, key: str, value: str) -> None:
        ns = self._need_namespace()
        patch = {"metadata": {"annotations": {key: value}}}
        try:
            self._custom().patch_namespaced_custom_object(
                v.GROUP, v.VERSION, ns, plural, name, patch
            )
        except ApiException as exc:
            raise _explain(exc, f"{plural[:-1]}/{name} in namespace {ns}") from None


def _explain(exc: ApiException, what: str) -> PluginError:
    if exc.status == 404:
        return PluginError(f"{what}: not found")
    if exc.status == 403:
        return PluginError(f"{what}: forbidden ({exc.reason})")
    return PluginError(f"{what}: {exc.status} {exc.reason}")
