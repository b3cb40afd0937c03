"""Were an app namespace's pods injected by the intended revision, with its proxy version, and ready?"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from multirev.istio import facts
from multirev.kube.objects import Obj, annotations_of, labels_of, name_of
from multirev.profile import ControlPlane


@dataclass
class NamespaceState:
    namespace: Obj | None
    deployments: list[Obj]
    pods: list[Obj]
    wait_problem: str | None = None
    running_versions: dict[str, str] = field(default_factory=dict)  # pod -> version its proxy reports (digests)


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
    wanted = facts.injection_labels(plane.revision, plane.tag)
    problems = [f"Namespace {name} has {key}={labels.get(key)}, expected {value}"
                for key, value in wanted.items() if labels.get(key) != value]
    if facts.INJECTION_LABEL in labels and facts.REV_LABEL in labels:
        decides = f"tag {plane.tag} does not decide injection there; remove the istio-injection label" \
            if facts.REV_LABEL in wanted else f"remove the {facts.REV_LABEL} label"
        problems.append(f"Namespace {name} carries both istio-injection={labels[facts.INJECTION_LABEL]} and "
                        f"istio.io/rev={labels[facts.REV_LABEL]}: istio-injection wins, so {decides}")
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
        problems += check_pod(plane, name, pod, state.running_versions.get(name_of(pod)))
    if state.wait_problem and not problems:
        problems.append(state.wait_problem)
    return problems


def _proxy_version_problems(plane: ControlPlane, ref: str, image: str, running_version: str | None) -> list[str]:
    """The version the image's tag names (a `-distroless` or `-debug` variant is the same version), else, for an
    image pinned by digest, the one the proxy reports."""
    version = facts.image_version(image)
    if version:
        if version == str(plane.version):
            return []
        return [f"{ref} runs proxy {image}, whose version {version} differs from its control plane {plane.revision} "
                f"(Istio {plane.version})"]
    if running_version is None:
        return [f"{ref} runs proxy {image}, pinned by digest, and its version could not be read from the proxy "
                f"(`{' '.join(facts.PROXY_VERSION_COMMAND)}` in {facts.PROXY_CONTAINER})"]
    if running_version != str(plane.version):
        return [f"{ref} runs proxy {image}, pinned by digest, which reports version {running_version}; its control "
                f"plane {plane.revision} is Istio {plane.version}"]
    return []


def needs_running_version(pod: Obj) -> bool:
    """The pod's proxy image names no version (pinned by digest): its version must be read from the proxy."""
    proxy = proxy_container(pod)
    return proxy is not None and not facts.image_version(proxy.get("image", ""))


def proxy_version_from(output: str) -> str | None:
    """The version in `pilot-agent version --short` output ("client version: 1.30.3"; istio@1.30.3:
    pkg/version/cobra.go), or None."""
    for line in output.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "client version" and value.strip():
            return value.strip()
    return None


def failed_pod(ref: str, pod: Obj) -> str | None:
    """A pod that ended (phase Failed: evicted by the kubelet, or its containers exited and it does not restart) is
    named as such, with the kubelet's reason, rather than judged as one that is not ready yet
    (kubernetes@v1.35.4: pkg/kubelet/eviction/helpers.go Reason "Evicted", set with its message on the pod)."""
    status = pod.get("status") or {}
    if status.get("phase") != "Failed":
        return None
    reason, message = status.get("reason") or "", (status.get("message") or "").strip()
    if reason == "Evicted":
        return f"{ref} was evicted by the kubelet ({message or 'no message'}): the node ran short of a resource"
    return f"{ref} has failed (phase Failed{f', reason {reason}' if reason else ''}{f': {message}' if message else ''})"


def check_pod(plane: ControlPlane, ns: str, pod: Obj, running_version: str | None = None) -> list[str]:
    """`running_version`: what the proxy itself reports (`proxy_version_from`), read where the image is pinned by
    digest and so names no version."""
    ref = f"Pod {ns}/{name_of(pod)}"
    if (failed := failed_pod(ref, pod)) is not None:
        return [failed]
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
        problems += _proxy_version_problems(plane, ref, proxy.get("image", ""), running_version)
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))
    if not ready:
        problems.append(f"{ref} is not ready")
    return problems
