"""Every injected proxy talks to its own revision's istiod."""

from __future__ import annotations

import pytest

from fixtures.mesh import MeshSetup
from multirev.conformance import conformance
from suites.conftest import CLIENT, assert_no_problems
from suites.scenario import discovery_problems


@pytest.mark.parametrize("role", ["stable", "canary"])
@conformance(feature="discovery-address", manifests=CLIENT, canary=True, needs_envoy=True)
def test_proxies_talk_to_own_istiod(mesh: MeshSetup, role: str) -> None:
    """Certifies that every injected pod in the revision's app namespaces has, in its Envoy bootstrap
    (`istioctl proxy-config bootstrap -o json`), the discovery address istiod-<rev>.<namespace>.svc:15012 of
    its own revision."""
    plane = mesh.plan.plane(role).plane
    problems = []
    for namespace in plane.app_namespaces:
        problems += discovery_problems(mesh, role, namespace)
    assert_no_problems(problems, f"discovery address ({role})")
