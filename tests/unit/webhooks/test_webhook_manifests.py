"""The opt-in kustomize component manifests/components/webhooks renders on top of the base
(kubectl kustomize, no cluster): the receiver's port and settings on the Deployment, its
own Service, an Ingress for the webhook path only, and a NetworkPolicy for that port only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from controller.settings import Settings
from controller.webhooks.receiver import PATH
from controller.webhooks.routing import LABEL_LEADER
from tests.support.kustomize import kustomize_build as kustomize
from tests.support.repo import REPO_ROOT

MANIFESTS = REPO_ROOT / "manifests"
COMPONENT = MANIFESTS / "components" / "webhooks"
OPERATOR_LABELS = {
    "app.kubernetes.io/name": "scene-operator",
    "app.kubernetes.io/component": "operator",
}


def overlay(tmp_path: Path) -> list[dict[str, Any]]:
    """A user's overlay: the base plus the component (kustomize wants relative paths)."""
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(MANIFESTS, tmp_path)],
                "components": [os.path.relpath(COMPONENT, tmp_path)],
            }
        )
    )
    return kustomize(tmp_path)


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def test_component_adds_the_receiver_and_nothing_else_changes(tmp_path: Path) -> None:
    base = kustomize(MANIFESTS)
    docs = overlay(tmp_path)
    added = {(d["kind"], d["metadata"]["name"]) for d in docs} - {
        (d["kind"], d["metadata"]["name"]) for d in base
    }
    assert added == {
        ("Service", "scene-operator-webhooks"),
        ("Ingress", "scene-operator-webhooks"),
        ("NetworkPolicy", "scene-operator-webhooks"),
        ("Role", "scene-operator-webhook-routing"),
        ("RoleBinding", "scene-operator-webhook-routing"),
    }
    for d in docs:
        if (d["kind"], d["metadata"]["name"]) in added:
            assert d["metadata"]["namespace"] == "scene-operator"
    # Besides the Deployment, the base's objects are untouched.
    for d in base:
        if d["kind"] != "Deployment":
            assert one(docs, d["kind"], d["metadata"]["name"]) == d

    deploy = one(docs, "Deployment", "scene-operator")
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"healthz": 8080, "metrics": 9090, "webhooks": 8000}
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    ours = {k: v for k, v in env.items() if k.startswith("SCENE_OPERATOR_")}
    settings = Settings(**{k.removeprefix("SCENE_OPERATOR_").lower(): v for k, v in ours.items()})
    assert settings.webhook_url and settings.webhook_url.startswith("https://")
    assert settings.webhook_port == ports["webhooks"]
    assert settings.webhook_poll_seconds == 300
    # The rest of the container is the base's.
    (base_container,) = one(base, "Deployment", "scene-operator")["spec"]["template"]["spec"][
        "containers"
    ]
    strip = ("env", "ports")
    assert {k: v for k, v in container.items() if k not in strip} == {
        k: v for k, v in base_container.items() if k not in strip
    }
    assert container["env"][-len(base_container["env"]) :] == base_container["env"]

    service = one(docs, "Service", "scene-operator-webhooks")
    # The leader only: the label the leader sets on its Pod, valued with the Lease name.
    assert service["spec"]["selector"] == {
        **OPERATOR_LABELS,
        LABEL_LEADER: Settings().leader_elect_id,
    }
    assert service["spec"]["type"] == "ClusterIP"
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("webhooks", 8000, "webhooks")
    ]

    ingress = one(docs, "Ingress", "scene-operator-webhooks")
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == (PATH, "Exact")  # nothing else is exposed
    assert path["backend"]["service"] == {
        "name": "scene-operator-webhooks",
        "port": {"name": "webhooks"},
    }
    assert ingress["spec"]["tls"][0]["hosts"] == [rule["host"]]
    assert settings.webhook_url.removeprefix("https://").rstrip("/") == rule["host"]

    policy = one(docs, "NetworkPolicy", "scene-operator-webhooks")
    assert policy["spec"]["podSelector"] == {"matchLabels": OPERATOR_LABELS}
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (allowed,) = policy["spec"]["ingress"]
    assert allowed["ports"] == [{"port": "webhooks", "protocol": "TCP"}]
    assert allowed["from"], "not open to every pod of the cluster"
    # The standby forwards to the leader: the operator's own Pods are admitted too.
    assert {"podSelector": {"matchLabels": OPERATOR_LABELS}} in allowed["from"]
    # It knows the leader's address from the Lease, which the leader fills from POD_IP.
    (pod_ip,) = [e for e in container["env"] if e["name"] == "POD_IP"]
    assert pod_ip["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert settings.webhook_max_connections == 64


def test_the_routing_role_may_only_patch_pods_in_the_operators_namespace(
    tmp_path: Path,
) -> None:
    docs = overlay(tmp_path)
    role = one(docs, "Role", "scene-operator-webhook-routing")
    assert role["metadata"]["namespace"] == "scene-operator"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]}]
    binding = one(docs, "RoleBinding", "scene-operator-webhook-routing")
    assert binding["roleRef"]["name"] == "scene-operator-webhook-routing"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "scene-operator", "namespace": "scene-operator"}
    ]
