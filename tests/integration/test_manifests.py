"""The kustomize base in manifests/: it renders, the API server accepts it, its RBAC is
least privilege, and the operator does its whole job as its ServiceAccount with it.

RBAC is checked twice: by impersonation (`kubectl auth can-i --as=...`, the exact rule set
and a matrix of allowed and denied requests), and for real, by running the operator
cluster-wide with a bound token of the ServiceAccount (TokenRequest API) and no other
credentials.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.api import vocabulary as v
from controller.demo.cluster import Kubectl
from tests.integration.helpers import Cluster, is_true, wait_until
from tests.support.kubeconfigs import service_account_kubeconfig
from tests.support.kustomize import kustomize_build
from tests.support.operator_process import OperatorProcess
from tests.support.repo import REPO_ROOT

MANIFESTS = REPO_ROOT / "manifests"
EXAMPLES = MANIFESTS / "examples"
SA_NAMESPACE = SA_NAME = "scene-operator"
SA_USER = f"system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}"
# What the API server puts in a real token of that account (impersonation adds
# system:authenticated itself).
SA_GROUPS = ("system:serviceaccounts", f"system:serviceaccounts:{SA_NAMESPACE}")
IMAGE = "ghcr.io/scene-operator/scene-operator:0.1.0"
CRD_NAMES = {f"{v.PROJECT_PLURAL}.{v.GROUP}", f"{v.SCENE_PLURAL}.{v.GROUP}"}
PROJECTS, SCENES = f"{v.PROJECT_PLURAL}.{v.GROUP}", f"{v.SCENE_PLURAL}.{v.GROUP}"
CRDS = "customresourcedefinitions.apiextensions.k8s.io"

# The whole grant: (resource as `kubectl auth can-i --list` prints it) -> verbs.
EXPECTED_RULES: dict[str, set[str]] = {
    PROJECTS: {"list", "watch", "patch"},
    f"{PROJECTS}/status": {"patch"},
    f"{PROJECTS}/finalizers": {"update"},
    SCENES: {"get", "list", "watch", "create"},
    f"{SCENES}/status": {"patch"},
    "events": {"create"},
    CRDS: {"list", "watch", "get"},  # get: the Projects CRD only (resourceNames)
    "namespaces": {"list", "watch"},
}
PROJECTS_CRD = f"{CRDS}/{PROJECTS}"  # as `kubectl auth can-i VERB TYPE/NAME` names one
# The user-facing roles (user-roles.yaml; tests/integration/test_user_roles.py).
USER_ROLES = ("scene-operator-edit", "scene-operator-view")
# Granted to every authenticated user by the default roles (system:basic-user).
DEFAULT_RULES = {
    "selfsubjectaccessreviews.authorization.k8s.io",
    "selfsubjectrulesreviews.authorization.k8s.io",
    "selfsubjectreviews.authentication.k8s.io",
}

# RBAC denials and kopf's fallbacks when it lacks a permission. (A 403 for creating
# content in a namespace that is being terminated is not RBAC and is not matched.)
PERMISSION_PROBLEMS = re.compile(
    r'User \\?"system:serviceaccount:[^"\\]+\\?" cannot|Not enough permissions|APIForbiddenError'
)


def render() -> list[dict[str, Any]]:
    return kustomize_build(MANIFESTS)


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# --- rendering (kubectl only, no cluster) ---------------------------------------------------


def test_kustomize_renders_the_base() -> None:
    docs = render()
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert kinds == sorted(
        [
            ("Namespace", SA_NAMESPACE),
            ("ServiceAccount", SA_NAME),
            ("ClusterRole", "scene-operator"),
            *(("ClusterRole", name) for name in USER_ROLES),
            ("ClusterRoleBinding", "scene-operator"),
            ("Role", "scene-operator-leader-election"),
            ("RoleBinding", "scene-operator-leader-election"),
            ("Deployment", "scene-operator"),
            ("PodDisruptionBudget", "scene-operator"),
            ("Service", "scene-operator-metrics"),
        ]
    )
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    for d in docs:
        if d["kind"] in cluster_scoped:
            assert "namespace" not in d["metadata"], d["metadata"]
        else:
            assert d["metadata"]["namespace"] == SA_NAMESPACE, d["metadata"]
    (binding,) = by_kind(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "scene-operator",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": SA_NAME, "namespace": SA_NAMESPACE}
    ]


def test_the_crds_are_their_own_kustomization_kept_by_every_prune() -> None:
    """`kubectl delete -k manifests/` (the operator) deletes no CRD: deleting one deletes
    every Project. The CRDs are crds/ (the generated files, unchanged), and carry the
    annotations that keep Flux and Argo CD from pruning or deleting them."""
    assert not by_kind(render(), "CustomResourceDefinition")
    assert (
        "../crds" not in yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"]
    )
    crds = kustomize_build(REPO_ROOT / "crds")
    assert {d["kind"] for d in crds} == {"CustomResourceDefinition"}
    generated = {
        doc["metadata"]["name"]: doc
        for path in sorted((REPO_ROOT / "crds").glob("*.yaml"))
        for doc in load_yaml_docs(path)
    }
    assert set(generated) == CRD_NAMES
    for crd in crds:
        assert crd == generated[crd["metadata"]["name"]]
        assert crd["metadata"]["annotations"] == {
            "kustomize.toolkit.fluxcd.io/prune": "disabled",
            "argocd.argoproj.io/sync-options": "Delete=false",
        }


def test_the_flux_example_installs_the_crds_before_the_operator() -> None:
    crds, operator = load_yaml_docs(MANIFESTS / "flux" / "operator-kustomizations.yaml")
    assert crds["spec"]["path"] == "./crds" and operator["spec"]["path"] == "./manifests"
    assert operator["spec"]["dependsOn"] == [{"name": crds["metadata"]["name"]}]


def test_deployment_is_hardened_and_configured_for_production() -> None:
    docs = render()
    (deploy,) = by_kind(docs, "Deployment")
    spec = deploy["spec"]
    # Two replicas, one leader: a rolling update starts the new pod as a standby.
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = spec["template"]["spec"]
    (preferred,) = pod["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert preferred["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert (
        preferred["podAffinityTerm"]["labelSelector"]["matchLabels"]
        == spec["selector"]["matchLabels"]
    )
    (pdb,) = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == spec["selector"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    # Scrape annotations on the Service only: on both, annotation-based discovery
    # collects every series twice.
    assert not any(
        k.startswith("prometheus.io/") for k in spec["template"]["metadata"].get("annotations", {})
    )
    (metrics_service,) = [d for d in by_kind(docs, "Service") if "metrics" in d["metadata"]["name"]]
    assert metrics_service["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert int(env["SCENE_OPERATOR_DEFAULT_MAX_GENERATIONS"]) > 0  # no unbounded spending
    assert pod["serviceAccountName"] == SA_NAME
    assert pod["automountServiceAccountToken"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["image"] == IMAGE
    assert container["args"] == ["--all-namespaces"]
    assert "command" not in container  # the image's ENTRYPOINT runs the operator
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    from_pod = {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
        for e in container["env"]
        if "valueFrom" in e
    }
    # Leader election on; the identity is the pod name, the Lease in the pod's namespace.
    assert env["SCENE_OPERATOR_LEADER_ELECT"] == "true"
    assert from_pod == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    assert env["SCENE_OPERATOR_DEFAULT_PLANNER"] == "gemini"
    assert env["SCENE_OPERATOR_DEFAULT_VIDEO_PROVIDER"] == "replicate"
    assert env["SCENE_OPERATOR_LOG_FORMAT"] == "json"
    assert env["HOME"] == env["TMPDIR"] == "/tmp"
    # Every SCENE_OPERATOR_ variable is a setting the operator knows, with a valid value.
    from controller.settings import Settings

    known = {f"SCENE_OPERATOR_{name.upper()}" for name in Settings.model_fields}
    ours = {k: val for k, val in env.items() if k.startswith("SCENE_OPERATOR_")}
    assert set(ours) <= known
    settings = Settings(
        **{k.removeprefix("SCENE_OPERATOR_").lower(): val for k, val in ours.items()}
    )
    assert (settings.liveness_port, settings.metrics_port) == (8080, 9090)
    assert settings.leader_elect is True
    # Secrets only by reference, never as literal values.
    for name in env:
        assert not re.search(r"TOKEN|KEY|SECRET|PASSWORD|AWS_", name), name
    assert container["envFrom"] == [
        {"secretRef": {"name": "scene-operator-credentials", "optional": True}}
    ]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"healthz": 8080, "metrics": 9090}
    probe = container["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz" and ports[probe["port"]] == 8080
    # A standby is ready (its watches run); readiness never depends on being the leader.
    ready = container["readinessProbe"]["httpGet"]
    assert ready["path"] == "/healthz" and ports[ready["port"]] == 8080
    res = container["resources"]
    assert res["requests"] == {"cpu": "100m", "memory": "256Mi"}
    assert res["limits"] == {"cpu": "1", "memory": "768Mi"}
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == "/tmp"
    (volume,) = pod["volumes"]
    assert volume["name"] == mount["name"] and "emptyDir" in volume
    (service,) = by_kind(docs, "Service")
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(9090, "metrics")]


def test_rbac_file_grants_no_wildcards_and_no_secrets() -> None:
    docs = load_yaml_docs(MANIFESTS / "rbac.yaml")
    assert {d["kind"] for d in docs} == {"ClusterRole", "ClusterRoleBinding"}
    (role,) = by_kind(docs, "ClusterRole")
    assert "aggregationRule" not in role
    granted: dict[str, set[str]] = {}
    for rule in role["rules"]:
        if "resourceNames" in rule:  # one: get on the Projects CRD (is it being deleted?)
            assert rule == {
                "apiGroups": ["apiextensions.k8s.io"],
                "resources": ["customresourcedefinitions"],
                "resourceNames": [PROJECTS],
                "verbs": ["get"],
            }
        assert set(rule) <= {"apiGroups", "resources", "verbs", "resourceNames"}, rule  # no URLs
        for field in ("apiGroups", "resources", "verbs"):
            assert all("*" not in item for item in rule[field]), rule
        assert not {"secrets", "configmaps", "pods", "serviceaccounts"} & set(rule["resources"])
        assert not {"delete", "deletecollection", "escalate", "bind", "impersonate"} & set(
            rule["verbs"]
        )
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                key = resource if group == "" else f"{resource}.{group}"
                if "/" in resource:
                    name, sub = resource.split("/")
                    key = f"{name}.{group}/{sub}"
                granted.setdefault(key, set()).update(rule["verbs"])
    assert granted == EXPECTED_RULES


def test_leader_election_rbac_is_one_lease_name_in_the_operators_namespace() -> None:
    docs = load_yaml_docs(MANIFESTS / "leader-election-rbac.yaml")
    assert {d["kind"] for d in docs} == {"Role", "RoleBinding"}
    (role,) = by_kind(docs, "Role")
    assert role["metadata"]["namespace"] == SA_NAMESPACE
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["scene-operator"],
            "verbs": ["get", "update"],
        },
        # Neither can be restricted to a name by Kubernetes RBAC (see the file's comment).
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["create", "list"],
        },
    ]
    (binding,) = by_kind(docs, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": SA_NAME, "namespace": SA_NAMESPACE}
    ]


def test_secret_example_is_a_placeholder_outside_the_base() -> None:
    (secret,) = load_yaml_docs(EXAMPLES / "secret.example.yaml")
    assert secret["kind"] == "Secret"
    assert secret["metadata"] == {
        "name": "scene-operator-credentials",
        "namespace": SA_NAMESPACE,
        "labels": {"app.kubernetes.io/name": "scene-operator"},
    }
    values = secret["stringData"]
    assert {"REPLICATE_API_TOKEN", "GEMINI_API_KEY", "AWS_ACCESS_KEY_ID"} <= set(values)
    assert all(re.fullmatch(r"<[^<>]+>", val) for val in values.values()), values
    base = (MANIFESTS / "kustomization.yaml").read_text()
    assert "examples" not in yaml.safe_load(base)["resources"]
    assert not by_kind(render(), "Secret")


def test_argocd_snippet_embeds_the_health_check_for_both_kinds() -> None:
    script = (MANIFESTS / "argocd" / "health.lua").read_text()
    (cm,) = load_yaml_docs(MANIFESTS / "argocd" / "argocd-cm.yaml")
    assert (cm["kind"], cm["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    assert cm["data"] == {
        f"resource.customizations.health.{v.GROUP}_{v.PROJECT_KIND}": script,
        f"resource.customizations.health.{v.GROUP}_{v.SCENE_KIND}": script,
    }
    for needle in ('"Healthy"', '"Degraded"', '"Progressing"', "observedGeneration", '"Failed"'):
        assert needle in script


# --- against the API server -------------------------------------------------------------------


# The base's documents that give the operator its identity and permissions.
IDENTITY_KINDS = {
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
}


@pytest.fixture(scope="module")
def operator_identity(kubectl: Kubectl, crds_installed: list[str]) -> Iterator[str]:
    """The base's Namespace, ServiceAccount, ClusterRole and ClusterRoleBinding, applied for
    real (removed afterwards if this created them); yields the ServiceAccount's user name."""
    docs = [d for d in render() if d["kind"] in IDENTITY_KINDS]
    refs = [
        (f"{d['kind'].lower()}/{d['metadata']['name']}", d["metadata"].get("namespace"))
        for d in docs
    ]

    def exists(ref: str, ns: str | None) -> bool:
        args = ["get", ref, "--ignore-not-found", "-o", "name"]
        return bool(kubectl(*args, *([f"--namespace={ns}"] if ns else [])).stdout.strip())

    created = [(ref, ns) for ref, ns in refs if not exists(ref, ns)]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    try:
        yield SA_USER
    finally:
        for ref, ns in reversed(created):
            kubectl(
                "delete", ref, "--wait=false", "--ignore-not-found",
                *([f"--namespace={ns}"] if ns else []), check=False,
            )  # fmt: skip


