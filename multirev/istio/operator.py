"""Render the IstioOperator document for one revision from manifests/istio/revision-iop.yaml."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from multirev.istio import facts
from multirev.istio.capabilities import supports
from multirev.paths import MANIFESTS
from multirev.plan import PlanePlan

TEMPLATE = MANIFESTS / "istio" / "revision-iop.yaml"


@cache
def _template() -> dict[str, Any]:
    return yaml.safe_load(TEMPLATE.read_text())


def iop_name(plan: PlanePlan) -> str:
    """metadata.name of the revision's IstioOperator (also the owning-resource label istioctl sets)."""
    return f"{plan.plane.role}-{plan.plane.revision}"


def render(plan: PlanePlan, *, mesh_config: dict[str, Any] | None = None,
           run_labels: dict[str, str] | None = None, backend_settings: dict[str, Any] | None = None,
           pin_node_ports: bool = False) -> dict[str, Any]:
    """`pin_node_ports`: the backend's `pins_node_ports` (kind only); without it the API server allocates the
    gateway's NodePorts, so a port another Service holds cannot refuse the install half-way."""
    plane = plan.plane
    doc = copy.deepcopy(_template())
    doc["metadata"].update(name=iop_name(plan), namespace=plane.namespace)
    if run_labels:
        # istioctl < 1.21 saves this document as the installed-state IstioOperator with these labels
        # (istio@1.18.5:operator/cmd/mesh/install.go), so teardown can find the copy it leaves behind.
        doc["metadata"]["labels"] = dict(run_labels)
    spec = doc["spec"]
    # The default revision is installed without one (facts.DEFAULT_REVISION): `revision: default` would make a
    # revision literally named so, whose objects are named istiod-default.
    spec.update(revision="" if plane.revision == facts.DEFAULT_REVISION else plane.revision,
                namespace=plane.namespace)
    spec["values"]["global"]["istioNamespace"] = plane.namespace
    if plane.variant:
        # istiod's and the proxies' images get `-<variant>` (istio@1.30.3: manifests/charts/istio-control/
        # istio-discovery/templates/deployment.yaml, pkg/kube/inject/inject.go updateImageTypeIfPresent).
        spec["values"]["global"]["variant"] = plane.variant
    if plan.uses_discovery_selectors:
        # istio/api mesh/v1alpha1/config.proto field 59: a list of LabelSelectors, OR-ed.
        spec["meshConfig"]["discoverySelectors"] = [{"matchLabels": plan.discovery_labels}]
        if supports(plane.version, "enhanced-scoping-env"):
            # Off by default before 1.22 (pilot/pkg/features): without it discoverySelectors do not
            # scope Istio config objects, so the other istiod would still see them.
            spec["values"]["pilot"]["env"]["ENABLE_ENHANCED_RESOURCE_SCOPING"] = "true"
    if not supports(plane.version, "istiod-ip-autoallocate"):
        spec["meshConfig"]["defaultConfig"]["proxyMetadata"]["ISTIO_META_DNS_AUTO_ALLOCATE"] = "true"
    if mesh_config:
        spec["meshConfig"].update(mesh_config)
    gateway = spec["components"]["ingressGateways"][0]
    gateway["name"] = plan.gateway_name
    egress = spec["components"]["egressGateways"][0]
    egress["name"] = plan.egress_gateway_name
    if plan.layout == "shared":
        # A gateway Service selects pods by the gateway's labels (gateways/istio-ingress templates/
        # service.yaml), so two gateways both labelled app=istio-ingressgateway in one namespace would each
        # send traffic to both revisions' pods: give each its own app label.
        gateway["label"]["app"] = plan.gateway_name
        egress["label"]["app"] = plan.egress_gateway_name
    ports = {p["name"]: p for p in gateway["k8s"]["service"]["ports"]}
    for name, scheme in (("http2", "http"), ("https", "https")):
        if pin_node_ports:
            ports[name]["nodePort"] = plan.node_ports[scheme]
        else:
            # Left out, the API server allocates one (kubernetes@v1.35.4:pkg/registry/core/service/storage/
            # alloc.go initNodePorts); a re-install without it keeps that one (storage.go patchAllocatedValues).
            del ports[name]["nodePort"]
    if backend_settings:
        doc["spec"] = _merged(spec, backend_settings)
    return doc


def _merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = _merged(merged.get(key) or {}, value) if isinstance(value, dict) and value else value
    return merged


def write(plan: PlanePlan, folder: Path, **kwargs: Any) -> Path:
    path = folder / f"iop-{plan.plane.revision}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(render(plan, **kwargs), sort_keys=False))
    return path
