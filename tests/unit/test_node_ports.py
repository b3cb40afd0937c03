"""Gateway NodePorts are pinned only where kind maps host ports to them; everywhere else the API server allocates
them, and the model refuses a taken one as the API server does (issue 16, finding 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.mesh import build_mesh, session_mesh
from multirev.backends.base import Backend
from multirev.backends.existing import ExistingBackend
from multirev.backends.kind import KindBackend
from multirev.backends.local.backend import LocalBackend
from multirev.backends.simulated.backend import SimulatedBackend
from multirev.backends.simulated.cluster import NODE_PORT_RANGE, NODE_PORT_STATIC_BAND, Refused
from multirev.commands import Transcript
from multirev.istio import facts, operator
from multirev.kind.images import NODE_IMAGES
from multirev.kube import kinds
from multirev.plan import NODE_PORTS, MeshPlan
from multirev.profile import load_profile

CLIENT = "workloads/mesh-client.yaml"
TAKEN = f'spec.ports[0].nodePort: Invalid value: {NODE_PORTS["stable"]["http"]}: provided port is already allocated'


class ExistingModel(SimulatedBackend):
    """The model standing in for a cluster the run does not own: it pins what ExistingBackend pins."""

    name = "existing"
    pins_node_ports = ExistingBackend.pins_node_ports

    def may_destroy_foreign(self) -> bool:
        return False


def model(tmp_path: Path, backend: type[SimulatedBackend] = SimulatedBackend) -> SimulatedBackend:
    made = backend(Transcript(tmp_path / "t.jsonl"), seed=1, faults=[], node_image=next(iter(NODE_IMAGES.values())),
                   work_dir=tmp_path, host_port_base=18080)
    made.start()
    return made


def node_port_service(name: str, namespace: str, *ports: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"type": "NodePort", "selector": {"app": name}, "ports": list(ports)}}


def gateway_ports(iop: dict) -> dict[str, dict]:
    return {p["name"]: p for p in iop["spec"]["components"]["ingressGateways"][0]["k8s"]["service"]["ports"]}


@pytest.mark.parametrize(("backend", "pins"), [(KindBackend, True), (SimulatedBackend, True),
                                               (ExistingBackend, False), (LocalBackend, False)])
def test_only_kind_and_its_model_pin_gateway_node_ports(backend: type[Backend], pins: bool) -> None:
    """kind's extraPortMappings need the fixed NodePorts (the model plays kind); the existing backend reads the
    allocated one and the local backend reaches gateway pods directly, so neither pins any."""
    assert backend.pins_node_ports is pins
    plane = MeshPlan(load_profile("current"), "run1").plane("stable")
    ports = gateway_ports(operator.render(plane, pin_node_ports=backend.pins_node_ports))
    if pins:
        assert (ports["http2"]["nodePort"], ports["https"]["nodePort"]) == (30080, 30081)
    else:
        assert [p for p in ports.values() if "nodePort" in p] == []


def test_the_model_refuses_a_service_on_a_taken_node_port(tmp_path: Path) -> None:
    """NodePorts are cluster-wide: a second Service asking for one gets the API server's 422 message
    (kubernetes@v1.35.4:pkg/registry/core/service/storage/alloc.go initNodePorts); re-applying the holder is
    fine, and deleting it frees the port."""
    cluster = model(tmp_path).cluster
    port = {"name": "http", "port": 80, "nodePort": NODE_PORTS["stable"]["http"]}
    cluster.apply(node_port_service("web", "default", port))
    cluster.apply(node_port_service("web", "default", port))
    with pytest.raises(Refused) as refused:
        cluster.apply(node_port_service("shop", "kube-public", dict(port)))
    assert str(refused.value) == f'Service "shop" is invalid: {TAKEN}'
    assert cluster.get(kinds.SERVICE, "shop", "kube-public") is None
    with pytest.raises(Refused, match=r"spec.ports\[0\].nodePort: Invalid value: 29999: provided port is not in the "
                                      r"valid range. The range of valid ports is 30000-32767"):
        cluster.apply(node_port_service("low", "default", {"name": "http", "port": 80, "nodePort": 29999}))
    cluster.delete(kinds.SERVICE, "web", "default")
    cluster.apply(node_port_service("shop", "kube-public", dict(port)))


def test_the_model_allocates_a_node_port_left_out_and_keeps_it(tmp_path: Path) -> None:
    """Without a nodePort the server picks a free one above the static band; applying the same Service again
    without it keeps that one (storage.go patchAllocatedValues), and a ClusterIP Service gets none."""
    cluster = model(tmp_path).cluster
    cluster.apply(node_port_service("web", "default", {"name": "http", "port": 80}, {"name": "https", "port": 443}))
    first = [p["nodePort"] for p in cluster.get(kinds.SERVICE, "web", "default")["spec"]["ports"]]
    low, high = NODE_PORT_RANGE
    assert all(low + NODE_PORT_STATIC_BAND <= port <= high for port in first) and len(set(first)) == 2
    cluster.apply(node_port_service("web", "default", {"name": "http", "port": 80}, {"name": "https", "port": 443}))
    assert [p["nodePort"] for p in cluster.get(kinds.SERVICE, "web", "default")["spec"]["ports"]] == first
    cluster.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "plain", "namespace": "default"},
                   "spec": {"selector": {"app": "plain"}, "ports": [{"name": "http", "port": 80}]}})
    assert "nodePort" not in cluster.get(kinds.SERVICE, "plain", "default")["spec"]["ports"][0]


def test_a_pinned_gateway_on_a_taken_port_fails_install_after_istiod_exists(tmp_path: Path) -> None:
    """What pinning does on a cluster where another Service holds the port: istiod is created, then the gateway
    Service is refused and `istioctl install` fails with the server's message (why only kind pins)."""
    backend = model(tmp_path)
    backend.cluster.apply(node_port_service("web", "default", {"name": "http", "port": 80, "nodePort": 30080}))
    plan = MeshPlan(load_profile("current"), "run1")
    setup = build_mesh(plan, backend, backend.cluster, tmp_path, {CLIENT})
    stable = plan.plane("stable")
    install = setup.installs["stable"]
    assert install.returncode == 1
    assert ("✘ Ingress gateways encountered an error: failed to update resource with server-side apply for obj "
            f"Service/{stable.plane.namespace}/{stable.gateway_name}: Service \"{stable.gateway_name}\" is invalid: "
            f"{TAKEN.replace('ports[0]', 'ports[1]')}") in install.stderr
    assert backend.cluster.get(kinds.DEPLOYMENT, facts.istiod_name(stable.plane.revision), stable.plane.namespace)
    assert backend.cluster.get(kinds.SERVICE, stable.gateway_name, stable.plane.namespace) is None