def test_apply_k_dry_run_server_is_accepted(kubectl: Kubectl, operator_identity: str) -> None:
    # The namespace must exist for a dry run of what goes in it (operator_identity made it).
    docs = render()
    served = kubectl("api-versions").stdout.split()
    if "policy/v1" not in served:
        # The test control plane (1.20) serves PodDisruptionBudget only as policy/v1beta1,
        # whose fields the base uses identically: dry-run it there.
        assert "policy/v1beta1" in served
        (pdb,) = by_kind(docs, "PodDisruptionBudget")
        docs.remove(pdb)
        old = {**pdb, "apiVersion": "policy/v1beta1"}
        out = kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(old)).stdout
        assert "poddisruptionbudget.policy/scene-operator" in out, out
    proc = kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(docs))
    applied = {
        line.split(" ")[0] for line in proc.stdout.splitlines() if "(server dry run)" in line
    }
    assert applied == {
        f"namespace/{SA_NAMESPACE}",
        f"serviceaccount/{SA_NAME}",
        "clusterrole.rbac.authorization.k8s.io/scene-operator",
        *(f"clusterrole.rbac.authorization.k8s.io/{name}" for name in USER_ROLES),
        "clusterrolebinding.rbac.authorization.k8s.io/scene-operator",
        "role.rbac.authorization.k8s.io/scene-operator-leader-election",
        "rolebinding.rbac.authorization.k8s.io/scene-operator-leader-election",
        "deployment.apps/scene-operator",
        "service/scene-operator-metrics",
        *(["poddisruptionbudget.policy/scene-operator"] if "policy/v1" in served else []),
    }, proc.stdout


