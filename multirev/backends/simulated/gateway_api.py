"""The model's Gateway API controller: what each revision's istiod does for a Gateway of class `istio` it owns.

Ownership is multirev/istio/gateway_api.py `claims` (tag_watcher.go IsMine, per minor), asked only of istiods that
watch the Gateway's namespace (discoverySelectors). An owner deploys the Gateway as its deployment controller does
(ServiceAccount, Deployment, Service `<gateway>-istio`, the pod rendered by its own revision: istio@1.30.3
pilot/pkg/config/kube/gatewaycommon/deploymentcontroller.go configureIstioGateway, files/kube-gateway.yaml) and
writes the Gateway's status and, for each HTTPRoute it owns, the route's parent status (pilot/pkg/status/
collections.go@1.29.6 RegisterStatus filters both by IsMine). What a Gateway that nobody owns any more had stays as it
was, as on a real cluster; objects of a deleted Gateway go with it (ownerReferences).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from multirev.checks.gateway_api import CONTROLLER_NAME, GATEWAY_NAME_LABEL
from multirev.istio import facts
from multirev.istio.capabilities import supports
from multirev.istio.gateway_api import DEFAULT, IstiodView, claims, deployment_name
from multirev.kube import kinds
from multirev.kube.objects import Obj, annotations_of, labels_of

if TYPE_CHECKING:
    from multirev.backends.simulated.mesh import MeshModel, Revision

GATEWAY_CLASS = "istio"
CLASS_LABEL = "gateway.networking.k8s.io/gateway-class-name"
MANAGED_LABEL = "gateway.istio.io/managed"  # deploymentcontroller.go apply: on every object it makes
SERVICE_TYPE_ANNOTATION = "networking.istio.io/service-type"
CLUSTER_DOMAIN = "cluster.local"


class GatewayApiController:
    def __init__(self, mesh: MeshModel) -> None:
        self.mesh = mesh
        self.store = mesh.cluster.store
        self.made: set[tuple[str, str]] = set()  # (namespace, gateway) of each Gateway it deployed
        self.first_owner: dict[tuple[str, str], str] = {}  # (namespace, gateway) -> the revision that deployed it first

    def moved(self, namespace: str, gateway: str) -> bool:
        """Whether the Gateway is now deployed by another revision than the one that deployed it first (a tag move)."""
        first = self.first_owner.get((namespace, gateway))
        deployment = self.store.raw(kinds.DEPLOYMENT, deployment_name(gateway), namespace) or {}
        rendered = annotations_of((deployment.get("spec") or {}).get("template") or {}).get(facts.REV_LABEL)
        return first is not None and rendered is not None and rendered != first

    # -- what each istiod knows ------------------------------------------------------------------
    def _view(self, revision: Revision) -> IstiodView:
        tags = frozenset(labels_of(hook).get(facts.TAG_LABEL, "") for hook in self.store.raw_list(
            kinds.MUTATING_WEBHOOK, labels={facts.REV_LABEL: revision.name}) if labels_of(hook).get(facts.TAG_LABEL))
        validator = self.store.raw(kinds.VALIDATING_WEBHOOK, facts.DEFAULT_VALIDATOR)
        is_default = validator is not None and labels_of(validator).get(facts.REV_LABEL) == revision.name
        return IstiodView(revision.name, tags, is_default)

    def owners(self, obj: Obj) -> list[Revision]:
        """The revisions whose istiod takes `obj` (a Gateway or an HTTPRoute) as its own, in install order."""
        namespace = obj["metadata"].get("namespace", "")
        ns = self.store.raw(kinds.NAMESPACE, namespace)
        default_tag = any(labels_of(hook).get(facts.TAG_LABEL) == DEFAULT
                          for hook in self.store.raw_list(kinds.MUTATING_WEBHOOK))
        found = []
        for revision in sorted(self.mesh.revisions.values(), key=lambda r: r.install_order):
            if not self.mesh.watches_namespace(revision, namespace):
                continue
            if claims(revision.version, self._view(revision), labels_of(obj).get(facts.REV_LABEL),
                      labels_of(ns).get(facts.REV_LABEL) if ns else None, namespace_known=ns is not None,
                      default_tag_exists=default_tag):
                found.append(revision)
        return self.mesh.cluster.hooks.apply("gateway_api_owners", found, obj=obj,
                                             revisions=list(self.mesh.revisions.values()))

    # -- reconcile -----------------------------------------------------------------------------------
    def reconcile(self) -> None:
        gateways = [g for g in self.store.raw_list(kinds.K8S_GATEWAY)
                    if (g.get("spec") or {}).get("gatewayClassName") == GATEWAY_CLASS]
        if not gateways and not self.made:
            return
        for gateway in gateways:
            for owner in self.owners(gateway):
                self._deploy(gateway, owner)
                self._write_status(gateway, owner)
        self._collect_orphans({(g["metadata"]["namespace"], g["metadata"]["name"]) for g in gateways})
        for route in self.store.raw_list(kinds.HTTP_ROUTE):
            owners = self.owners(route)
            for owner in owners:
                self._write_route_status(route, owner)
            others = [r for r in self.mesh.revisions.values() if r not in owners]
            for other in self.mesh.cluster.hooks.apply("gateway_api_foreign_status_writers", [], others=others):
                self._write_route_status(route, other, mine=False)

    def _deploy(self, gateway: Obj, owner: Revision) -> None:
        meta = gateway["metadata"]
        name, namespace = deployment_name(meta["name"]), meta["namespace"]
        copied = {k: v for k, v in labels_of(gateway).items() if not k.startswith("gateway.networking.k8s.io/")}
        labels = {**copied, GATEWAY_NAME_LABEL: meta["name"], CLASS_LABEL: GATEWAY_CLASS,
                  MANAGED_LABEL: "istio.io-gateway-controller"}
        owner_ref = [{"apiVersion": kinds.K8S_GATEWAY.api_version, "kind": "Gateway", "name": meta["name"],
                      "uid": meta.get("uid", "")}]
        common = {"namespace": namespace, "labels": labels, "ownerReferences": owner_ref}
        pod_labels = {**labels, facts.INJECT_POD_LABEL: "false"}
        ports = [{"name": listener["name"], "port": int(listener["port"])}
                 for listener in (gateway.get("spec") or {}).get("listeners") or []]
        service_type = annotations_of(gateway).get(SERVICE_TYPE_ANNOTATION, "LoadBalancer")
        for obj in (
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, **common}},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, **common},
             "spec": {"replicas": 1, "selector": {"matchLabels": {GATEWAY_NAME_LABEL: meta["name"]}},
                      "template": {"metadata": {"labels": pod_labels,
                                                "annotations": {facts.REV_LABEL: owner.name}},
                                   "spec": {"serviceAccountName": name,
                                            "containers": [{"name": facts.PROXY_CONTAINER,
                                                            "image": owner.image("proxyv2"),
                                                            "args": ["proxy", "router"]}]}}}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, **common},
             "spec": {"type": service_type, "selector": {GATEWAY_NAME_LABEL: meta["name"]},
                      "ports": [{"name": "status-port", "port": 15021}, *ports]}},
        ):
            kind = kinds.of(obj)
            self.made.add((namespace, meta["name"]))
            self.first_owner.setdefault((namespace, meta["name"]), owner.name)
            existing = self.store.raw(kind, name, namespace)
            if existing is None or existing.get("spec") != obj.get("spec") or labels_of(existing) != labels:
                self.mesh.cluster.apply(obj)  # server-side apply, force: the same object whoever renders it

    def _write_status(self, gateway: Obj, owner: Revision) -> None:
        meta = gateway["metadata"]
        name = deployment_name(meta["name"])
        deployment = self.store.raw(kinds.DEPLOYMENT, name, meta["namespace"]) or {}
        ready = int((deployment.get("status") or {}).get("readyReplicas") or 0) > 0
        host = f"{name}.{meta['namespace']}.svc.{CLUSTER_DOMAIN}"
        generation = meta.get("generation", 1)
        programmed = ({"type": "Programmed", "status": "True", "reason": "Programmed",
                       "message": f"Resource programmed, assigned to service(s) {host}"} if ready else
                      {"type": "Programmed", "status": "False", "reason": "AddressNotAssigned",
                       "message": f"Assigned to service(s) {host}, but failed to assign to all requested addresses: "
                                  f"no instances found for hostname {host}"})
        conditions = [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "Resource accepted"},
                      programmed]
        if supports(owner.version, "gateway-status-resolved-refs"):
            conditions.append({"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs",
                               "message": "All references resolved"})
        status: dict = {"conditions": [{**c, "observedGeneration": generation} for c in conditions]}
        if ready:
            status["addresses"] = [{"type": "Hostname", "value": host}]
        gateway["status"] = status

    def _write_route_status(self, route: Obj, owner: Revision, *, mine: bool = True) -> None:
        """`mine`: as the owner sees the route. An istiod writing the status of a route it does not own sees no
        parent of its own (only faults make one write it)."""
        namespace = route["metadata"]["namespace"]
        parents = []
        for ref in (route.get("spec") or {}).get("parentRefs") or []:
            gateway = self.store.raw(kinds.K8S_GATEWAY, ref["name"], ref.get("namespace") or namespace)
            accepted = mine and gateway is not None \
                and (gateway.get("spec") or {}).get("gatewayClassName") == GATEWAY_CLASS
            backends = [b for rule in (route.get("spec") or {}).get("rules") or []
                        for b in rule.get("backendRefs") or []]
            resolved = all(self.store.raw(kinds.SERVICE, b["name"], b.get("namespace") or namespace) is not None
                           for b in backends)
            parents.append({"parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                          "name": ref["name"]},
                            "controllerName": CONTROLLER_NAME,
                            "conditions": [
                                {"type": "Accepted", "status": "True" if accepted else "False",
                                 "reason": "Accepted" if accepted else "NoMatchingParent",
                                 "message": "Route was valid" if accepted else "parent not found"},
                                {"type": "ResolvedRefs", "status": "True" if resolved else "False",
                                 "reason": "ResolvedRefs" if resolved else "BackendNotFound",
                                 "message": "All references resolved" if resolved else "backend not found"}]})
        route["status"] = {"parents": parents}

    def _collect_orphans(self, gateways: set[tuple[str, str]]) -> None:
        """The garbage collector: what the controller made for a Gateway that is gone goes with it."""
        for namespace, gateway in [key for key in self.made if key not in gateways]:
            for kind in (kinds.DEPLOYMENT, kinds.SERVICE, kinds.SERVICEACCOUNT):
                self.mesh.cluster.delete(kind, deployment_name(gateway), namespace)
            self.made.discard((namespace, gateway))
            self.first_owner.pop((namespace, gateway), None)
