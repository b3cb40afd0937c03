"""What a full run asks of the cluster's node: the scheduler's view of each pod's requests, summed.

The nightly workflow's runner must fit a whole run, or the last pods stay Pending and their revision's checks
fail for want of a CPU, not because the mesh is wrong (README: "Resource budget").
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from kubernetes.utils import parse_quantity

from multirev.kube.objects import Obj

GIB = 1024**3


@dataclass(frozen=True)
class Requests:
    cpu: Decimal  # cores
    memory: Decimal  # bytes

    def __add__(self, other: Requests) -> Requests:
        return Requests(self.cpu + other.cpu, self.memory + other.memory)

    def __str__(self) -> str:
        return f"{self.cpu * 1000:.0f}m CPU, {self.memory / 2**20:.0f}Mi memory"


NOTHING = Requests(Decimal(0), Decimal(0))
# A fresh single-node kind cluster before the run adds anything: kube-apiserver 250m, kube-controller-manager
# 200m, kube-scheduler 100m (kubernetes@v1.35.8:cmd/kubeadm/app/phases/controlplane/manifests.go), etcd 100m and
# 100Mi (cmd/kubeadm/app/phases/etcd/local.go), two CoreDNS replicas of 100m and 70Mi (cmd/kubeadm/app/phases/
# addons/dns/manifests.go, dns.go coreDNSReplicas), kindnet 100m and 50Mi (kind@v0.32.0:pkg/build/nodeimage/
# const_cni.go); kube-proxy and local-path-provisioner request nothing.
KIND_CONTROL_PLANE = Requests(Decimal("0.95"), Decimal(290 * 2**20))
# The budget a full kind run keeps within: it leaves room on a 4-CPU, 16 GB public-repository runner
# (GitHub's `ubuntu-latest`) for the runner itself, Docker and kind's node.
BUDGET = Requests(Decimal(3), Decimal(6 * GIB))


def _container(container: dict) -> Requests:
    requests = (container.get("resources") or {}).get("requests") or {}
    return Requests(parse_quantity(requests.get("cpu", "0")), parse_quantity(requests.get("memory", "0")))


def pod_requests(pod: Obj) -> Requests:
    """A pod's effective requests as the scheduler counts them: the app containers plus the restartable init
    containers (native sidecars), or, if larger, an init container plus the sidecars started before it; per
    resource (k8s.io/component-helpers@v0.35.8:resource/helpers.go AggregateContainerRequests)."""
    spec = pod.get("spec") or {}
    sidecars, init_peak = NOTHING, NOTHING
    for init in spec.get("initContainers") or []:
        if init.get("restartPolicy") == "Always":
            sidecars = sidecars + _container(init)
            continue
        during = sidecars + _container(init)
        init_peak = Requests(max(init_peak.cpu, during.cpu), max(init_peak.memory, during.memory))
    running = sidecars
    for container in spec.get("containers") or []:
        running = running + _container(container)
    return Requests(max(running.cpu, init_peak.cpu), max(running.memory, init_peak.memory))


def total(pods: list[Obj]) -> Requests:
    result = NOTHING
    for pod in pods:
        result = result + pod_requests(pod)
    return result
