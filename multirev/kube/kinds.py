"""The resource kinds the suite reads or writes, with their REST coordinates."""

from __future__ import annotations

from dataclasses import dataclass, replace

from multirev.errors import UsageError


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def group(self) -> str:
        return self.api_version.split("/")[0] if "/" in self.api_version else ""

    @property
    def version(self) -> str:
        return self.api_version.split("/")[-1]

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


NAMESPACE = Kind("v1", "Namespace", "namespaces", False)
POD = Kind("v1", "Pod", "pods", True)
SERVICE = Kind("v1", "Service", "services", True)
ENDPOINTSLICE = Kind("discovery.k8s.io/v1", "EndpointSlice", "endpointslices", True)
CONFIGMAP = Kind("v1", "ConfigMap", "configmaps", True)
SERVICEACCOUNT = Kind("v1", "ServiceAccount", "serviceaccounts", True)
SECRET = Kind("v1", "Secret", "secrets", True)
EVENT = Kind("v1", "Event", "events", True)
NODE = Kind("v1", "Node", "nodes", False)
DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments", True)
MUTATING_WEBHOOK = Kind(
    "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", False
)
VALIDATING_WEBHOOK = Kind(
    "admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", False
)
CLUSTER_ROLE = Kind("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", False)
CLUSTER_ROLE_BINDING = Kind("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", False)
ROLE = Kind("rbac.authorization.k8s.io/v1", "Role", "roles", True)
ROLE_BINDING = Kind("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", True)
CRD = Kind("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", False)
PDB = Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", True)
HPA = Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True)
# Leader-election locks (istiod's per-revision and status ones; see facts.ISTIOD_ELECTION_IDS). Not in ALL.
LEASE = Kind("coordination.k8s.io/v1", "Lease", "leases", True)
# installed-state IstioOperator, written by istioctl < 1.21 (istio@1.21.0:releasenotes/notes/drop-iop.yaml)
ISTIO_OPERATOR = Kind("install.istio.io/v1alpha1", "IstioOperator", "istiooperators", True)

# Istio networking config. networking.istio.io/v1beta1 is served from 1.18 (CRDs: v1alpha3, v1beta1) through
# 1.30 (v1alpha3, v1beta1, v1: istio@1.30.3:manifests/charts/base/files/crd-all.gen.yaml), so the suite reads
# and writes v1beta1; release samples written for other served versions are accepted too.
GATEWAY = Kind("networking.istio.io/v1beta1", "Gateway", "gateways", True)
VIRTUAL_SERVICE = Kind("networking.istio.io/v1beta1", "VirtualService", "virtualservices", True)
DESTINATION_RULE = Kind("networking.istio.io/v1beta1", "DestinationRule", "destinationrules", True)
SERVICE_ENTRY = Kind("networking.istio.io/v1beta1", "ServiceEntry", "serviceentries", True)
ISTIO_CONFIG: tuple[Kind, ...] = (GATEWAY, VIRTUAL_SERVICE, DESTINATION_RULE, SERVICE_ENTRY)

# Gateway API (the `gateway-api` feature). Not in ALL: its Gateway shares a kind name with Istio's, which by_kind
# answers. v1 is what Istio 1.29 and later watch (pkg/config/schema/gvk/resources.gen.go@1.29.0); 1.18 and 1.19 read
# v1beta1, which the standard CRDs of v1.5.1 and v1.6.0 still serve.
K8S_GATEWAY = Kind("gateway.networking.k8s.io/v1", "Gateway", "gateways", True)
HTTP_ROUTE = Kind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes", True)
GATEWAY_CLASS = Kind("gateway.networking.k8s.io/v1", "GatewayClass", "gatewayclasses", False)
# The standard channel's install manifest also holds an admission policy (config/crd/standard/
# gateway.networking.k8s.io_vap_safeupgrades.yaml@v1.5.1).
VALIDATING_ADMISSION_POLICY = Kind("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy",
                                   "validatingadmissionpolicies", False)
VALIDATING_ADMISSION_POLICY_BINDING = Kind("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding",
                                           "validatingadmissionpolicybindings", False)
GATEWAY_API: tuple[Kind, ...] = (K8S_GATEWAY, HTTP_ROUTE, GATEWAY_CLASS)

ALL: tuple[Kind, ...] = (
    NAMESPACE, POD, SERVICE, CONFIGMAP, SERVICEACCOUNT, SECRET, EVENT, NODE, DEPLOYMENT,
    MUTATING_WEBHOOK, VALIDATING_WEBHOOK, CLUSTER_ROLE, CLUSTER_ROLE_BINDING, ROLE, ROLE_BINDING,
    CRD, PDB, HPA, ISTIO_OPERATOR, *ISTIO_CONFIG,
)
_BY_KEY = {(k.api_version, k.kind): k for k in ALL}
for _istio in ISTIO_CONFIG:
    for _served in ("v1alpha3", "v1"):
        _BY_KEY[(f"networking.istio.io/{_served}", _istio.kind)] = _istio
for _extra in (*GATEWAY_API, VALIDATING_ADMISSION_POLICY, VALIDATING_ADMISSION_POLICY_BINDING):
    _BY_KEY[(_extra.api_version, _extra.kind)] = _extra
for _beta in (K8S_GATEWAY, HTTP_ROUTE, GATEWAY_CLASS):
    _BY_KEY[("gateway.networking.k8s.io/v1beta1", _beta.kind)] = _beta
_BY_KIND = {k.kind: k for k in (*ALL, LEASE)}


def lookup(api_version: str, kind: str) -> Kind:
    found = _BY_KEY.get((api_version, kind))
    if found is None:
        raise UsageError(f"the suite does not know resource {api_version} {kind}")
    return found


def of(obj: dict) -> Kind:
    """The object's kind, addressed at the API version the object itself names."""
    found = lookup(obj["apiVersion"], obj["kind"])
    return found if found.api_version == obj["apiVersion"] else replace(found, api_version=obj["apiVersion"])


def by_kind(kind: str) -> Kind:
    return _BY_KIND[kind]