def test_examples_are_valid_projects(
    kubectl: Kubectl, crds_installed: list[str], namespace: str
) -> None:
    names = []
    for path in [*sorted(EXAMPLES.glob("*project*.yaml")), EXAMPLES / "local-demo.yaml"]:
        (doc,) = load_yaml_docs(path)
        assert doc["kind"] == v.PROJECT_KIND, path
        names.append(doc["metadata"]["name"])
        # Server-side dry run with strict field validation against the CRD's schema.
        kubectl("create", "--dry-run=server", f"--namespace={namespace}", "-f", str(path))
    assert len(names) == 3 == len(set(names))


def can_i(kubectl: Kubectl, verb: str, resource: str, *scope: str, subresource: str = "") -> bool:
    args = ["auth", "can-i", verb, resource, f"--as={SA_USER}"]
    args += [f"--as-group={group}" for group in SA_GROUPS]
    if subresource:
        args.append(f"--subresource={subresource}")
    proc = kubectl(*args, *scope, check=False)
    answer = proc.stdout.strip()
    assert answer in {"yes", "no"}, (args, proc.stdout, proc.stderr)
    return answer == "yes"


def test_service_account_is_granted_exactly_the_expected_rules(
    kubectl: Kubectl, operator_identity: str, namespace: str
) -> None:
    args = ["auth", "can-i", "--list", f"--as={operator_identity}", f"--namespace={namespace}"]
    args += [f"--as-group={group}" for group in SA_GROUPS]
    granted: dict[str, set[str]] = {}
    for line in kubectl(*args).stdout.splitlines()[1:]:
        if line.startswith(" "):  # a non-resource URL (discovery, /healthz, ...)
            continue
        resource = line.split()[0]
        verbs = re.findall(r"\[([^\]]*)\]", line)[-1].split()
        granted.setdefault(resource, set()).update(verbs)
    for resource in DEFAULT_RULES:
        granted.pop(resource, None)
    assert granted == EXPECTED_RULES


