"""What the self-tests compare of the Gateway API scenario (issue 28) between the model and real istiods: the suite's
own Gateway and HTTPRoutes (manifests/gateway-api/bookinfo.yaml) in each revision's gateway namespace."""

from __future__ import annotations

from multirev.checks.gateway_api import GATEWAY_NAME_LABEL
from multirev.istio import facts
from multirev.kube import kinds
from suites.gateway_api import GATEWAY, ROUTES


def observe(cluster, namespaces: dict[str, str]) -> dict[str, object]:
    """Per role: who rendered the gateway's pod and with which proxy version, the Gateway's conditions (type, status,
    reason), whether it has an address, and each route's parents (who wrote them, their conditions)."""
    seen: dict[str, object] = {}
    for role, app in namespaces.items():
        gateway = cluster.get(kinds.K8S_GATEWAY, GATEWAY, app) or {}
        deployments = [d for d in cluster.list(kinds.DEPLOYMENT, app)
                       if (d["metadata"].get("labels") or {}).get(GATEWAY_NAME_LABEL) == GATEWAY]
        seen[f"{role} deployments"] = sorted(
            (d["metadata"]["name"], (d["spec"]["template"]["metadata"].get("annotations") or {}).get(facts.REV_LABEL),
             facts.image_version(next(c["image"] for c in d["spec"]["template"]["spec"]["containers"]
                                      if c["name"] == facts.PROXY_CONTAINER)))
            for d in deployments)
        status = gateway.get("status") or {}
        seen[f"{role} gateway conditions"] = sorted((c["type"], c["status"], c.get("reason"))
                                                   for c in status.get("conditions") or [])
        seen[f"{role} gateway address"] = [a.get("type") for a in status.get("addresses") or []]
        for name in ROUTES:
            route = cluster.get(kinds.HTTP_ROUTE, name, app) or {}
            seen[f"{role} route {name} parents"] = sorted(
                (p["parentRef"]["name"], p.get("controllerName"),
                 tuple(sorted((c["type"], c["status"], c.get("reason")) for c in p.get("conditions") or [])))
                for p in (route.get("status") or {}).get("parents") or [])
    return seen
