"""The interface suites and fixtures use; every backend implements it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from multirev.clock import Clock
from multirev.commands import Completed, Runner
from multirev.errors import EnvironmentProblem, UsageError
from multirev.istio.helm import Helm
from multirev.istio.istioctl import Istioctl
from multirev.istio.versions import IstioVersion
from multirev.kube.kinds import Kind
from multirev.kube.objects import Obj
from multirev.plan import MeshPlan
from multirev.profile import Profile

if TYPE_CHECKING:
    from multirev.istio.gateway_api import GatewayApiModule


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: str


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int


class Cluster(Protocol):
    """Cluster operations, the same on a real and a simulated cluster."""

    clock: Clock

    def apply(self, obj: Obj) -> Obj: ...

    def get(self, kind: Kind, name: str, namespace: str | None = None) -> Obj | None: ...

    def list(self, kind: Kind, namespace: str | None = None, labels: dict[str, str] | None = None) -> list[Obj]: ...

    def label(self, kind: Kind, name: str, labels: dict[str, str | None], namespace: str | None = None) -> None: ...

    def replace_spec(self, kind: Kind, name: str, spec: dict, namespace: str | None = None) -> None: ...

    def replace_fields(self, kind: Kind, name: str, fields: dict[str, Any], namespace: str | None = None) -> None:
        """Set each top-level field (`webhooks`, `metadata.labels` as "metadata/labels") to exactly the value given,
        in place: the object keeps its uid."""
        ...

    def create(self, obj: Obj) -> Obj:
        """Create the object exactly as given: no run-id label, unlike `apply` (something the run gives back)."""
        ...

    def dry_run_create(self, obj: Obj) -> Obj:
        """What the API server would store for `obj` after admission, without storing it (`dryRun=All`): mutating and
        validating webhooks are called, as Istio's declare no side effects (istio@1.30.3: manifests/charts/
        istio-control/istio-discovery/templates/mutatingwebhook.yaml `sideEffects: None`). Raises AdmissionRefused
        with the server's message when admission refuses it."""
        ...

    def delete(self, kind: Kind, name: str, namespace: str | None = None) -> bool: ...

    def pod_logs(self, namespace: str, pod: str, container: str, tail_lines: int = 500) -> str: ...

    def exec(self, namespace: str, pod: str, container: str, command: list[str]) -> Completed: ...

    def rollout_restart(self, namespace: str, deployment: str) -> None: ...

    def http_get(self, endpoint: Endpoint, path: str, host: str) -> HttpResponse: ...

    def kubernetes_version(self) -> str: ...


@dataclass
class BackendInfo:
    """What the reports say about where the run happened."""

    backend: str
    simulated: bool
    kubernetes_version: str = ""
    node_image: str = ""
    kind_version: str = ""
    extra: dict[str, object] = field(default_factory=dict)


