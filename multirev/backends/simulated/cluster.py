"""The simulated cluster: an object store plus the controllers and admission a kind cluster runs.

Modelled: Deployments create Pods (through mutating admission), Pods become ready after a delay
of logical time, rollout restart replaces Pods, failed Pod creation shows up as the Deployment's
ReplicaFailure condition and a FailedCreate Event, as the Kubernetes deployment controller does
(kubernetes@v1.33.0:pkg/controller/deployment/progress.go copies the ReplicaSet's ReplicaFailure).
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import string
from typing import TYPE_CHECKING, Any

from multirev.backends.base import Endpoint, HttpResponse
from multirev.backends.simulated.hooks import Hooks
from multirev.backends.simulated.store import ObjectStore
from multirev.clock import LogicalClock
from multirev.commands import Completed
from multirev.errors import AdmissionRefused
from multirev.istio import facts
from multirev.kube import kinds
from multirev.kube.kinds import Kind
from multirev.kube.objects import Obj, annotations_of, labels_of, matches_selector
from multirev.probes import ALWAYS_REJECT_ANNOTATION, DENIED

if TYPE_CHECKING:
    from multirev.backends.simulated.mesh import MeshModel
    from multirev.backends.simulated.traffic import Router

ISTIO_CONFIG_KINDS = {k.kind for k in kinds.ISTIO_CONFIG}


def is_istio_config(kind: Kind) -> bool:
    """Istio networking config (Gateway API's Gateway shares a kind name with Istio's)."""
    return kind.kind in ISTIO_CONFIG_KINDS and kind.api_version.startswith("networking.istio.io/")

POD_START_SECONDS = 4.0
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", "local-path-storage")


class AdmissionDenied(Exception):
    """A mutating webhook rejected (or could not be called for) a Pod."""


class Refused(Exception):
    """The API server refused to store an object; the text is the server's message."""


