"""Both control planes are installed and ready."""

from __future__ import annotations

import pytest

from fixtures.mesh import MeshSetup
from multirev.checks.control_plane import ControlPlaneState, check_control_plane
from multirev.conformance import conformance
from multirev.istio import facts
from multirev.kube import kinds
from multirev.waits import Observation, wait_problem
from suites.conftest import assert_no_problems

ISTIOD_READY_TIMEOUT = 180.0


@pytest.mark.parametrize("role", ["stable", "canary"])
@conformance(feature="install", canary=True)
def test_control_plane_installed_and_ready(mesh: MeshSetup, role: str) -> None:
    """Certifies that the revision's install (`istioctl install`, or with --installer helm its base, istiod and
    gateway releases) succeeded, that its istiod Deployment runs ready in
    the revision's namespace, and that the revision's injector (MutatingWebhookConfiguration) and validator
    (ValidatingWebhookConfiguration) exist under their chart names."""
    plane = mesh.plan.plane(role).plane
    cluster = mesh.cluster

    def istiod() -> Observation[dict | None]:
        deploy = cluster.get(kinds.DEPLOYMENT, facts.istiod_name(plane.revision), plane.namespace)
        ready = (deploy or {}).get("status", {}).get("readyReplicas", 0)
        return Observation(bool(deploy) and ready >= 1, deploy, f"{'missing' if not deploy else f'{ready} ready'}")

    problem = wait_problem(f"Deployment {plane.namespace}/{facts.istiod_name(plane.revision)} to be ready", istiod,
                           clock=cluster.clock, timeout=ISTIOD_READY_TIMEOUT)
    state = ControlPlaneState(
        install=mesh.installs.get(role),
        istiod=cluster.get(kinds.DEPLOYMENT, facts.istiod_name(plane.revision), plane.namespace),
        injector_webhook=cluster.get(kinds.MUTATING_WEBHOOK, facts.injector_webhook_name(plane.revision,
                                                                                         plane.namespace)),
        validator_webhook=cluster.get(kinds.VALIDATING_WEBHOOK, facts.validator_webhook_name(plane.revision,
                                                                                            plane.namespace)),
        wait_problem=problem,
        installed_with=mesh.installer.describe("install", mesh.plan.plane(role)),
    )
    assert_no_problems(check_control_plane(plane, state), f"control plane {plane.revision} ({role})")