class Backend(ABC):
    name: str
    simulated: bool = False
    # Why no proxy runs here, if none does: tests that need Envoy are then skipped with this reason.
    data_plane_missing: str | None = None
    # Whether the IstioOperator pins the ingress gateways' NodePorts (multirev.plan.NODE_PORTS). Only a backend
    # that maps fixed host ports to them needs it (kind's extraPortMappings). Elsewhere a pinned port another
    # Service already holds makes the API server refuse the gateway Service after istiod was installed; the
    # backend reads the NodePort the server allocated instead (existing) or needs none (local).
    pins_node_ports: bool = False

    def __init__(self, runner: Runner, clock: Clock) -> None:
        self.runner = runner
        self.clock = clock
        # feature -> why this run cannot certify it (an --installed run's account lacks a role only it needs):
        # its tests are skipped with the reason.
        self.features_withheld: dict[str, str] = {}

    @abstractmethod
    def preflight(self) -> None:
        """Fail fast (seconds, one line, nothing created) if this backend cannot run here."""

    def refuse_plan(self, plan: MeshPlan) -> None:  # noqa: B027 - most backends own their whole cluster
        """After preflight, before anything is created: refuse (UsageError, one line) a plan this cluster cannot
        take without changing what is not the run's. Only clusters the run does not own have anything to say."""

    @abstractmethod
    def start(self) -> Cluster:
        """Create or connect to the cluster."""

    @abstractmethod
    def stop(self) -> None:
        """Remove what start() created (unless asked to keep it)."""

    @abstractmethod
    def istioctl(self, version: IstioVersion) -> Istioctl:
        """istioctl of that version, bound to this cluster."""

    @abstractmethod
    def gateway_endpoint(self, role: str) -> Endpoint:
        """Where the host reaches the ingress gateway of the stable or canary revision."""

    def service_endpoint(self, namespace: str, service: str, port_name: str) -> Endpoint:
        """Where the host reaches a Service's port that has no fixed host port (a Gateway API gateway's)."""
        raise EnvironmentProblem(f"the {self.name} backend cannot reach Service {namespace}/{service} from the host")

    def gateway_api_manifest(self, module: GatewayApiModule) -> Path | None:
        """The Gateway API standard channel's install manifest of the module's version, verified by its sha256
        (multirev/istio/gateway_api.py); None where the backend serves the Gateway API kinds without CRDs."""
        raise EnvironmentProblem(f"the {self.name} backend has no source for the Gateway API {module.version} CRDs")

    @abstractmethod
    def samples_dir(self, version: IstioVersion) -> Path:
        """The samples/ folder of that Istio release (Bookinfo and friends)."""

    @abstractmethod
    def info(self) -> BackendInfo:
        """Facts about the cluster; may ask the cluster, so it only works while the cluster exists."""

    _recorded_info: BackendInfo | None = None

    def record_info(self) -> None:
        """Keep the cluster's facts while it exists: the report is written after teardown deleted it."""
        self._recorded_info = self.info()

    def report_info(self) -> BackendInfo:
        """The recorded facts, else fresh ones, else whatever can be said without the cluster: never raises."""
        if self._recorded_info is not None:
            return self._recorded_info
        try:
            return self.info()
        except Exception as exc:  # the report must still be written, naming what is missing
            return BackendInfo(self.name, self.simulated,
                               extra={"info_error": f"cluster facts unavailable: {type(exc).__name__}: {exc}"[:300]})

    def refuse_installed(self) -> None:
        """--installed, before anything starts: only a backend reaching someone's cluster has revisions to certify."""
        raise UsageError(f"--installed certifies revisions already running on a cluster of yours; the {self.name} "
                         "backend starts an empty one: use --backend existing")

    def installed_profile(self, profile: Profile) -> Profile:
        """--installed: the profile with each plane the cluster's own revision (multirev/istio/installed.py)."""
        self.refuse_installed()
        return profile

    def helm(self, work_dir: Path) -> Helm:
        """The Helm CLI bound to this cluster (`--installer helm`)."""
        raise UsageError(f"--installer helm: the {self.name} backend has no Helm")

    def charts_dir(self, version: IstioVersion) -> Path:
        """That release's Helm charts (manifests/charts; a release archive holds them beside samples/)."""
        return self.samples_dir(version).parent / "manifests" / "charts"

    def chart_image(self, version: IstioVersion) -> dict[str, str]:
        """global.hub and global.tag the charts need here; none where a release's charts name their own images."""
        return {}

    def istio_settings(self) -> dict:
        """IstioOperator fields this backend needs on top of the suite's own (merged into each revision's
        install); none on real clusters."""
        return {}

    def keep_record(self, why: str) -> None:  # noqa: B027 - only a cluster the run does not own has a record
        """Teardown did not give everything back (`why`): the run record stays at stop, for `./run cleanup`."""

    def may_destroy_foreign(self) -> bool:
        """Whether the run may borrow what it did not create (namespaces, revisions, tags, CRDs), giving it back."""
        return True

    def may_purge_foreign(self) -> bool:
        """Whether a purge may remove Istio the cluster had before the run (--allow-purge; a cluster the run owns has
        none of anyone else's)."""
        return True
