"""Each revision's ingress gateway serves its own Bookinfo and samples."""

from __future__ import annotations

import pytest

from fixtures.mesh import MeshSetup
from multirev.checks.gateway import check_productpage, check_sample, check_unrouted
from multirev.conformance import conformance
from multirev.traffic import gateway_get
from suites.conftest import BOOKINFO, SAMPLE_APPS, assert_no_problems
from suites.scenario import wait_until_served

UNROUTED_HOST = "unrouted.invalid"


@pytest.mark.parametrize("role", ["stable", "canary"])
@conformance(feature="gateway", manifests=BOOKINFO + SAMPLE_APPS, canary=True, needs_envoy=True)
def test_gateway_serves_bookinfo_and_samples(mesh: MeshSetup, role: str) -> None:
    """Certifies that through the revision's own ingress gateway, `/productpage` returns 200 from Envoy
    (`server: istio-envoy`) with the Bookinfo title, and that `/nginx` and `/echo` with the samples' Host
    header reach the nginx and echo samples (routed by URI prefix by the revision's VirtualService)."""
    plane = mesh.plan.plane(role)
    where = f"the {role} gateway ({plane.gateway_name}, revision {plane.plane.revision})"
    cluster, endpoint = mesh.cluster, mesh.endpoint(role)
    wait_until_served(mesh, role, "/productpage", "bookinfo.example")
    wait_until_served(mesh, role, "/echo", plane.sample_host)
    problems = check_productpage(where, gateway_get(cluster, endpoint, "/productpage", "bookinfo.example"))
    problems += check_sample(where, "/nginx", plane.sample_host,
                             gateway_get(cluster, endpoint, "/nginx", plane.sample_host), "Welcome to nginx!")
    problems += check_sample(where, "/echo", plane.sample_host,
                             gateway_get(cluster, endpoint, "/echo", plane.sample_host), plane.sample_host)
    assert_no_problems(problems, f"gateway traffic ({role})")


@pytest.mark.parametrize("role", ["stable", "canary"])
@conformance(feature="gateway", manifests=BOOKINFO + SAMPLE_APPS, needs_envoy=True)
def test_unrouted_host_gets_404(mesh: MeshSetup, role: str) -> None:
    """Certifies that a request whose Host no Gateway/VirtualService routes gets Envoy's 404 from the
    revision's gateway (no route leaks in from elsewhere)."""
    wait_until_served(mesh, role, "/productpage", "bookinfo.example")
    where = f"the {role} gateway"
    response = gateway_get(mesh.cluster, mesh.endpoint(role), "/nginx", UNROUTED_HOST)
    assert_no_problems(check_unrouted(where, UNROUTED_HOST, response), f"unrouted host ({role})")
