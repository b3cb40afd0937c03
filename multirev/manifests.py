"""Load manifests: the project's own (manifests/) or an Istio release's samples, placed into a namespace.

A declared manifest is either a path under manifests/ or `samples:<path>`, a path under the samples/
folder of the control plane's Istio release (the simulated backend has Bookinfo-shaped stand-ins under
manifests/simulated-samples/). The project's own files may use ${REVISION}, ${TAG} and ${HOST}.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from string import Template
from typing import Any

import yaml

from multirev.kube.objects import Obj
from multirev.paths import MANIFESTS

SAMPLES_PREFIX = "samples:"


def source_path(declared: str, samples_dir: Path) -> Path:
    if declared.startswith(SAMPLES_PREFIX):
        return samples_dir / declared.removeprefix(SAMPLES_PREFIX)
    return MANIFESTS / declared


@cache
def _load(path: Path, variables: tuple[tuple[str, str], ...]) -> tuple[Obj, ...]:
    text = Template(path.read_text()).safe_substitute(dict(variables))
    return tuple(d for d in yaml.safe_load_all(text) if d)


def render(declared: str, namespace: str, labels: dict[str, str] | None = None, *,
           variables: dict[str, str] | None = None, samples_dir: Path = MANIFESTS / "simulated-samples") -> list[Obj]:
    """The manifest's objects in `namespace`, each labelled with `labels`, and so are the pods of its workloads
    (`labels_pod_template`)."""
    docs = []
    for doc in _load(source_path(declared, samples_dir), tuple(sorted((variables or {}).items()))):
        doc: dict[str, Any] = copy.deepcopy(doc)
        meta = doc.setdefault("metadata", {})
        meta["namespace"] = namespace
        meta["labels"] = {**(meta.get("labels") or {}), **(labels or {})}
        docs.append(labels_pod_template(doc, labels or {}))
    return docs


# Kinds whose spec.template is a pod template (k8s.io/api@v0.35.4 apps/v1, batch/v1).
POD_TEMPLATE_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})


def labels_pod_template(obj: Obj, labels: dict[str, str]) -> Obj:
    """Put `labels` (the run-id label) on a workload's pod template too, so that its pods can be told from the pods
    of workloads that were in a borrowed app namespace before the run: checks judge and restarts touch only the
    run's (multirev/observe.py). Only the template: a Deployment's selector must match the template's labels
    (kubernetes@v1.35.4:pkg/apis/apps/validation/validation.go ValidateDeploymentSpec), which more labels on the
    template keep true, and the selector is immutable. Istio's injector selects pods by `sidecar.istio.io/inject`
    and `istio.io/rev` only (istio@1.29.6 and @1.30.3:manifests/charts/istio-control/istio-discovery/templates/
    mutatingwebhook.yaml objectSelector) and hands the rest to the proxy as metadata (files/injection-template.yaml
    downward API `metadata.labels`), so another label changes nothing there."""
    if obj.get("kind") in POD_TEMPLATE_KINDS and labels:
        template = (obj.get("spec") or {}).get("template")
        if isinstance(template, dict):
            meta = template.setdefault("metadata", {})
            meta["labels"] = {**(meta.get("labels") or {}), **labels}
    return obj


def own_gateway(obj: Obj, revision: str) -> Obj:
    """A Gateway whose selector names no revision also selects the other revision's gateway pods (both carry
    `istio: ingressgateway`). `istioctl analyze` then reports two such Gateways in different namespaces with
    the same port and host as IST0145 ConflictingGateways, an Error (istio@1.30.3:pkg/config/analysis/
    analyzers/gateway/conflictinggateway.go; msg/messages.yaml), although discoverySelectors keep them
    apart at run time. Selecting the revision's own gateway pods (labelled istio.io/rev) removes the overlap."""
    if obj.get("kind") == "Gateway":
        selector = (obj.get("spec") or {}).get("selector")
        if selector and "istio.io/rev" not in selector:
            obj["spec"]["selector"] = {**selector, "istio.io/rev": revision}
    return obj


def is_gateway_config(obj: Obj) -> bool:
    """A Gateway, or a VirtualService bound to a gateway: any `gateways` entry but the reserved `mesh`, which
    stands for the sidecars and is the default when the field is omitted (istio/api@1.30.3:networking/v1alpha3/
    virtual_service.proto `gateways`). Such config configures the revision's shared gateway pods rather than the
    namespace's workloads, so a revision needs it once: the same Gateway in two app namespaces is IST0145
    ConflictingGateways, an Error (same selector and port, a host in common: istio@1.30.3:pkg/config/analysis/
    analyzers/gateway/conflictinggateway.go, hosts compared by pilot/pkg/model/gateway.go CheckDuplicates), and
    both namespaces' routes would compete for the one virtual host."""
    if obj.get("kind") in ("Gateway", "HTTPRoute"):  # Istio's or the Gateway API's: one gateway per revision
        return True
    if obj.get("kind") == "VirtualService":
        return any(gw != "mesh" for gw in (obj.get("spec") or {}).get("gateways") or [])
    return False


ISTIO_GROUP_SUFFIX = ".istio.io"
GATEWAY_API_GROUP = "gateway.networking.k8s.io"


def is_istio_config(obj: Obj) -> bool:
    """Istio's own config (networking.istio.io and friends), told apart from the Gateway API's Gateway by its group."""
    return str(obj.get("apiVersion", "")).split("/")[0].endswith(ISTIO_GROUP_SUFFIX)


def is_gateway_api(obj: Obj) -> bool:
    return str(obj.get("apiVersion", "")).split("/")[0] == GATEWAY_API_GROUP


def backed_subsets(obj: Obj, workload_labels: list[dict[str, str]]) -> Obj:
    """Drop DestinationRule subsets whose labels no workload carries. Bookinfo's destination-rule-all.yaml
    names ratings v2-mysql and v2-mysql-vm, which bookinfo.yaml does not deploy, and `istioctl analyze`
    reports each as IST0173 DestinationRuleSubsetNotSelectPods, an Error (istio@1.30.3:pkg/config/analysis/
    analyzers/destinationrule/subset.go; msg/messages.yaml)."""
    if obj.get("kind") == "DestinationRule" and (obj.get("spec") or {}).get("subsets"):
        obj["spec"]["subsets"] = [
            s for s in obj["spec"]["subsets"]
            if any(all(labels.get(k) == v for k, v in (s.get("labels") or {}).items()) for labels in workload_labels)]
    return obj


def workload_labels(declared: list[str], samples_dir: Path, variables: dict[str, str] | None = None) -> list[dict]:
    """Pod template labels of every Deployment in the declared manifests."""
    found = []
    for item in declared:
        for doc in _load(source_path(item, samples_dir), tuple(sorted((variables or {}).items()))):
            if doc.get("kind") == "Deployment":
                found.append(((doc.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {})
    return found
