"""Egress: mesh traffic to an external host leaves through the revision's egress gateway."""

from __future__ import annotations

import pytest

from fixtures.mesh import MeshSetup
from multirev.backends.base import HttpResponse
from multirev.conformance import conformance
from multirev.istio import facts
from multirev.kube import kinds
from multirev.observe import mesh_config
from multirev.plan import EGRESS_EXTERNAL_NAMESPACE
from multirev.traffic import mesh_get
from multirev.waits import Observation, wait_problem
from suites.conftest import CLIENT, assert_no_problems
from suites.scenario import READY_TIMEOUT, apply_and_await_push, wait_namespace_rolled_out

EXTERNAL_HOST = "external.multirev.invalid"  # exists only in the ServiceEntry
EXTERNAL_NAMESPACE = EGRESS_EXTERNAL_NAMESPACE


def egress_gateway_logs(mesh: MeshSetup, role: str) -> str:
    """The egress gateway's access log (container istio-proxy: gateways/istio-egress/templates/deployment.yaml);
    with meshConfig.accessLogFile set, each request's line carries its path
    (istio@1.30.3:pilot/pkg/model/telemetry_logging.go EnvoyTextLogFormat)."""
    plan = mesh.plan.plane(role)
    where = plan.plane.egress[0] if plan.plane.egress else plan.plane.namespace
    pods = mesh.cluster.list(kinds.POD, where, labels={"istio": "egressgateway", facts.REV_LABEL: plan.plane.revision})
    return "\n".join(mesh.cluster.pod_logs(where, p["metadata"]["name"], facts.PROXY_CONTAINER) for p in pods)


def external_pod_ip(mesh: MeshSetup) -> str | None:
    # The run's pod only: egress-external may be a namespace the run borrowed, with pods of its own.
    for pod in mesh.cluster.list(kinds.POD, EXTERNAL_NAMESPACE, labels={"app": "external-http",
                                                                         **mesh.plan.run_labels}):
        if pod.get("status", {}).get("podIP"):
            return pod["status"]["podIP"]
    return None


def installed_egress_gaps(mesh: MeshSetup, role: str) -> list[str]:
    """--installed: what the egress scenario needs of a revision that the suite sets on its own installs
    (manifests/istio/revision-iop.yaml) and the cluster's revision may not have."""
    plan = mesh.plan.plane(role)
    config = mesh_config(mesh.cluster, plan.plane.revision, plan.plane.namespace)
    gaps = []
    if plan.plane.egress is None:
        gaps.append("no egress gateway (a Service selecting its pods labelled istio=egressgateway)")
    if (config.get("outboundTrafficPolicy") or {}).get("mode") != "REGISTRY_ONLY":
        gaps.append("outboundTrafficPolicy is not REGISTRY_ONLY")
    if not config.get("accessLogFile"):
        gaps.append("no accessLogFile (the egress gateway's log is how the suite sees the request pass)")
    metadata = ((config.get("defaultConfig") or {}).get("proxyMetadata") or {})
    if metadata.get("ISTIO_META_DNS_CAPTURE") != "true":
        gaps.append("no DNS capture (defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE), which resolves the "
                    "ServiceEntry-only host")
    return gaps


@pytest.mark.parametrize("role", ["stable", "canary"])
@conformance(feature="egress", manifests=CLIENT, needs_envoy=True)
def test_egress_through_egress_gateway(mesh: MeshSetup, role: str) -> None:
    """Certifies that an in-mesh client reaches an "external" HTTP service (outside the mesh, known only by a
    ServiceEntry host that exists nowhere else) through the revision's egress gateway, whose access log shows
    the request, and that with outboundTrafficPolicy REGISTRY_ONLY a destination without a ServiceEntry (the
    external service's pod address) is refused."""
    plane = mesh.plan.plane(role).plane
    if mesh.plan.installed and (gaps := installed_egress_gaps(mesh, role)):
        pytest.skip(f"--installed: revision {plane.revision} has {'; '.join(gaps)}")
    namespace = plane.app_namespaces[0]
    mesh.apply("egress/external-service.yaml", role, EXTERNAL_NAMESPACE)
    # Its endpoints settle first, so that their pushes do not lead the egress config's batch.
    if waited := wait_namespace_rolled_out(mesh, EXTERNAL_NAMESPACE):
        assert_no_problems([waited], f"egress ({role})")
    apply_and_await_push(mesh, role, "egress/egress-via-gateway.yaml")
    probe_path = f"/egress-probe-{mesh.plan.run_id}-{role}"
    url = f"http://{EXTERNAL_HOST}{probe_path}"

    def reached() -> Observation[HttpResponse]:
        response = mesh_get(mesh.cluster, namespace, url, labels=mesh.plan.run_labels)
        return Observation(response.status == 200, response, f"HTTP {response.status} {response.body[:100]}")

    problems = []
    waited = wait_problem(f"GET {url} from {namespace} to answer 200", reached, clock=mesh.cluster.clock,
                          timeout=READY_TIMEOUT, interval=3)
    if waited:
        problems.append(waited)
    elif probe_path not in egress_gateway_logs(mesh, role):
        problems.append(f"GET {url} from {namespace} succeeded without passing the {role} egress gateway "
                        f"({plane.namespace}, revision {plane.revision}): its access log has no {probe_path}")
    address = external_pod_ip(mesh)
    if address is None:
        problems.append(f"no pod address for the external service in {EXTERNAL_NAMESPACE}")
    else:
        refused = mesh_get(mesh.cluster, namespace, f"http://{address}/", labels=mesh.plan.run_labels)
        if refused.status == 200:
            problems.append(f"GET http://{address}/ (no ServiceEntry) from {namespace} answered 200; "
                            "REGISTRY_ONLY should refuse it")
    assert_no_problems(problems, f"egress ({role})")
