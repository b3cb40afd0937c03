"""Were an app namespace's pods injected by the intended revision, with its proxy version, and ready?"""

from __future__ import annotations

import json
from dataclasses import dataclass

from multirev.istio import facts
from multirev.kube.objects import Obj, annotations_of, labels_of, name_of
from multirev.profile import ControlPlane


@dataclass
class NamespaceState:
    namespace: Obj | None
    deployments: list[Obj]
    pods: list[Obj]
    wait_problem: str | None = None


def proxy_container(pod: Obj) -> Obj | None:
    """istio-proxy is a container, or an initContainer with restartPolicy Always in native-sidecar mode
    (files/injection-template.yaml since 1.19)."""
    spec = pod.get("spec", {})
    for container in spec.get("containers", []):
        if container["name"] == facts.PROXY_CONTAINER:
            return container
    for container in spec.get("initContainers", []):
        if container["name"] == facts.PROXY_CONTAINER and container.get("restartPolicy") == "Always":
            return container
    return None


def check_namespace_labels(plane: ControlPlane, name: str, namespace: Obj | None) -> list[str]:
    if namespace is None:
        return [f"Namespace {name} does not exist"]
    labels = labels_of(namespace)
    problems = []
    if labels.get(facts.REV_LABEL) != plane.tag:
        problems.append(f"Namespace {name} has istio.io/rev={labels.get(facts.REV_LABEL)}, expected {plane.tag}")
    if facts.INJECTION_LABEL in labels and facts.REV_LABEL in labels:
        problems.append(f"Namespace {name} carries both istio-injection={labels[facts.INJECTION_LABEL]} and "
                        f"istio.io/rev={labels[facts.REV_LABEL]}: istio-injection wins, so tag {plane.tag} does not "
                        f"decide injection there; remove the istio-injection label")
    return problems


def check_pods(plane: ControlPlane, name: str, state: NamespaceState, *, judge_labels: bool = True) -> list[str]:
    """The namespace's labels (unless `judge_labels` is false), pods its Deployments failed to create, and each pod."""
    problems = check_namespace_labels(plane, name, state.namespace) if judge_labels else []
    for deploy in state.deployments:
        for condition in deploy.get("status", {}).get("conditions", []):
            if condition["type"] == "ReplicaFailure" and condition.get("status") == "True":
                problems.append(f"Deployment {name}/{name_of(deploy)} cannot create pods: {condition.get('message')}")
    if not state.pods and not problems:
        problems.append(f"no pods in namespace {name}")
    for pod in state.pods:
        problems += check_pod(plane, name, pod)
    if state.wait_problem and not problems:
        problems.append(state.wait_problem)
    return problems


def check_pod(plane: ControlPlane, ns: str, pod: Obj) -> list[str]:
    ref = f"Pod {ns}/{name_of(pod)}"
    annotations = annotations_of(pod)
    raw_status = annotations.get(facts.SIDECAR_STATUS_ANNOTATION)
    if raw_status is None:
        return [f"{ref} has no sidecar (no {facts.SIDECAR_STATUS_ANNOTATION} annotation)"]
    problems = []
    injected_by = annotations.get(facts.REV_ANNOTATION)
    if injected_by != plane.revision:
        problems.append(f"{ref} was injected by revision {injected_by}, expected {plane.revision} (tag {plane.tag})")
    try:
        status_revision = json.loads(raw_status).get("revision")
    except (ValueError, AttributeError):
        status_revision = None
    if status_revision != plane.revision:
        problems.append(f"{ref} has {facts.SIDECAR_STATUS_ANNOTATION} revision {status_revision}, "
                        f"expected {plane.revision}")
    proxy = proxy_container(pod)
    if proxy is None:
        problems.append(f"{ref} has no {facts.PROXY_CONTAINER} container")
    else:
        tag = facts.image_tag(proxy.get("image", ""))
        if tag != str(plane.version):
            problems.append(f"{ref} runs proxy {proxy.get('image')}, whose version {tag or '?'} differs from its "
                            f"control plane {plane.revision} (Istio {plane.version})")
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))
    if not ready:
        problems.append(f"{ref} is not ready")
    return problems
