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
    docs = []
    for doc in _load(source_path(declared, samples_dir), tuple(sorted((variables or {}).items()))):
        doc: dict[str, Any] = copy.deepcopy(doc)
        meta = doc.setdefault("metadata", {})
        meta["namespace"] = namespace
        meta["labels"] = {**(meta.get("labels") or {}), **(labels or {})}
        docs.append(doc)
    return docs


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