# --service-node-port-range's default (kubeadm, hence kind, sets none). Dynamic allocation prefers the ports above
# the static band of min(max(16, size/32), 128) ports, which it leaves to explicit requests
# (kubernetes@v1.35.4:pkg/registry/core/service/portallocator/allocator.go calculateRangeOffset).
NODE_PORT_RANGE = (30000, 32767)
NODE_PORT_STATIC_BAND = min(max(16, (NODE_PORT_RANGE[1] - NODE_PORT_RANGE[0] + 1) // 32), 128)


FORWARD_PORT_BASE = 42000  # the model's stand-ins for the loopback ports a port-forward listens on


class SimulatedCluster:
    def __init__(self, clock: LogicalClock, rng: random.Random, kubernetes_version: str, hooks: Hooks) -> None:
        self.clock = clock
        self.rng = rng
        self.hooks = hooks
        self.store = ObjectStore()
        self._kubernetes_version = kubernetes_version
        self._ready_at: dict[tuple[str, str], float | None] = {}
        self._pod_ips: dict[tuple[str, str], str] = {}  # pod -> when it becomes ready (None: never)
        self._gone_at: dict[tuple[str, str], float] = {}  # terminating pod -> when its grace period ends
        self.mesh: MeshModel | None = None  # attached by the backend
        self.router: Router | None = None  # attached by the backend
        self.host_to_node_port: dict[int, int] = {}  # kind extraPortMappings, set by the backend
        # host port -> (namespace, Service, port name): a port-forward to a Service (Backend.service_endpoint)
        self.service_forwards: dict[int, tuple[str, str, str]] = {}
        # Its own generator, seeded from the run's without drawing from it, so allocating NodePorts leaves every
        # other seeded choice (pod names, routes, weights) as it was.
        self._node_port_rng = random.Random(repr(rng.getstate()))
        for ns in SYSTEM_NAMESPACES:
            self.store.put(kinds.NAMESPACE, {"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}})
        self.store.put(kinds.NODE, {"metadata": {"name": "multirev-control-plane"},
                                    "status": {"nodeInfo": {"kubeletVersion": kubernetes_version}}})

    # -- the Cluster interface ---------------------------------------------------------------
    def apply(self, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        kind = kinds.of(obj)
        meta = obj.setdefault("metadata", {})
        existing = self.store.raw(kind, meta["name"], meta.get("namespace"))
        if kind is kinds.NAMESPACE:
            labels = {**(meta.get("labels") or {}), "kubernetes.io/metadata.name": meta["name"]}
            meta["labels"] = self.hooks.apply("namespace_labels", labels, name=meta["name"])
        if kind is kinds.POD:
            return self.create_pod(obj)
        if is_istio_config(kind):
            obj = self.hooks.apply("istio_config", obj)
        if existing is not None and kind is kinds.DEPLOYMENT:
            obj.setdefault("status", existing.get("status", {}))
        if kind is kinds.SERVICE:
            self._node_ports(obj, existing)
        stored = self.store.put(kind, obj)
        if kind is kinds.DEPLOYMENT:
            self._sync_deployment(stored["metadata"]["namespace"], stored["metadata"]["name"])
        if (is_istio_config(kind) or kind.kind == "HTTPRoute") and self.mesh is not None:
            self.mesh.on_config_change(stored)
        return self.store.get(kind, meta["name"], meta.get("namespace")) or stored

    def get(self, kind: Kind, name: str, namespace: str | None = None) -> Obj | None:
        self.advance()
        return self.store.get(kind, name, namespace)

    def list(self, kind: Kind, namespace: str | None = None, labels: dict[str, str] | None = None) -> list[Obj]:
        self.advance()
        return self.store.list(kind, namespace, labels)

    def label(self, kind: Kind, name: str, labels: dict[str, str | None], namespace: str | None = None) -> None:
        obj = self.store.get(kind, name, namespace)
        if obj is None:
            raise KeyError(f"{kind.kind} {namespace + '/' if namespace else ''}{name} not found")
        merged = {**labels_of(obj), **labels}
        merged = {k: v for k, v in merged.items() if v is not None}
        if kind is kinds.NAMESPACE:
            merged = self.hooks.apply("namespace_labels", merged, name=name)
        obj["metadata"]["labels"] = merged
        self.store.put(kind, obj)

    def replace_spec(self, kind: Kind, name: str, spec: dict, namespace: str | None = None) -> None:
        obj = self.store.get(kind, name, namespace)
        if obj is None:
            raise KeyError(f"{kind.kind} {namespace + '/' if namespace else ''}{name} not found")
        obj["spec"] = copy.deepcopy(spec)
        self.store.put(kind, obj)

    def replace_fields(self, kind: Kind, name: str, fields: dict[str, Any], namespace: str | None = None) -> None:
        obj = self.store.get(kind, name, namespace)
        if obj is None:
            raise KeyError(f"{kind.kind} {namespace + '/' if namespace else ''}{name} not found")
        for path, value in fields.items():
            *parents, last = path.split("/")
            target = obj
            for part in parents:
                target = target.setdefault(part, {})
            target[last] = copy.deepcopy(value)
        self.store.put(kind, obj)

    def create(self, obj: Obj) -> Obj:
        kind = kinds.of(obj)
        meta = obj["metadata"]
        if self.store.get(kind, meta["name"], meta.get("namespace")) is not None:
            raise Refused(f"{kind.kind} {meta['name']} already exists")
        return self.store.put(kind, obj)

    def dry_run_create(self, obj: Obj) -> Obj:
        """Admission without storage: a Pod through the mutating webhooks, Istio config through the validating ones
        (the model validates only on this path; `apply` stores config unvalidated, a documented simplification)."""
        obj = copy.deepcopy(obj)
        kind = kinds.of(obj)
        namespace = obj["metadata"].get("namespace")
        try:
            if kind.namespaced and self.store.raw(kinds.NAMESPACE, namespace) is None:
                raise AdmissionDenied(f'namespaces "{namespace}" not found')
            if kind is kinds.POD:
                return self._mutate(obj, labels_of(self.store.raw(kinds.NAMESPACE, namespace)))
            if is_istio_config(kind):
                self._validate(obj)
        except AdmissionDenied as denied:
            raise AdmissionRefused(str(denied)) from denied
        return obj

    def _validate(self, obj: Obj) -> None:
        """Every ValidatingWebhookConfiguration's webhooks whose objectSelector matches, in name order. A webhook that
        cannot be called refuses under failurePolicy Fail (the API's default) and is skipped under Ignore
        (apiserver@v0.35.3: pkg/admission/plugin/webhook/validating/dispatcher.go); istiod denies config carrying
        the always-reject annotation (multirev/probes.py)."""
        for config in sorted(self.store.raw_list(kinds.VALIDATING_WEBHOOK), key=lambda c: c["metadata"]["name"]):
            for webhook in config.get("webhooks", []):
                if not matches_selector(labels_of(obj), webhook.get("objectSelector")) \
                        or not _rules_match(webhook.get("rules"), obj):
                    continue
                try:
                    self._webhook_backend(webhook)
                except AdmissionDenied:
                    if webhook.get("failurePolicy", "Fail") == "Ignore":
                        continue
                    raise
                if ALWAYS_REJECT_ANNOTATION in annotations_of(obj):
                    raise AdmissionDenied(f'admission webhook "{webhook["name"]}" {DENIED}: configuration is invalid: '
                                          f'"{ALWAYS_REJECT_ANNOTATION}" annotation found, rejecting')

    def delete(self, kind: Kind, name: str, namespace: str | None = None) -> bool:
        if kind is kinds.NAMESPACE:
            for k in (*kinds.ALL, kinds.K8S_GATEWAY, kinds.HTTP_ROUTE):  # everything in it goes with it
                if k.namespaced:
                    for obj in self.store.raw_list(k, name):
                        self.store.delete(k, obj["metadata"]["name"], name)
        if kind is kinds.DEPLOYMENT:
            for pod in self._pods_of(namespace or "", name, terminating=True):
                self.store.delete(kinds.POD, pod["metadata"]["name"], namespace)
        if kind is kinds.CRD:
            # A deleted CRD takes every object of its kind with it (the customresourcecleanup finalizer:
            # k8s.io/apiextensions-apiserver@v0.35.4:pkg/controller/finalizer/crd_finalizer.go deleteInstances).
            for served in (k for k in kinds.ALL if f"{k.plural}.{k.group}" == name):
                for obj in self.store.raw_list(served):
                    self.delete(served, obj["metadata"]["name"], obj["metadata"].get("namespace"))
        existing = self.store.get(kind, name, namespace)
        if existing is not None and (is_istio_config(kind) or kind.kind == "HTTPRoute") and self.mesh is not None:
            self.mesh.on_config_change(existing)
        return self.store.delete(kind, name, namespace)

    def pod_logs(self, namespace: str, pod: str, container: str, tail_lines: int = 500) -> str:
        if self.mesh is None:
            return ""
        return "\n".join(self.mesh.logs_for(namespace, pod, container)[-tail_lines:])

    def exec(self, namespace: str, pod: str, container: str, command: list[str]) -> Completed:
        """Only `curl ... <url>` from a pod (the request goes through the mesh model) and `pilot-agent version --short`
        in an injected proxy (the injecting revision's version: the build its pilot-agent is) are modelled."""
        source = self.store.raw(kinds.POD, pod, namespace)
        if source is None:
            return Completed(command, 1, "", f'pods "{pod}" not found')
        if tuple(command) == facts.PROXY_VERSION_COMMAND and container == facts.PROXY_CONTAINER \
                and self.mesh is not None:
            return self.mesh.proxy_version_said(source, command)
        urls = [a for a in command if a.startswith("http://")]
        if not command or command[0] != "curl" or not urls or self.router is None:
            program = command[0] if command else ""
            return Completed(command, 126, "", f"{program}: not modelled in the simulated backend")
        response = self.router.from_pod(source, urls[-1])
        if response.status == 0:
            return Completed(command, 7, "", f"curl: (7) {response.body}")
        return Completed(command, 0, f"{response.body}\n{response.status}", "")

    def rollout_restart(self, namespace: str, deployment: str) -> None:
        obj = self.store.raw(kinds.DEPLOYMENT, deployment, namespace)
        if obj is None:
            raise KeyError(f"Deployment {namespace}/{deployment} not found")
        annotations = obj["spec"]["template"].setdefault("metadata", {}).setdefault("annotations", {})
        annotations["kubectl.kubernetes.io/restartedAt"] = f"t={self.clock.now():.0f}"
        self._sync_deployment(namespace, deployment)

    def http_get(self, endpoint: Endpoint, path: str, host: str) -> HttpResponse:
        """The host reaches a gateway through kind's port mapping to its NodePort (multirev/kind/config.py), or a
        Service through a port-forward (service_endpoint)."""
        if endpoint.port in self.service_forwards and self.router is not None:
            return self.router.via_service(*self.service_forwards[endpoint.port], path, host)
        node_port = self.host_to_node_port.get(endpoint.port)
        if node_port is None or self.router is None:
            return HttpResponse(0, {}, f"connection refused: nothing listens on {endpoint.host}:{endpoint.port}")
        return self.router.via_gateway(node_port, path, host)

    def service_endpoint(self, namespace: str, service: str, port_name: str) -> Endpoint:
        """A host port standing for a port-forward to the Service's port (as kubectl port-forward service/...)."""
        target = (namespace, service, port_name)
        for port, forwarded in self.service_forwards.items():
            if forwarded == target:
                return Endpoint("127.0.0.1", port)
        port = FORWARD_PORT_BASE + len(self.service_forwards)
        self.service_forwards[port] = target
        return Endpoint("127.0.0.1", port)

    def kubernetes_version(self) -> str:
        return self._kubernetes_version

    # -- admission ------------------------------------------------------------------------------
    def _node_ports(self, service: Obj, previous: Obj | None) -> None:
        """NodePorts as the API server assigns them, in place: a NodePort or LoadBalancer Service's ports get one
        each; a requested one must be free cluster-wide, else the Service is refused; one left out is allocated,
        or on an update kept from the port of the same name (kubernetes@v1.35.4:pkg/registry/core/service/
        storage/alloc.go initNodePorts, updateNodePorts; storage.go patchAllocatedValues)."""
        spec = service.get("spec") or {}
        kinds_with_node_ports = ("NodePort", "LoadBalancer")
        if spec.get("type") not in kinds_with_node_ports:
            return
        meta = service["metadata"]
        own = (meta.get("namespace") or "", meta["name"])
        taken = {int(p["nodePort"]) for other in self.store.raw_list(kinds.SERVICE)
                 if (other["metadata"].get("namespace") or "", other["metadata"]["name"]) != own
                 for p in (other.get("spec") or {}).get("ports") or [] if p.get("nodePort")}
        before = (previous or {}).get("spec") or {}
        kept = {p.get("name"): p["nodePort"] for p in before.get("ports") or [] if p.get("nodePort")} \
            if before.get("type") in kinds_with_node_ports else {}
        # allocateLoadBalancerNodePorts: false allocates none but still honours requests (shouldAllocateNodePorts)
        allocate = spec["type"] == "NodePort" or spec.get("allocateLoadBalancerNodePorts", True) is not False
        low, high = NODE_PORT_RANGE
        for index, port in enumerate(spec.get("ports") or []):
            if not port.get("nodePort") and port.get("name") in kept:
                port["nodePort"] = kept[port["name"]]
            wanted = port.get("nodePort")
            if wanted:
                # portallocator.go: ErrNotInRange, ErrAllocated, reported by field (alloc.go, errors.NewInvalid)
                if not low <= int(wanted) <= high:
                    reason = f"provided port is not in the valid range. The range of valid ports is {low}-{high}"
                elif int(wanted) in taken:
                    reason = "provided port is already allocated"
                else:
                    taken.add(int(wanted))
                    continue
                raise Refused(f'Service "{meta["name"]}" is invalid: spec.ports[{index}].nodePort: Invalid value: '
                              f"{wanted}: {reason}")
            if allocate:
                port["nodePort"] = self._next_node_port(taken)
                taken.add(port["nodePort"])

    def _next_node_port(self, taken: set[int]) -> int:
        """A free port, at random above the static band first, then in it (allocator/bitmap.go
        randomScanStrategyWithOffset)."""
        low, high = NODE_PORT_RANGE
        dynamic = [p for p in range(low + NODE_PORT_STATIC_BAND, high + 1) if p not in taken]
        free = dynamic or [p for p in range(low, low + NODE_PORT_STATIC_BAND) if p not in taken]
        if not free:
            raise Refused("Internal error occurred: failed to allocate a nodePort: range is full")
        return self._node_port_rng.choice(free)

    # -- controllers ---------------------------------------------------------------------------
    def advance(self) -> None:
        """Bring pod readiness and Deployment status up to the clock's time."""
        now = self.clock.now()
        for key, gone_at in list(self._gone_at.items()):
            if now >= gone_at:
                self.store.delete(kinds.POD, key[1], key[0])
                del self._gone_at[key]
                self._ready_at.pop(key, None)
        for pod in self.store.raw_list(kinds.POD):
            key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
            ready_at = self._ready_at.get(key)
            ready = ready_at is not None and now >= ready_at and key not in self._gone_at
            pod["status"] = {
                "podIP": self._pod_ips.get(key, ""),
                "phase": "Running" if ready_at is not None else "Pending",
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                "containerStatuses": [{"name": c["name"], "ready": ready, "image": c["image"]}
                                      for c in pod["spec"].get("containers", [])],
            }
        # Each Deployment's active pods, found in one pass over the pods (read on every get and list, a pass per
        # Deployment was most of the model's time); again after retiring, which ends some.
        owned = self._active_pods_by_owner()
        for deploy in self.store.raw_list(kinds.DEPLOYMENT):
            self._retire_old_pods(deploy, owned.get((deploy["metadata"]["namespace"], deploy["metadata"]["name"]), []))
        owned = self._active_pods_by_owner()
        for deploy in self.store.raw_list(kinds.DEPLOYMENT):
            pods = owned.get((deploy["metadata"]["namespace"], deploy["metadata"]["name"]), [])
            ready = sum(1 for p in pods if p["status"]["conditions"][0]["status"] == "True")
            status = deploy.setdefault("status", {})
            template_hash = self._template_hash(deploy)
            updated = sum(1 for p in pods if labels_of(p).get("pod-template-hash") == template_hash)
            status.update(replicas=len(pods), readyReplicas=ready, availableReplicas=ready,
                          updatedReplicas=updated, observedGeneration=deploy["metadata"].get("generation", 1))
        if self.mesh is not None:
            self.mesh.foreign_istiods_write_roots()  # an istiod the run did not install writes its root back
            self.mesh.gateway_api.reconcile()

    @staticmethod
    def _template_hash(deploy: Obj) -> str:
        return hashlib.sha256(json.dumps(deploy["spec"]["template"], sort_keys=True).encode()).hexdigest()[:10]

    def _current_pods(self, namespace: str, deployment: str, template_hash: str) -> list[Obj]:
        pods = self._pods_of(namespace, deployment)
        return [p for p in pods if labels_of(p).get("pod-template-hash") == template_hash]

    def _retire_old_pods(self, deploy: Obj, pods: list[Obj]) -> None:
        """`pods`: the Deployment's active pods."""
        template_hash = self._template_hash(deploy)
        current = [p for p in pods if labels_of(p).get("pod-template-hash") == template_hash]
        if sum(1 for p in current if self.is_ready(p)) < int(deploy["spec"].get("replicas", 1)):
            return
        for pod in pods:
            if pod not in current:
                self._terminate(pod)

    def _active_pods_by_owner(self) -> dict[tuple[str, str], list[Obj]]:
        """(namespace, owner name) -> its active pods, as _pods_of finds them, for every owner at once."""
        owned: dict[tuple[str, str], list[Obj]] = {}
        for pod in self.store.raw_list(kinds.POD):
            if "deletionTimestamp" in pod["metadata"]:
                continue
            namespace = pod["metadata"].get("namespace", "")
            for owner in {o.get("name") for o in pod["metadata"].get("ownerReferences", [])}:
                owned.setdefault((namespace, owner), []).append(pod)
        return owned

    def _terminate(self, pod: Obj) -> None:
        """A deleted pod lingers, not ready, with a deletionTimestamp until its grace period ends (30 s unless
        the pod says otherwise: k8s.io/api@v0.35.4 core/v1 DefaultTerminationGracePeriodSeconds); a Deployment's
        counts leave it out at once (kubernetes@v1.35.4:pkg/controller/controller_utils.go IsPodActive)."""
        now = self.clock.now()
        grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        pod["metadata"]["deletionTimestamp"] = f"2026-01-01T00:{int(now // 60) % 60:02d}:{int(now % 60):02d}Z"
        pod["metadata"]["deletionGracePeriodSeconds"] = grace
        self._gone_at[(pod["metadata"]["namespace"], pod["metadata"]["name"])] = now + grace
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Ready":
                condition["status"] = "False"

    def pod_by_ip(self, ip: str) -> Obj | None:
        for (namespace, name), address in self._pod_ips.items():
            if address == ip:
                return self.store.raw(kinds.POD, name, namespace)
        return None

    def rollout_in_progress(self, namespace: str) -> bool:
        for deploy in self.store.raw_list(kinds.DEPLOYMENT, namespace):
            current = self._current_pods(namespace, deploy["metadata"]["name"], self._template_hash(deploy))
            if len(current) != len(self._pods_of(namespace, deploy["metadata"]["name"])):
                return True
        return False

    def _pods_of(self, namespace: str, deployment: str, *, terminating: bool = False) -> list[Obj]:
        """The Deployment's active pods (with `terminating`, also those shutting down)."""
        return [p for p in self.store.raw_list(kinds.POD, namespace)
                if any(o.get("name") == deployment for o in p["metadata"].get("ownerReferences", []))
                and (terminating or "deletionTimestamp" not in p["metadata"])]

    def _sync_deployment(self, namespace: str, name: str) -> None:
        """Replace pods whose template differs (rollout), create missing ones through admission."""
        deploy = self.store.raw(kinds.DEPLOYMENT, name, namespace)
        assert deploy is not None
        template_hash = self._template_hash(deploy)
        template = deploy["spec"]["template"]
        wanted = int(deploy["spec"].get("replicas", 1))
        failures: list[str] = []
        # Rolling update with one replica: maxSurge 25% rounds up to 1 and maxUnavailable 25% down to 0
        # (kubernetes@v1.33.0:pkg/controller/deployment/rolling.go), so old pods serve until new ones are ready.
        while len(self._current_pods(namespace, name, template_hash)) < wanted and len(failures) < wanted:
            suffix = "".join(self.rng.choice(string.ascii_lowercase + string.digits) for _ in range(5))
            meta = copy.deepcopy(template.get("metadata", {}))
            meta.update(name=f"{name}-{template_hash[:9]}-{suffix}", namespace=namespace)
            meta["labels"] = {**meta.get("labels", {}), "pod-template-hash": template_hash}
            meta["ownerReferences"] = [{"kind": "Deployment", "name": name}]
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(template["spec"])}
            try:
                self.create_pod(pod)
            except AdmissionDenied as denied:
                failures.append(str(denied))
        conditions = [c for c in deploy.get("status", {}).get("conditions", []) if c["type"] != "ReplicaFailure"]
        if failures:
            conditions.append({"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                               "message": failures[-1]})
            self.store.put(kinds.EVENT, {
                "metadata": {"name": f"{name}-{template_hash[:9]}.failedcreate", "namespace": namespace},
                "reason": "FailedCreate", "type": "Warning", "message": f"Error creating: {failures[-1]}",
                "involvedObject": {"kind": "ReplicaSet", "name": f"{name}-{template_hash[:9]}",
                                   "namespace": namespace},
            })
        deploy.setdefault("status", {})["conditions"] = conditions

    def create_pod(self, pod: Obj) -> Obj:
        """Mutating admission, then storage; the pod becomes ready after a delay unless told never."""
        namespace = pod["metadata"]["namespace"]
        ns = self.store.raw(kinds.NAMESPACE, namespace)
        if ns is None:
            raise AdmissionDenied(f'namespaces "{namespace}" not found')
        pod = self._mutate(pod, labels_of(ns))
        pod = self.hooks.apply("pod_admitted", pod, namespace=namespace)
        stored = self.store.put(kinds.POD, pod)
        ready = self.mesh.pod_becomes_ready(stored) if self.mesh else True
        key = (namespace, stored["metadata"]["name"])
        self._pod_ips[key] = f"10.244.{len(self._pod_ips) // 250}.{len(self._pod_ips) % 250 + 2}"
        self._ready_at[key] = self.clock.now() + POD_START_SECONDS if ready else None
        return stored

    def _mutate(self, pod: Obj, namespace_labels: dict[str, str]) -> Obj:
        """Call every matching webhook of every MutatingWebhookConfiguration, in name order
        (failurePolicy Fail, as Istio's injector webhooks set)."""
        for config in sorted(self.store.raw_list(kinds.MUTATING_WEBHOOK), key=lambda c: c["metadata"]["name"]):
            for webhook in config.get("webhooks", []):
                if not matches_selector(namespace_labels, webhook.get("namespaceSelector")):
                    continue
                if not matches_selector(labels_of(pod), webhook.get("objectSelector")):
                    continue
                pod = self._call_webhook(webhook, pod)
        return pod

    def _call_webhook(self, webhook: dict[str, Any], pod: Obj) -> Obj:
        revision = labels_of(self._webhook_backend(webhook)).get("istio.io/rev", "default")
        assert self.mesh is not None  # _webhook_backend refuses without one
        return self.mesh.inject(pod, revision)

    def _webhook_backend(self, webhook: dict[str, Any]) -> Obj:
        """The ready istiod pod a webhook's call reaches, or AdmissionDenied worded as the API server words it."""
        service = webhook["clientConfig"]["service"]
        url = (f"https://{service['name']}.{service['namespace']}.svc:{service.get('port', 443)}"
               f"{service.get('path', '')}?timeout={webhook.get('timeoutSeconds', 10)}s")
        # The apiserver's composed error (kubernetes/apiserver@v0.33.0: pkg/util/webhook/error.go,
        # pkg/admission/plugin/webhook/mutating/dispatcher.go; NotFound from client-go listers).
        prefix = f'Internal error occurred: failed calling webhook "{webhook["name"]}": failed to call webhook: ' \
                 f'Post "{url}"'
        svc = self.store.raw(kinds.SERVICE, service["name"], service["namespace"])
        if svc is None:
            raise AdmissionDenied(f'{prefix}: service "{service["name"]}" not found')
        selector = svc["spec"].get("selector") or {}
        backends = [p for p in self.store.raw_list(kinds.POD, service["namespace"], selector)
                    if self.is_ready(p)]
        if not backends or self.mesh is None:
            # kube-apiserver resolves webhook Services to their ClusterIP unless --enable-aggregator-routing
            # (cmd/kube-apiserver/app/server.go buildServiceResolver; kind sets no such flag), and kube-proxy
            # REJECTs a ClusterIP without endpoints (pkg/proxy/iptables/proxier.go "has no endpoints").
            raise AdmissionDenied(f"{prefix}: dial tcp {svc['spec'].get('clusterIP', '10.96.0.10')}:443: "
                                  "connect: connection refused")
        return backends[0]

    def is_ready(self, pod: Obj) -> bool:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        ready_at = self._ready_at.get(key)
        return ready_at is not None and self.clock.now() >= ready_at and key not in self._gone_at

    def settle(self, seconds: float) -> None:
        """Let logical time pass (used by the model's own istioctl waits)."""
        self.clock.sleep(seconds)
        self.advance()


def _rules_match(rules: list[dict] | None, obj: Obj) -> bool:
    """Whether a webhook's rules cover the object's API group (the model's webhooks without rules cover all Istio
    config; operations and resources are not modelled: the probes only create)."""
    if rules is None:
        return True
    group = obj.get("apiVersion", "").rpartition("/")[0]
    return any("*" in (rule.get("apiGroups") or []) or group in (rule.get("apiGroups") or []) for rule in rules)
