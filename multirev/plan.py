"""The concrete mesh a run builds from a profile: names, labels and ports for each control plane."""

from __future__ import annotations

from dataclasses import dataclass

from multirev.istio import facts
from multirev.profile import ControlPlane, Profile

# Every object the suite itself creates carries this label, so teardown on an existing cluster
# removes exactly what the run made.
RUN_ID_LABEL = "conformance.multirev.io/run-id"
# Namespaces a control plane should see carry `<DISCOVERY_PREFIX><revision>: enabled`; its discoverySelectors
# match it. One key per revision lets a namespace be seen by both while its workloads move between them.
DISCOVERY_PREFIX = "conformance.multirev.io/cp-"

# The egress scenario's "external" service lives here, outside the mesh (manifests/egress/external-service.yaml).
EGRESS_EXTERNAL_NAMESPACE = "egress-external"

# Fixed NodePorts for each revision's ingress gateway, mapped to host ports by kind (pinned on kind only). They
# sit in the static band the API server leaves to explicit requests (the first min(max(16, 2768/32), 128) = 86
# ports of 30000-32767, so 30000-30085: kubernetes@v1.35.4:pkg/registry/core/service/portallocator/allocator.go
# calculateRangeOffset), so a port it allocates at random (each gateway's status-port) never takes one first.
NODE_PORTS = {"stable": {"http": 30080, "https": 30081}, "canary": {"http": 30082, "https": 30083}}


@dataclass(frozen=True)
class PlanePlan:
    plane: ControlPlane
    layout: str

    @property
    def role(self) -> str:
        return self.plane.role

    @property
    def gateway_name(self) -> str:
        if self.plane.ingress is not None:  # --installed: the cluster's own
            return self.plane.ingress[1]
        # Two revisions in one namespace would overwrite each other's default-named gateway
        # (Deployment name = component name, no revision suffix), so the shared layout names them apart.
        if self.layout == "shared":
            return f"istio-ingressgateway-{self.plane.revision}"
        return "istio-ingressgateway"

    @property
    def gateway_service_namespace(self) -> str:
        """Where its ingress gateway's Service runs: the control plane's namespace, or (--installed) the cluster's."""
        return self.plane.ingress[0] if self.plane.ingress is not None else self.plane.namespace

    @property
    def discovery_labels(self) -> dict[str, str]:
        """Labels that put a namespace in this revision's view (none needed in the shared layout). An installed
        revision's are what its own discoverySelectors ask for."""
        if self.plane.discovery is not None:
            return dict(self.plane.discovery)
        return {f"{DISCOVERY_PREFIX}{self.plane.revision}": "enabled"} if self.uses_discovery_selectors else {}

    @property
    def is_default_revision(self) -> bool:
        """Installed without a revision (multirev/profile.py _validate_default_revision): its tag is `default`."""
        return self.plane.revision == facts.DEFAULT_REVISION

    @property
    def injection_labels(self) -> dict[str, str]:
        """What puts an app namespace on this revision (facts.injection_labels)."""
        return facts.injection_labels(self.plane.revision, self.plane.tag)

    @property
    def node_ports(self) -> dict[str, int]:
        return NODE_PORTS[self.role]

    @property
    def egress_gateway_name(self) -> str:
        if self.plane.egress is not None:  # --installed: the cluster's own
            return self.plane.egress[1]
        return f"istio-egressgateway-{self.plane.revision}" if self.layout == "shared" else "istio-egressgateway"

    @property
    def sample_host(self) -> str:
        """The Host header the nginx/echo samples answer to through this revision's gateway."""
        return f"samples.{self.plane.tag}.example"

    @property
    def gateway_api_host(self) -> str:
        """The Host header the revision's Gateway API routes answer to (manifests/gateway-api/bookinfo.yaml)."""
        return f"bookinfo.{self.role}.gateway-api.example"

    @property
    def gateway_namespace(self) -> str:
        """The app namespace that holds the revision's gateway config (Gateways and the VirtualServices bound to
        them; multirev.manifests.is_gateway_config): the first, where the suites send gateway traffic. Applied
        in every app namespace, it would be IST0145 ConflictingGateways once a profile names two."""
        return self.plane.app_namespaces[0]

    @property
    def manifest_variables(self) -> dict[str, str]:
        return {"REVISION": self.plane.revision, "TAG": self.plane.tag, "HOST": self.sample_host,
                "GATEWAY_API_HOST": self.gateway_api_host,
                "ISTIO_NAMESPACE": self.plane.namespace, "EGRESS_GATEWAY": self.egress_gateway_name,
                "EGRESS_NAMESPACE": self.plane.egress[0] if self.plane.egress else self.plane.namespace}

    @property
    def uses_discovery_selectors(self) -> bool:
        # In the shared layout both revisions watch the whole cluster, as in a classic canary upgrade. An installed
        # revision uses them if its mesh config sets any.
        if self.plane.discovery is not None:
            return bool(self.plane.discovery)
        return self.layout == "separate"


@dataclass(frozen=True)
class MeshPlan:
    profile: Profile
    run_id: str

    @property
    def planes(self) -> tuple[PlanePlan, PlanePlan]:
        layout = self.profile.layout
        return (PlanePlan(self.profile.stable, layout), PlanePlan(self.profile.canary, layout))

    def plane(self, role: str) -> PlanePlan:
        return next(p for p in self.planes if p.role == role)

    @property
    def installed(self) -> bool:
        """--installed: the run certifies the cluster's revisions and installs, tags and removes none."""
        return self.profile.certifies_installed

    @property
    def run_labels(self) -> dict[str, str]:
        return {RUN_ID_LABEL: self.run_id}

    @property
    def workload_namespaces(self) -> list[str]:
        """Namespaces the run puts its workloads in: every app namespace and the egress scenario's."""
        return [*(app for p in self.planes for app in p.plane.app_namespaces), EGRESS_EXTERNAL_NAMESPACE]
