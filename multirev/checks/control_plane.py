"""Is a revision's control plane installed and ready, and does it stay whole when the other revision is uninstalled?"""

from __future__ import annotations

from dataclasses import dataclass

from multirev.commands import Completed
from multirev.istio import facts
from multirev.kube.objects import Obj
from multirev.profile import ControlPlane


@dataclass
class ControlPlaneState:
    install: Completed | None
    istiod: Obj | None
    injector_webhook: Obj | None
    validator_webhook: Obj | None
    wait_problem: str | None = None
    installed_with: str = "istioctl install"  # the installer's command, as a user would name it


def check_control_plane(plane: ControlPlane, state: ControlPlaneState) -> list[str]:
    problems: list[str] = []
    ns, rev = plane.namespace, plane.revision
    if state.install is not None and state.install.returncode != 0:
        tail = " | ".join((state.install.stderr or state.install.stdout).strip().splitlines()[-2:])
        problems.append(f"`{state.installed_with}` of revision {rev} (Istio {plane.version}) exited "
                        f"{state.install.returncode}: {tail}")
    name = facts.istiod_name(rev)
    if state.istiod is None:
        problems.append(f"Deployment {ns}/{name} does not exist")
    else:
        status = state.istiod.get("status", {})
        wanted = state.istiod.get("spec", {}).get("replicas", 1)
        if status.get("readyReplicas", 0) < wanted:
            problems.append(f"Deployment {ns}/{name} is not ready: {status.get('readyReplicas', 0)}/{wanted} "
                            f"replicas ready{f' ({state.wait_problem})' if state.wait_problem else ''}")
    injector = facts.injector_webhook_name(rev, ns)
    if state.injector_webhook is None:
        problems.append(f"MutatingWebhookConfiguration {injector} (revision {rev}'s injector) does not exist")
    validator = facts.validator_webhook_name(rev, ns)
    if state.validator_webhook is None:
        problems.append(f"ValidatingWebhookConfiguration {validator} (revision {rev}'s validator) does not exist")
    return problems


@dataclass
class KeptPlaneState:
    """A control plane after the other revision's uninstall. `before`/`after` hold, per group, the objects found
    just before and after it, for what exists in numbers the suite does not fix: the revision's tags (the default
    tag among them), the Istio CRDs, the Istio config in its app namespaces."""
    control_plane: ControlPlaneState
    service: Obj | None
    configmaps: dict[str, Obj | None]  # chart name -> object
    before: dict[str, list[str]]
    after: dict[str, list[str]]


def check_kept_plane(plane: ControlPlane, state: KeptPlaneState) -> list[str]:
    """Everything check_control_plane judges, plus istiod's Service and ConfigMaps (istio-<rev>: mesh config,
    istio-sidecar-injector-<rev>: injection templates; facts cites the charts), and each object of the groups in
    `before` that is gone after."""
    problems = check_control_plane(plane, state.control_plane)
    ns, rev = plane.namespace, plane.revision
    if state.service is None:
        problems.append(f"Service {ns}/{facts.istiod_name(rev)} (what revision {rev}'s webhooks and proxies call) "
                        "does not exist")
    for name, found in state.configmaps.items():
        if found is None:
            problems.append(f"ConfigMap {ns}/{name} (revision {rev}'s istiod reads it) does not exist")
    for group, refs in state.before.items():
        left = set(state.after.get(group, []))
        problems += [f"{ref} ({group}) existed before the uninstall and is gone" for ref in refs if ref not in left]
    return problems