ALLOWED: list[tuple[str, str, str]] = [
    # (verb, resource, subresource); each checked in two namespaces
    *((verb, PROJECTS, "") for verb in ("list", "watch", "patch")),
    ("patch", PROJECTS, "status"),
    ("update", PROJECTS, "finalizers"),
    *((verb, SCENES, "") for verb in ("get", "list", "watch", "create")),
    ("patch", SCENES, "status"),
    ("create", "events", ""),
]
# What the code never calls (issue 12 #17): granted before, refused now.
UNUSED: list[tuple[str, str, str]] = [
    ("get", PROJECTS, ""),
    *((verb, PROJECTS, "status") for verb in ("get", "update")),
    ("patch", SCENES, ""),
    *((verb, SCENES, "status") for verb in ("get", "update")),
    ("patch", "events", ""),
    ("create", "events.events.k8s.io", ""),
    ("patch", "events.events.k8s.io", ""),
]
DENIED: list[tuple[str, str, str]] = [
    *UNUSED,
    *((verb, "secrets", "") for verb in ("get", "list", "watch", "create")),
    ("create", "configmaps", ""),
    ("get", "configmaps", ""),
    ("create", "deployments.apps", ""),
    ("create", "pods", ""),
    ("create", "pods", "exec"),
    ("create", "serviceaccounts", "token"),
    *((verb, PROJECTS, "") for verb in ("create", "update", "delete", "deletecollection")),
    ("patch", PROJECTS, "finalizers"),
    ("patch", PROJECTS, "scale"),
    ("update", PROJECTS, "scale"),
    *((verb, SCENES, "") for verb in ("update", "delete", "deletecollection")),
    ("patch", SCENES, "scale"),
    ("get", "events", ""),
    ("list", "events", ""),
    ("delete", "events", ""),
    ("*", "*", ""),
    ("*", PROJECTS, ""),
    ("*", SCENES, ""),
]
CLUSTER_ALLOWED = [
    ("list", PROJECTS),
    ("watch", PROJECTS),
    ("list", SCENES),
    ("watch", SCENES),
    ("list", CRDS),
    ("watch", CRDS),
    ("get", PROJECTS_CRD),  # is it being deleted? (an uninstall keeps the clips)
    ("list", "namespaces"),
    ("watch", "namespaces"),
]
CLUSTER_DENIED = [
    ("*", "*"),
    ("get", CRDS),
    ("get", f"{CRDS}/{SCENES}"),
    ("get", f"{CRDS}/certificates.cert-manager.io"),
    ("list", "secrets"),
    ("get", "secrets"),
    ("watch", "secrets"),
    ("create", CRDS),
    ("update", CRDS),
    ("patch", CRDS),
    ("delete", CRDS),
    ("get", "namespaces"),
    ("create", "namespaces"),
    ("delete", "namespaces"),
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("escalate", "clusterroles.rbac.authorization.k8s.io"),
    ("bind", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("impersonate", "users"),
    ("impersonate", "serviceaccounts"),
    ("list", "clusterkopfpeerings.kopf.dev"),
    ("create", "nodes"),
]


# Leases: (allowed in the operator's namespace, verb, resource); never in another namespace.
LEASE = "leases.coordination.k8s.io"
LEASE_CHECKS: list[tuple[bool, str, str]] = [
    (True, "get", f"{LEASE}/scene-operator"),
    (True, "update", f"{LEASE}/scene-operator"),
    (True, "create", LEASE),  # RBAC cannot restrict create to a name
    (True, "list", LEASE),  # the shard-overlap check
    (False, "patch", f"{LEASE}/scene-operator"),
    (False, "delete", f"{LEASE}/scene-operator"),
    (False, "watch", LEASE),
    (False, "get", f"{LEASE}/kube-controller-manager"),
    (False, "update", f"{LEASE}/kube-controller-manager"),
    (False, "update", f"{LEASE}/another-shard"),
    (False, "update", LEASE),  # any Lease
    (False, "deletecollection", LEASE),
]


def test_service_account_can_update_its_lease_and_no_other(
    kubectl: Kubectl, operator_identity: str, namespace: str
) -> None:
    checks = [(want, verb, res, SA_NAMESPACE) for want, verb, res in LEASE_CHECKS]
    checks += [(False, verb, res, namespace) for _, verb, res in LEASE_CHECKS]
    checks += [(False, "update", f"{LEASE}/scene-operator", "kube-system")]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(lambda c: can_i(kubectl, c[1], c[2], f"--namespace={c[3]}"), checks)
        )
    wrong = [
        f"{'allowed' if got else 'denied'}: {verb} {res} in {ns}"
        for (want, verb, res, ns), got in zip(checks, answers, strict=True)
        if got != want
    ]
    assert not wrong, "\n".join(wrong)


