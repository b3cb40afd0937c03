"""Gateway API objects the self-tests put under each revision (issue 28), on the model and on real istiods alike."""

from __future__ import annotations

from multirev.checks.gateway_api import GATEWAY_NAME_LABEL, check_deployed_by, check_gateway_status, check_route_status
from multirev.istio import facts
from multirev.kube import kinds


def gateway_api_objects(role: str, tag: str, app: str) -> list[dict]:
    """A Gateway of class istio labelled with the revision's tag (reachable in-cluster: ClusterIP), and an HTTPRoute
    from its own host to Bookinfo's productpage."""
    gateway = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": f"bookinfo-{role}", "namespace": app, "labels": {"istio.io/rev": tag},
                            # istio@1.30.3 pilot/pkg/config/kube/gatewaycommon/deploymentcontroller.go
                            # configureIstioGateway: the Service's type (default LoadBalancer, which nothing serves).
                            "annotations": {"networking.istio.io/service-type": "ClusterIP"}},
               "spec": {"gatewayClassName": "istio", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": f"bookinfo-{role}", "namespace": app},
             "spec": {"parentRefs": [{"name": f"bookinfo-{role}"}], "hostnames": [f"{role}.gateway-api.example"],
                      "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/productpage"}}],
                                 "backendRefs": [{"name": "productpage", "port": 9080}]}]}}
    return [gateway, route]


def observe(cluster, namespaces: dict[str, str]) -> dict[str, object]:
    """What the checks judge, per role, to compare the model with real istiods: who rendered the gateway's pod and
    with which proxy version, the Gateway's and the route's conditions (type, status, reason), whether it has an
    address, and who wrote the route's status."""
    seen: dict[str, object] = {}
    for role, app in namespaces.items():
        name = f"bookinfo-{role}"
        gateway = cluster.get(kinds.K8S_GATEWAY, name, app) or {}
        route = cluster.get(kinds.HTTP_ROUTE, name, app) or {}
        deployments = [d for d in cluster.list(kinds.DEPLOYMENT, app)
                       if (d["metadata"].get("labels") or {}).get(GATEWAY_NAME_LABEL) == name]
        seen[f"{role} deployments"] = sorted(
            (d["metadata"]["name"], (d["spec"]["template"]["metadata"].get("annotations") or {}).get(facts.REV_LABEL),
             facts.image_version(next(c["image"] for c in d["spec"]["template"]["spec"]["containers"]
                                      if c["name"] == facts.PROXY_CONTAINER)))
            for d in deployments)
        status = gateway.get("status") or {}
        seen[f"{role} gateway conditions"] = sorted((c["type"], c["status"], c.get("reason"))
                                                   for c in status.get("conditions") or [])
        seen[f"{role} gateway address"] = [a.get("type") for a in status.get("addresses") or []]
        seen[f"{role} route parents"] = sorted(
            (p["parentRef"]["name"], p.get("controllerName"),
             tuple(sorted((c["type"], c["status"], c.get("reason")) for c in p.get("conditions") or [])))
            for p in (route.get("status") or {}).get("parents") or [])
    return seen


def problems(cluster, role: str, app: str, owner_revision: str, owner_version: str) -> list[str]:
    """The ownership and status checks of the role's Gateway and HTTPRoute in `app`, for the owner its label should
    name."""
    gateway = cluster.get(kinds.K8S_GATEWAY, f"bookinfo-{role}", app)
    route = cluster.get(kinds.HTTP_ROUTE, f"bookinfo-{role}", app)
    if gateway is None or route is None:
        return [f"the {role} Gateway or HTTPRoute is not there"]
    return (check_deployed_by(gateway, cluster.list(kinds.DEPLOYMENT, app), owner_revision, owner_version)
            + check_gateway_status(gateway) + check_route_status(route, f"bookinfo-{role}"))
