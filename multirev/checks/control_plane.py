"""Is a revision's control plane installed and ready?"""

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


def check_control_plane(plane: ControlPlane, state: ControlPlaneState) -> list[str]:
    problems: list[str] = []
    ns, rev = plane.namespace, plane.revision
    if state.install is not None and state.install.returncode != 0:
        tail = " | ".join((state.install.stderr or state.install.stdout).strip().splitlines()[-2:])
        problems.append(f"`istioctl install` of revision {rev} (Istio {plane.version}) exited "
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