@pytest.mark.parametrize("layout", ["separate", "shared"])
def test_on_a_cluster_the_run_does_not_own_taken_ports_do_not_matter(tmp_path: Path, layout: str) -> None:
    """Someone's Services hold both pinned HTTP ports: set-up installs both revisions anyway, each gateway gets a
    NodePort the server allocated, and the other Services keep theirs."""
    backend = model(tmp_path, ExistingModel)
    cluster = backend.cluster
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-web"}})
    for role, ports in NODE_PORTS.items():
        cluster.apply(node_port_service(role, "team-web", {"name": "http", "port": 80, "nodePort": ports["http"]}))
    plan = MeshPlan(load_profile("current", layout=layout), "run1")
    with session_mesh(plan, backend, cluster, tmp_path, {CLIENT}) as setup:
        assert {role: result.returncode for role, result in setup.installs.items()} == {"stable": 0, "canary": 0}
        for plane in plan.planes:
            gateway = cluster.get(kinds.SERVICE, plane.gateway_name, plane.plane.namespace)
            http = next(p for p in gateway["spec"]["ports"] if p["name"] == "http2")
            assert http["nodePort"] not in {ports["http"] for ports in NODE_PORTS.values()}
    for role, ports in NODE_PORTS.items():
        assert cluster.get(kinds.SERVICE, role, "team-web")["spec"]["ports"][0]["nodePort"] == ports["http"]
