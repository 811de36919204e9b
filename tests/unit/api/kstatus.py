"""kstatus's generic rules, ported from sigs.k8s.io/cli-utils/pkg/kstatus/status.

`Compute` (status.go) runs `checkGenericProperties` (generic.go) and, for a kind with no
built-in rules (every custom resource), falls back to Current:

1. `metadata.deletionTimestamp` set                      -> Terminating
2. `status.observedGeneration` present and != generation  -> InProgress
   (absent: the check is skipped, so an object no controller has touched yet is Current;
   this is why the Flux example adds `healthCheckExprs`)
3. the first condition in list order that is `Reconciling=True` -> InProgress,
   `Stalled=True` -> Failed (message: the condition's)
4. otherwise                                              -> Current

This is what Flux's `wait`/`healthChecks`, kpt and Config Sync compute for Projects and Scenes.
"""

from __future__ import annotations

from typing import Any

CURRENT, IN_PROGRESS, FAILED, TERMINATING = "Current", "InProgress", "Failed", "Terminating"


def compute(obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) as kstatus.Compute returns them for a custom resource."""
    metadata = obj.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return TERMINATING, "Resource scheduled for deletion"
    status = obj.get("status") or {}
    generation = metadata.get("generation")
    if generation is not None and "observedGeneration" in status:
        observed = status["observedGeneration"]
        if observed != generation:
            kind = obj.get("kind", "")
            return (
                IN_PROGRESS,
                f"{kind} generation is {generation}, but latest observed generation is {observed}",
            )
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Reconciling" and cond.get("status") == "True":
            return IN_PROGRESS, cond.get("message", "")
        if cond.get("type") == "Stalled" and cond.get("status") == "True":
            return FAILED, cond.get("message", "")
    return CURRENT, "Resource is current"
