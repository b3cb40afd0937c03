"""The simulated backend: same interface, a model instead of Docker, logical time, a seeded RNG."""

from __future__ import annotations

import random
from pathlib import Path

from multirev.backends.base import Backend, BackendInfo, Cluster, Endpoint
from multirev.backends.simulated.cluster import SimulatedCluster
from multirev.backends.simulated.hooks import Hooks
from multirev.backends.simulated.istioctl import SimulatedIstioctl
from multirev.backends.simulated.mesh import MeshModel
from multirev.backends.simulated.traffic import Router
from multirev.clock import LogicalClock
from multirev.commands import Completed, RecordingRunner, Transcript
from multirev.errors import UsageError
from multirev.faults import Fault
from multirev.istio.gateway_api import GatewayApiModule
from multirev.istio.istioctl import Istioctl, KubeTarget
from multirev.istio.versions import IstioVersion
from multirev.kind.config import host_ports
from multirev.kind.images import NodeImage
from multirev.paths import MANIFESTS
from multirev.plan import NODE_PORTS, MeshPlan


class SimulatedRunner:
    """Receives external commands; istioctl goes to the model, anything else is not available."""

    def __init__(self, istioctl: SimulatedIstioctl) -> None:
        self.istioctl = istioctl

    def run(self, argv: list[str], *, timeout: float, env: dict[str, str] | None = None) -> Completed:
        if self.istioctl.handles(argv):
            return self.istioctl.run(argv)
        return Completed(argv, 127, "", f"{argv[0]}: not available in the simulated backend")


class SimulatedBackend(Backend):
    name = "simulated"
    simulated = True
    pins_node_ports = True  # it plays kind: host ports reach the gateways through fixed NodePorts (host_to_node_port)

    def __init__(self, transcript: Transcript, *, seed: int, faults: list[Fault], node_image: NodeImage,
                 work_dir: Path, host_port_base: int) -> None:
        clock = LogicalClock()
        self.hooks = Hooks()
        for item in faults:
            item.install(self.hooks)
        kubelet = "v" + node_image.image.split(":v", 1)[1].split("@")[0]
        self.cluster = SimulatedCluster(clock, random.Random(seed), kubelet, self.hooks)
        self.mesh = MeshModel(self.cluster)
        self.cluster.router = Router(self.cluster, self.mesh)
        self.cluster.host_to_node_port = {
            host_ports(host_port_base)[role][scheme]: NODE_PORTS[role][scheme]
            for role in NODE_PORTS for scheme in NODE_PORTS[role]
        }
        runner = RecordingRunner(SimulatedRunner(SimulatedIstioctl(self.cluster, self.mesh)), transcript, "simulated")
        super().__init__(runner, clock)
        self.seed = seed
        self.faults = faults
        self.node_image = node_image
        self.kubeconfig = str(work_dir / "simulated.kubeconfig")
        self.host_port_base = host_port_base

    def preflight(self) -> None:
        """Nothing to check: the model needs no Docker, network or cluster."""

    def refuse_plan(self, plan: MeshPlan) -> None:
        if plan.profile.installer != "istioctl":
            # The model answers istioctl's argv only; a Helm install it cannot judge must not pass.
            raise UsageError(f"--installer {plan.profile.installer}: the simulated backend models istioctl installs "
                             "only; run Helm installs on --backend local, kind or existing")

    def start(self) -> Cluster:
        return self.cluster

    def stop(self) -> None:
        """The model goes away with the process."""

    def istioctl(self, version: IstioVersion) -> Istioctl:
        # The path names the version, the way an unpacked release does (istio-<V>/bin/istioctl).
        tool = Istioctl(f"/simulated/istio-{version}/bin/istioctl", version, self.runner, KubeTarget(self.kubeconfig))
        tool.verify_version()
        return tool

    def samples_dir(self, version: IstioVersion) -> Path:
        """The project's Bookinfo-shaped stand-ins (the model runs no release images)."""
        return MANIFESTS / "simulated-samples"

    def service_endpoint(self, namespace: str, service: str, port_name: str) -> Endpoint:
        return self.cluster.service_endpoint(namespace, service, port_name)

    def gateway_api_manifest(self, module: GatewayApiModule) -> None:
        """None: the model serves the Gateway API kinds without their CRDs (docs/model-vs-real.md)."""
        return None

    def gateway_endpoint(self, role: str) -> Endpoint:
        return Endpoint("127.0.0.1", host_ports(self.host_port_base)[role]["http"])

    def info(self) -> BackendInfo:
        return BackendInfo("simulated", True, self.cluster.kubernetes_version(), self.node_image.image,
                           self.node_image.kind_version,
                           {"seed": str(self.seed), "faults": ",".join(f.name for f in self.faults)})
