"""The roles for people (manifests/user-roles.yaml) against the real API server.

`scene-operator-edit` and `scene-operator-view` are aggregated into the built-in `edit`
(and `admin`) and `view` ClusterRoles by kube-controller-manager's ClusterRole
aggregation controller (the test control plane runs it). A person given `edit` in a
namespace (a RoleBinding to the built-in role, nothing of ours) can apply a Project and run
`kubectl video retry`; given `view`, `kubectl video status`. Checked by impersonation
(`kubectl auth can-i --as`) and for real: ServiceAccounts bound the same way run the
plugin with their own tokens.
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.api import vocabulary as v
from controller.demo.cluster import Kubectl, kubectl_path
from tests.integration.helpers import wait_until
from tests.integration.test_kubectl_plugin import plugin_path  # noqa: F401  (fixture)
from tests.integration.test_manifests import EXAMPLES, render
from tests.support.kubeconfigs import service_account_kubeconfig

PROJECTS, SCENES = f"{v.PROJECT_PLURAL}.{v.GROUP}", f"{v.SCENE_PLURAL}.{v.GROUP}"
ROLES = ("scene-operator-edit", "scene-operator-view")
AGGREGATED = {
    "edit": "scene-operator-edit",
    "admin": "scene-operator-edit",
    "view": "scene-operator-view",
}


def has_our_rules(role: dict[str, Any], verbs: set[str]) -> bool:
    return any(
        v.GROUP in r.get("apiGroups", []) and "projects" in r.get("resources", [])
        and verbs <= set(r.get("verbs", []))
        for r in role.get("rules") or []
    )  # fmt: skip


@pytest.fixture(scope="module")
def user_roles(kubectl: Kubectl, crds_installed: list[str], control_plane: Any) -> Iterator[bool]:
    """The two ClusterRoles of the base, applied; yields whether the built-in roles
    aggregated them: False only on a control plane without kube-controller-manager
    (KUBEBUILDER_ASSETS without one), where the tests bind our roles directly instead."""
    docs = [d for d in render() if d["kind"] == "ClusterRole" and d["metadata"]["name"] in ROLES]
    assert len(docs) == 2
    existed = {
        name
        for name in ROLES
        if kubectl("get", f"clusterrole/{name}", "--ignore-not-found", "-o", "name").stdout.strip()
    }
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))

    def aggregated() -> bool:
        out = {}
        for builtin, ours in AGGREGATED.items():
            role = yaml.safe_load(kubectl("get", f"clusterrole/{builtin}", "-o", "yaml").stdout)
            out[builtin] = has_our_rules(
                role, {"get"} if ours.endswith("view") else {"create", "patch"}
            )
        return all(out.values())

    try:
        if not control_plane.garbage_collection:  # no kube-controller-manager runs
            yield False
        else:
            yield bool(
                wait_until(aggregated, timeout=30, what="edit, admin and view aggregate ours")
            )
    finally:
        for name in set(ROLES) - existed:
            kubectl(
                "delete", f"clusterrole/{name}", "--wait=false", "--ignore-not-found", check=False
            )


def person(kubectl: Kubectl, ns: str, name: str, builtin: str) -> str:
    """A ServiceAccount `name` in `ns` with a RoleBinding to the built-in ClusterRole
    `builtin` there (what a namespace admin gives a person); returns its user name."""
    kubectl("create", "serviceaccount", name, f"--namespace={ns}")
    kubectl(
        "create", "rolebinding", f"{name}-{builtin}", f"--clusterrole={builtin}",
        f"--serviceaccount={ns}:{name}", f"--namespace={ns}",
    )  # fmt: skip
    return f"system:serviceaccount:{ns}:{name}"


def can_i(kubectl: Kubectl, user: str, verb: str, resource: str, ns: str, sub: str = "") -> bool:
    args = ["auth", "can-i", verb, resource, f"--as={user}", f"--namespace={ns}"]
    args += [
        "--as-group=system:serviceaccounts",
        f"--as-group=system:serviceaccounts:{user.split(':')[2]}",
    ]
    if sub:
        args.append(f"--subresource={sub}")
    answer = kubectl(*args, check=False).stdout.strip()
    assert answer in {"yes", "no"}, args
    return answer == "yes"


EDITOR_ALLOWED = [
    *(("create", r, "") for r in (PROJECTS, SCENES)),
    *(("patch", r, "") for r in (PROJECTS, SCENES)),  # kubectl video retry|regenerate
    *(("update", r, "") for r in (PROJECTS, SCENES)),  # kubectl apply / replace
    *(("delete", r, "") for r in (PROJECTS, SCENES)),
    *((verb, r, "") for verb in ("get", "list", "watch") for r in (PROJECTS, SCENES)),
    ("list", "events", ""),
]
EDITOR_DENIED = [
    *(("patch", r, "status") for r in (PROJECTS, SCENES)),  # only the operator writes status
    *(("update", r, "status") for r in (PROJECTS, SCENES)),
]
VIEWER_ALLOWED = [
    *((verb, r, "") for verb in ("get", "list", "watch") for r in (PROJECTS, SCENES)),
    ("list", "events", ""),  # kubectl video status shows the Events
]
VIEWER_DENIED = [
    *(
        (verb, r, "")
        for verb in ("create", "patch", "update", "delete")
        for r in (PROJECTS, SCENES)
    ),
    *(("patch", r, "status") for r in (PROJECTS, SCENES)),
]


def test_edit_and_view_aggregate_the_roles_by_impersonation(
    kubectl: Kubectl, user_roles: bool, namespace: str, control_plane: Any
) -> None:
    # The test control plane runs kube-controller-manager with the aggregation controller.
    assert user_roles or not control_plane.garbage_collection, "edit/view did not aggregate"
    editor = person(kubectl, namespace, "editor", "edit" if user_roles else ROLES[0])
    viewer = person(kubectl, namespace, "viewer", "view" if user_roles else ROLES[1])
    other = f"{namespace}-elsewhere"[:63]
    checks = [(True, editor, *c, namespace) for c in EDITOR_ALLOWED]
    checks += [(False, editor, *c, namespace) for c in EDITOR_DENIED]
    checks += [(True, viewer, *c, namespace) for c in VIEWER_ALLOWED]
    checks += [(False, viewer, *c, namespace) for c in VIEWER_DENIED]
    # Only in the namespace they were given it.
    checks += [(False, who, "get", PROJECTS, "", other) for who in (editor, viewer)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda c: can_i(kubectl, c[1], c[2], c[3], c[5], c[4]), checks))
    wrong = [
        f"{who.rsplit(':', 1)[1]} {'allowed' if got else 'denied'}: {verb} {res}{'/' + sub if sub else ''} in {ns}"
        for (want, who, verb, res, sub, ns), got in zip(checks, answers, strict=True)
        if got != want
    ]
    assert not wrong, "\n".join(wrong)


def run(path: str, kubeconfig: str, *args: str) -> subprocess.CompletedProcess[str]:
    """kubectl (and the plugin it finds on `path`) as the kubeconfig's user."""
    env = {"PATH": path, "KUBECONFIG": kubeconfig, "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [kubectl_path(), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_an_editor_applies_and_retries_and_a_viewer_reads_status(
    kubectl: Kubectl,
    user_roles: bool,
    namespace: str,
    plugin_path: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """For real, with the ServiceAccounts' own tokens (no impersonation) and the plugin."""
    person(kubectl, namespace, "editor", "edit" if user_roles else ROLES[0])
    person(kubectl, namespace, "viewer", "view" if user_roles else ROLES[1])
    as_editor = service_account_kubeconfig(kubectl, namespace, "editor", tmp_path / "editor")
    as_viewer = service_account_kubeconfig(kubectl, namespace, "viewer", tmp_path / "viewer")
    example = EXAMPLES / "local-demo.yaml"
    name = yaml.safe_load(example.read_text())["metadata"]["name"]

    applied = run(plugin_path, as_editor, "apply", "-n", namespace, "-f", str(example))
    assert applied.returncode == 0, applied.stderr
    retried = run(plugin_path, as_editor, "video", "retry", f"project/{name}", "-n", namespace)
    assert retried.returncode == 0, retried.stderr
    project = yaml.safe_load(
        kubectl("get", f"project/{name}", "-n", namespace, "-o", "yaml").stdout
    )
    assert v.ANNOTATION_RETRY in project["metadata"]["annotations"]

    status = run(plugin_path, as_viewer, "video", "status", "-n", namespace)
    assert status.returncode == 0, status.stderr
    assert name in status.stdout
    as_json = run(
        plugin_path, as_viewer, "video", "status", f"project/{name}", "-n", namespace, "-o", "json"
    )
    assert as_json.returncode == 0, as_json.stderr
    denied = run(plugin_path, as_viewer, "video", "retry", f"project/{name}", "-n", namespace)
    assert denied.returncode != 0 and "forbidden" in denied.stderr + denied.stdout
