"""Holding the simulated model against the real control plane, object by object.

Both backends implement the same Cluster interface, so one set of functions reads a comparable
snapshot from either: what `istioctl install` created (kind, namespace, name, Istio labels, webhook
selectors and service references), tag webhooks, the injected pod, push log lines, analyze findings
and what uninstall removed. `diff` lists every difference as one line; the self-test requires each
to be listed in KNOWN_DIFFERENCES (docs/model-vs-real.md) with its justification.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from multirev.backends.base import Cluster
from multirev.istio import facts
from multirev.kube import kinds
from multirev.kube.objects import Obj, annotations_of, labels_of, name_of, namespace_of
from multirev.plan import RUN_ID_LABEL

# Labels that carry Istio meaning: revision, tag, component ownership, and the `app`/`istio` selectors
# Services, webhooks and gateways use. Helm bookkeeping labels (chart versions, heritage) are not compared.
COMPARED_LABELS = (facts.REV_LABEL, facts.TAG_LABEL, facts.COMPONENT_LABEL, "app", "istio",
                   "install.operator.istio.io/owning-resource")
# Runtime objects, and namespaces (the suite's and the tests' own, never istioctl's).
RUNTIME_KINDS = {kinds.EVENT.kind, kinds.POD.kind, kinds.NAMESPACE.kind}
Key = tuple[str, str, str]  # kind, namespace ("" if cluster-scoped), name


def key_of(obj: Obj) -> Key:
    return obj.get("kind", "?"), namespace_of(obj) or "", name_of(obj)


def _webhooks(obj: Obj) -> list[dict[str, Any]]:
    out = []
    for hook in obj.get("webhooks") or []:
        service = (hook.get("clientConfig") or {}).get("service") or {}
        out.append({"name": hook.get("name"),
                    "service": f"{service.get('namespace')}/{service.get('name')}:{service.get('path')}",
                    "namespaceSelector": hook.get("namespaceSelector") or {},
                    "objectSelector": hook.get("objectSelector") or {}})
    return sorted(out, key=lambda h: str(h["name"]))


def describe(obj: Obj) -> dict[str, Any]:
    labels = labels_of(obj)
    shown: dict[str, Any] = {"labels": {k: labels[k] for k in COMPARED_LABELS if k in labels}}
    if obj.get("kind") in (kinds.MUTATING_WEBHOOK.kind, kinds.VALIDATING_WEBHOOK.kind):
        shown["webhooks"] = _webhooks(obj)
    return shown


def istio_objects(cluster: Cluster) -> dict[Key, dict[str, Any]]:
    """Everything istioctl made: objects labelled with a component, revision or tag, minus the suite's own."""
    found: dict[Key, dict[str, Any]] = {}
    for kind in kinds.ALL:
        if kind.kind in RUNTIME_KINDS:
            continue
        for obj in cluster.list(kind):
            labels = labels_of(obj)
            if RUN_ID_LABEL in labels:
                continue
            if any(k in labels for k in (facts.COMPONENT_LABEL, facts.REV_LABEL, facts.TAG_LABEL)):
                obj = {**obj, "kind": kind.kind}
                found[key_of(obj)] = describe(obj)
    return found


def injected_pod(pod: Obj) -> dict[str, Any]:
    """What injection made of a pod: containers and images, Istio annotations and labels."""
    spec = pod.get("spec") or {}

    def containers(items: list[Obj]) -> list[str]:
        return [f"{c.get('name')}={c.get('image')}" + (f" restartPolicy={c['restartPolicy']}"
                                                       if c.get("restartPolicy") else "") for c in items]

    return {"containers": containers(spec.get("containers") or []),
            "initContainers": containers(spec.get("initContainers") or []),
            "annotations": sorted(k for k in annotations_of(pod) if "istio" in k),
            "labels": {k: v for k, v in labels_of(pod).items() if "istio" in k}}


_NUMBERS = re.compile(r"\b\d+(?:\.\d+)?(?:ms|s|µs|m)?\b")


def push_shape(line: str) -> str:
    """A push line with counters and durations blanked, so the two backends' lines compare by form."""
    text = line.split("Push debounce", 1)[-1]
    return "Push debounce" + _NUMBERS.sub("N", text).strip()


def analyze_findings(output: str) -> list[str]:
    """`Error [IST0101] (VirtualService ns/name) ...` -> `Error IST0101 VirtualService ns/name`."""
    findings = []
    for line in output.splitlines():
        match = re.match(r"^(Error|Warning|Info) \[(IST\d+)\] \((\S+) ([^)\s]+)", line)
        if match:
            findings.append(" ".join(match.groups()))
    return sorted(set(findings))


@dataclass(frozen=True)
class Difference:
    area: str  # install, tags, pod, push, analyze, uninstall, purge
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.area}] {self.subject}: {self.detail}"


def diff_objects(area: str, model: dict[Key, Any], real: dict[Key, Any]) -> list[Difference]:
    out = []
    for key in sorted(set(model) | set(real)):
        subject = "/".join(part for part in key if part)
        if key not in real:
            out.append(Difference(area, subject, "only in the model"))
        elif key not in model:
            out.append(Difference(area, subject, "only on the real cluster"))
        elif model[key] != real[key]:
            for field in sorted(set(model[key]) | set(real[key])):
                if model[key].get(field) != real[key].get(field):
                    out.append(Difference(area, subject, f"{field}: model {model[key].get(field)!r} vs real "
                                                          f"{real[key].get(field)!r}"))
    return out


def diff_values(area: str, subject: str, model: Any, real: Any) -> list[Difference]:
    """Dicts field by field, lists item by item (as sets), anything else as a whole."""
    if model == real:
        return []
    if isinstance(model, dict) and isinstance(real, dict):
        out = []
        for field in sorted(set(model) | set(real)):
            out += diff_values(area, f"{subject} {field}", model.get(field), real.get(field))
        return out
    if isinstance(model, list) and isinstance(real, list):
        return ([Difference(area, subject, f"only in the model: {item}") for item in model if item not in real]
                + [Difference(area, subject, f"only on the real cluster: {item}") for item in real
                   if item not in model])
    return [Difference(area, subject, f"model {model!r} vs real {real!r}")]
