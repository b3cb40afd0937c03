"""A run's configuration, validated up front, and the backend it selects."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from multirev.backends.base import Backend, Endpoint
from multirev.backends.existing import ExistingBackend, ExistingOptions
from multirev.backends.kind import KindBackend, KindOptions
from multirev.backends.local.backend import LocalBackend, LocalOptions
from multirev.backends.local.build import default_bin_cache
from multirev.backends.simulated.backend import SimulatedBackend
from multirev.clock import WallClock
from multirev.commands import RecordingRunner, SubprocessRunner, Transcript
from multirev.compat import choose_node_image, common_kubernetes
from multirev.errors import UsageError
from multirev.faults import Fault
from multirev.helmcli import DEFAULT_HELM_MIRROR
from multirev.istio.gateway_api import RELEASE_MIRROR as GATEWAY_API_MIRROR
from multirev.istio.release import DEFAULT_MIRROR
from multirev.kind.images import NodeImage
from multirev.plan import MeshPlan
from multirev.profile import Profile

BACKENDS = ("kind", "existing", "simulated", "local")


@dataclass
class RunConfig:
    backend: str
    profile: Profile
    run_id: str
    reports_dir: Path
    cache_dir: Path
    node_image: NodeImage
    istio_mirror: str = DEFAULT_MIRROR
    helm_mirror: str = DEFAULT_HELM_MIRROR
    helm_bin: str | None = None
    gateway_api_mirror: str = GATEWAY_API_MIRROR
    cluster_name: str = ""
    cluster_name_chosen: bool = False
    keep_cluster: bool = False
    kind_bin: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    allow_destructive: bool = False
    allow_purge: bool = False  # --allow-purge: purge a cluster that had Istio before the run
    gateway_host: str | None = None
    gateway_endpoints: dict[str, Endpoint] = field(default_factory=dict)
    host_port_base: int = 18080
    sim_seed: int = 1
    faults: list[Fault] = field(default_factory=list)
    worker: str = "main"
    assumed_facts_of: str | None = None
    bin_cache: Path = field(default_factory=default_bin_cache)

    @property
    def plan(self) -> MeshPlan:
        return MeshPlan(self.profile, self.run_id)

    @property
    def work_dir(self) -> Path:
        return self.reports_dir / "work" / self.worker

    @property
    def credentials_dir(self) -> Path:
        """Kubeconfigs the run writes: never under reports/, which CI uploads."""
        return self.cache_dir / "kubeconfigs"


# Hex digits that cannot appear in a number. A run id of digits and one `e` ("4e178392") is a string to PyYAML
# (YAML 1.1 floats need a dot), which writes it unquoted into the IstioOperator and Helm values files, and a number
# to the YAML 1.2 parser istioctl and Helm read them with, which then refuses the run-id label ("cannot unmarshal
# number into Go struct field ObjectMeta.metadata.labels of type string", seen in a CI run).
_NOT_NUMERIC = frozenset("abcdf")


def new_run_id() -> str:
    """Eight hex digits, at least one of them a letter no number has, so that every YAML reader takes it as text."""
    while True:
        run_id = uuid.uuid4().hex[:8]
        if _NOT_NUMERIC & set(run_id):
            return run_id


def validate_backend(name: str) -> str:
    if name not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, not '{name}'")
    return name


def node_image_for(profile: Profile, override: str | None) -> NodeImage:
    return choose_node_image(profile.stable.version, profile.canary.version, override)


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "multirev-conformance"


def make_backend(cfg: RunConfig) -> Backend:
    transcript = Transcript(cfg.reports_dir / f"transcript-{cfg.worker}.jsonl")
    if cfg.backend == "simulated":
        return SimulatedBackend(transcript, seed=cfg.sim_seed, faults=cfg.faults, node_image=cfg.node_image,
                                work_dir=cfg.work_dir, host_port_base=cfg.host_port_base)
    runner = RecordingRunner(SubprocessRunner(), transcript, cfg.backend)
    if cfg.backend == "local":
        return LocalBackend(runner, WallClock(), LocalOptions(
            run_id=cfg.run_id, worker=cfg.worker, bin_cache=cfg.bin_cache, work_dir=cfg.work_dir,
            istio_versions=sorted({str(p.version) for p in cfg.profile.planes}),
            gateway_services={p.role: (p.plane.namespace, p.gateway_name) for p in cfg.plan.planes}))
    if cfg.backend == "kind":
        return KindBackend(runner, WallClock(), KindOptions(
            cluster_name=cfg.cluster_name, node_image=cfg.node_image, keep_cluster=cfg.keep_cluster,
            kind_bin=cfg.kind_bin, cache=cfg.cache_dir, work_dir=cfg.work_dir, istio_mirror=cfg.istio_mirror,
            helm_mirror=cfg.helm_mirror, helm_bin=cfg.helm_bin, host_port_base=cfg.host_port_base,
            gateway_api_mirror=cfg.gateway_api_mirror,
            credentials_dir=cfg.credentials_dir,
            name_chosen=cfg.cluster_name_chosen,
            kubernetes_range=common_kubernetes(cfg.profile.stable.version, cfg.profile.canary.version)))
    return ExistingBackend(runner, WallClock(), ExistingOptions(
        kubeconfig=cfg.kubeconfig, context=cfg.context, run_id=cfg.run_id, allow_destructive=cfg.allow_destructive,
        allow_purge=cfg.allow_purge,
        cache=cfg.cache_dir, istio_mirror=cfg.istio_mirror, helm_mirror=cfg.helm_mirror, helm_bin=cfg.helm_bin,
        gateway_api_mirror=cfg.gateway_api_mirror, gateway_host=cfg.gateway_host,
        gateway_endpoints=cfg.gateway_endpoints,
        gateway_services={p.role: (p.plane.namespace, p.gateway_name) for p in cfg.plan.planes}))


def parse_gateway_endpoints(values: list[str]) -> dict[str, Endpoint]:
    """--gateway-endpoint stable=HOST:PORT (repeatable, one per role)."""
    endpoints = {}
    for value in values:
        role, _, address = value.partition("=")
        host, _, port = address.rpartition(":")
        if role not in ("stable", "canary") or not host or not port.isdigit():
            raise UsageError(f"--gateway-endpoint {value}: expected stable=HOST:PORT or canary=HOST:PORT")
        endpoints[role] = Endpoint(host.strip("[]"), int(port))
    return endpoints
