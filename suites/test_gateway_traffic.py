"""Each revision's ingress gateway serves its own Bookinfo and samples, and not the other revision's routes."""

from __future__ import annotations

import pytest

from fixtures.mesh import MeshSetup
from multirev.checks.gateway import check_productpage, check_sample, check_unrouted
from multirev.conformance import conformance
from multirev.traffic import gateway_get
from suites.conftest import BOOKINFO, SAMPLE_APPS, assert_no_problems
from suites.scenario import wait_until_served

# A path of the samples VirtualService (manifests/sample-apps/nginx-echo.yaml) that no Bookinfo route matches.
LEAK_PATH = "/echo"


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
def test_unrouted_host_gets_404(mesh: MeshSetup, role: str, record_property: pytest.RecordProperty) -> None:
    """Certifies that the other revision's routes do not leak into the revision's gateway: `/echo` with the other
    revision's samples Host, which the other revision's gateway serves, gets Envoy's 404 here. Bookinfo's Gateway
    and VirtualService take any Host (`hosts: "*"`, samples/bookinfo/networking/bookinfo-gateway.yaml@1.29.6 and
    @1.30.3), so a Host nothing routes would land in Bookinfo's virtual host and say nothing about a leak; only
    a route for the other revision's own host and path shows one."""
    other = "canary" if role == "stable" else "stable"
    plane, theirs = mesh.plan.plane(role), mesh.plan.plane(other)
    wait_until_served(mesh, role, "/productpage", "bookinfo.example")
    # The route is live where it belongs, so a 404 here means it did not leak, not that it is not there yet.
    record_property("served_by_its_own_gateway",
                    wait_until_served(mesh, other, LEAK_PATH, theirs.sample_host) or f"yes, by the {other} gateway")
    where = f"the {role} gateway ({plane.gateway_name}, revision {plane.plane.revision})"
    response = gateway_get(mesh.cluster, mesh.endpoint(role), LEAK_PATH, theirs.sample_host)
    owner = f"the {other} gateway {theirs.gateway_name} (revision {theirs.plane.revision})"
    assert_no_problems(check_unrouted(where, LEAK_PATH, theirs.sample_host, owner, response),
                       f"other revision's route ({role})")