def test_service_account_permission_matrix(
    kubectl: Kubectl, operator_identity: str, namespace: str
) -> None:
    checks: list[tuple[bool, str, str, tuple[str, ...], str]] = []
    for ns in (namespace, SA_NAMESPACE):
        scope = (f"--namespace={ns}",)
        checks += [(True, verb, res, scope, sub) for verb, res, sub in ALLOWED]
        checks += [(False, verb, res, scope, sub) for verb, res, sub in DENIED]
    checks += [(True, verb, res, ("--all-namespaces",), "") for verb, res in CLUSTER_ALLOWED]
    checks += [(False, verb, res, ("--all-namespaces",), "") for verb, res in CLUSTER_DENIED]
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(
            pool.map(lambda c: can_i(kubectl, c[1], c[2], *c[3], subresource=c[4]), checks)
        )
    wrong = [
        f"{'allowed' if got else 'denied'}: {verb} {res}{'/' + sub if sub else ''} {' '.join(scope)}"
        for (want, verb, res, scope, sub), got in zip(checks, answers, strict=True)
        if got != want
    ]
    assert not wrong, "\n".join(wrong)


@pytest.fixture(scope="module")
def sa_kubeconfig(
    kubectl: Kubectl, operator_identity: str, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A kubeconfig holding only a bound token of the operator's ServiceAccount."""
    path = tmp_path_factory.mktemp("operator-sa") / "kubeconfig"
    return service_account_kubeconfig(kubectl, SA_NAMESPACE, SA_NAME, path)


def test_service_account_token_authenticates_as_the_operator(
    sa_kubeconfig: str, tmp_path: Path
) -> None:
    as_sa = Kubectl(sa_kubeconfig, cache_dir=tmp_path / "cache")
    assert as_sa("auth", "can-i", "list", PROJECTS, "--all-namespaces").stdout.strip() == "yes"
    assert as_sa("get", PROJECTS, "--all-namespaces", "-o", "name").returncode == 0
    denied = as_sa("get", "secrets", "--all-namespaces", check=False)
    assert denied.returncode != 0
    assert f'User "{SA_USER}" cannot list resource "secrets"' in denied.stderr


def permission_problems(op: OperatorProcess) -> list[str]:
    return [line for line in op.logs().splitlines() if PERMISSION_PROBLEMS.search(line)]


def wait_condition(
    cluster: Cluster, op: OperatorProcess, ns: str, name: str, cond: str = "Ready"
) -> dict[str, Any]:
    """wait_project, but fail at once when the operator logs a permission problem."""

    def check() -> dict[str, Any] | None:
        problems = permission_problems(op)
        assert not problems, "permission problems:\n" + "\n".join(problems[:10])
        project = cluster.project(ns, name)
        return project if is_true(project, cond) else None

    return wait_until(check, timeout=120, what=f"project {ns}/{name} {cond}=True")


SaOperatorFactory = Callable[..., OperatorProcess]


@pytest.fixture
def operator_as_service_account(
    sa_kubeconfig: str, s3, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[SaOperatorFactory]:
    """Starts `python -m controller run` authenticated only by the ServiceAccount's token,
    cluster-wide as the Deployment runs it (or with --namespace for each given namespace),
    with the local S3 server and fast timings. Its log is printed when a test fails."""
    started: list[OperatorProcess] = []

    def factory(namespaces: list[str] | None = None) -> OperatorProcess:
        env = {
            **s3.env(),
            "SCENE_OPERATOR_BUCKET": s3.bucket,
            "SCENE_OPERATOR_S3_PREFIX": f"t/{request.node.name[:40]}",
            "SCENE_OPERATOR_POLL_INITIAL_SECONDS": "0.3",
            "SCENE_OPERATOR_POLL_MAX_SECONDS": "1",
            "SCENE_OPERATOR_WORKERS": "8",
            # As the Deployment runs it: elected on the Lease scene-operator/scene-operator,
            # so its RBAC (get, create, update, list) is exercised for real.
            "SCENE_OPERATOR_LEADER_ELECT": "true",
            "SCENE_OPERATOR_LEADER_ELECT_NAMESPACE": SA_NAMESPACE,
        }
        op = OperatorProcess(
            sa_kubeconfig,
            env=env,
            namespaces=namespaces or [],
            log_path=tmp_path / f"operator-{len(started)}.log",
        )
        started.append(op.start())
        op.wait_healthy()
        return op

    yield factory
    for op in started:
        op.stop()
        print(f"--- operator log {op.log_path} (last 6000 chars) ---\n{op.logs()[-6000:]}")


def test_operator_does_its_job_as_its_service_account(
    cluster: Cluster, namespace: str, operator_as_service_account: SaOperatorFactory, s3
) -> None:
    op = operator_as_service_account()
    cluster.create_project(
        namespace,
        "least-privilege",
        {
            "prompt": "A paper boat sails down a rainy street",
            "scenes": {"count": 2, "durationSeconds": 1},
            "planner": {"provider": "local"},
            "video": {"provider": "local"},
            "generateVideos": True,
        },
    )
    project = wait_condition(cluster, op, namespace, "least-privilege")
    status = project["status"]
    assert status["phase"] == "Completed"
    assert (status["sceneCount"], status["completedScenes"]) == (2, 2)
    assert status["observedGeneration"] == project["metadata"]["generation"]
    scenes = cluster.scenes(namespace, "least-privilege")
    assert len(scenes) == 2  # created by the operator (scenes: create)
    for scene in scenes:
        assert is_true(scene, "Ready")  # scenes/status: patch
        head = s3.client.head_object(Bucket=s3.bucket, Key=scene["status"]["clip"]["key"])
        assert head["ContentLength"] == scene["status"]["clip"]["size"]
    # core/v1 Events: create
    assert "ScenesPlanned" in cluster.event_reasons(namespace, "least-privilege")
    assert not permission_problems(op)


def test_operator_manages_its_finalizer_as_its_service_account(
    cluster: Cluster, namespace: str, operator_as_service_account: SaOperatorFactory, s3
) -> None:
    """deletionPolicy Delete: the operator patches Project metadata (its finalizer), then
    deletes the clips and releases the Project when it is deleted."""
    op = operator_as_service_account()
    cluster.create_project(
        namespace,
        "cleanup",
        {
            "prompt": "A kite over a windy beach",
            "scenes": {"count": 1, "durationSeconds": 1},
            "planner": {"provider": "local"},
            "video": {"provider": "local"},
            "generateVideos": True,
            "deletionPolicy": "Delete",
        },
    )
    project = wait_condition(cluster, op, namespace, "cleanup")
    assert v.FINALIZER_CLIPS in project["metadata"].get("finalizers", [])
    (scene,) = cluster.scenes(namespace, "cleanup")
    key = scene["status"]["clip"]["key"]
    s3.client.head_object(Bucket=s3.bucket, Key=key)
    cluster.custom.delete_namespaced_custom_object(
        v.GROUP, v.VERSION, namespace, v.PROJECT_PLURAL, "cleanup"
    )

    def gone() -> bool:
        assert not permission_problems(op)
        items = cluster.custom.list_namespaced_custom_object(
            v.GROUP, v.VERSION, namespace, v.PROJECT_PLURAL
        )["items"]
        return not any(p["metadata"]["name"] == "cleanup" for p in items)

    wait_until(gone, timeout=60, what="project cleanup released by the operator")
    listed = s3.client.list_objects_v2(Bucket=s3.bucket, Prefix=key)
    assert listed.get("KeyCount", 0) == 0, json.dumps(listed, default=str)[:500]
    assert not permission_problems(op)


def test_operator_watches_one_namespace_as_its_service_account(
    cluster: Cluster, namespace: str, operator_as_service_account: SaOperatorFactory
) -> None:
    """With --namespace, kopf also lists and watches Namespaces (granted, so no fallback)."""
    op = operator_as_service_account([namespace])
    cluster.create_project(
        namespace,
        "plan-only",
        {"prompt": "A fox crosses a frozen lake", "planner": {"provider": "local"}},
    )
    wait_condition(cluster, op, namespace, "plan-only", cond="ScenesPlanned")
    assert len(cluster.scenes(namespace, "plan-only")) == 1
    assert not permission_problems(op)
