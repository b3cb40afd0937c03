"""Gateway API gateways under two revisions: who deployed a Gateway, and whose status it carries.

Plain functions over observed objects; each problem names the object and what is wrong."""

from __future__ import annotations

from multirev.istio import facts
from multirev.kube.objects import Obj

# On what istiod deploys for a Gateway (istio@1.30.3 files/kube-gateway.yaml).
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
CONTROLLER_NAME = "istio.io/gateway-controller"  # route parents' controllerName (pilot/pkg/features/pilot.go@1.29.6)


def _ref(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{obj['kind']} {meta.get('namespace', '')}/{meta['name']}"


def _conditions(status: dict | None) -> dict[str, dict]:
    return {c.get("type", ""): c for c in (status or {}).get("conditions") or []}


def _condition_problems(where: str, status: dict | None, wanted: tuple[str, ...]) -> list[str]:
    found = _conditions(status)
    problems = []
    for kind in wanted:
        condition = found.get(kind)
        if condition is None:
            problems.append(f"{where} has no {kind} condition")
        elif condition.get("status") != "True":
            problems.append(f"{where} is not {kind}: {condition.get('reason', '?')}: {condition.get('message', '')}")
    return problems


def check_deployed_by(gateway: Obj, deployments: list[Obj], owner: str, owner_version: str) -> list[str]:
    """Exactly one Deployment carries the Gateway's name label in its namespace, and the owning revision's istiod
    rendered it: its pod template says `istio.io/rev: <owner>` and runs the owner's proxy version (the deployment
    controller renders the pod from its own revision and injection values: istio@1.30.3 pilot/pkg/config/kube/
    gatewaycommon/deploymentcontroller.go configureIstioGateway; files/kube-gateway.yaml)."""
    name = gateway["metadata"]["name"]
    mine = [d for d in deployments if (d["metadata"].get("labels") or {}).get(GATEWAY_NAME_LABEL) == name]
    if not mine:
        return [f"{_ref(gateway)} has no Deployment: revision {owner}'s istiod did not deploy it"]
    problems = []
    if len(mine) > 1:
        problems.append(f"{_ref(gateway)} has {len(mine)} Deployments ({', '.join(sorted(_ref(d) for d in mine))}): "
                        "more than one istiod deployed it")
    for deployment in mine:
        template = deployment["spec"]["template"]
        rendered_by = (template["metadata"].get("annotations") or {}).get(facts.REV_LABEL)
        if rendered_by != owner:
            problems.append(f"{_ref(deployment)} for {_ref(gateway)} was rendered by revision {rendered_by}, "
                            f"not by its owner {owner}")
        proxy = next((c for c in template["spec"].get("containers") or [] if c.get("name") == facts.PROXY_CONTAINER),
                     None)
        version = facts.image_version(proxy.get("image", "")) if proxy else ""
        if proxy is None:
            problems.append(f"{_ref(deployment)} for {_ref(gateway)} has no {facts.PROXY_CONTAINER} container")
        elif version != owner_version:
            problems.append(f"{_ref(deployment)} for {_ref(gateway)} runs proxy {proxy.get('image')}, not the "
                            f"owner's version {owner_version}")
    return problems


def check_gateway_status(gateway: Obj) -> list[str]:
    """Accepted and Programmed, with an address (istio@1.30.3 pilot/pkg/config/kube/gateway/conversion.go
    reportGatewayStatus, setProgrammedCondition)."""
    status = gateway.get("status") or {}
    problems = _condition_problems(_ref(gateway), status, ("Accepted", "Programmed"))
    if not status.get("addresses"):
        problems.append(f"{_ref(gateway)} has no status.addresses")
    return problems


def check_route_status(route: Obj, gateway: str) -> list[str]:
    """Exactly one parent entry for `gateway`, written by Istio's controller, Accepted with its references resolved
    (pilot/pkg/config/kube/gateway/conditions.go@1.29.6 createRouteStatus)."""
    parents = [p for p in (route.get("status") or {}).get("parents") or []
               if (p.get("parentRef") or {}).get("name") == gateway]
    if not parents:
        return [f"{_ref(route)} has no status for parent Gateway {gateway}: no istiod took it"]
    problems = []
    if len(parents) > 1:
        problems.append(f"{_ref(route)} has {len(parents)} status entries for Gateway {gateway}")
    for parent in parents:
        if parent.get("controllerName") != CONTROLLER_NAME:
            problems.append(f"{_ref(route)}'s status for Gateway {gateway} is written by "
                            f"{parent.get('controllerName')}, not {CONTROLLER_NAME}")
        problems += _condition_problems(f"{_ref(route)} on Gateway {gateway}", parent, ("Accepted", "ResolvedRefs"))
    return problems


def check_steady(what: str, seen: list[tuple[float, object]]) -> list[str]:
    """`seen` is what was observed of one object at each moment (time, summary) while both revisions ran: it must not
    change. Two istiods that both take a Gateway re-render its Deployment and overwrite its status in turn; one
    reading can miss that, a window of them shows it."""
    changes = [f"at {t:.0f}s: {value}" for (_, before), (t, value) in zip(seen, seen[1:], strict=False)
               if value != before]
    if not changes:
        return []
    return [f"{what} changed {len(changes)} times in {seen[-1][0] - seen[0][0]:.0f}s while nothing was applied "
            f"(first {seen[0][1]}; then {'; '.join(changes[:3])})"]


def deployment_summary(deployment: Obj | None) -> str:
    """Who rendered a gateway Deployment, at which generation: what two owners would fight over."""
    if deployment is None:
        return "no Deployment"
    rendered_by = (deployment["spec"]["template"]["metadata"].get("annotations") or {}).get(facts.REV_LABEL)
    return f"generation {deployment['metadata'].get('generation')}, rendered by {rendered_by}"


def status_summary(obj: Obj | None) -> str:
    """A Gateway's or route's status as its writers set it (conditions, and for a route each parent's)."""
    if obj is None:
        return "gone"
    status = obj.get("status") or {}
    parts = [f"{c.get('type')}={c.get('status')}/{c.get('reason')}@{c.get('observedGeneration')}"
             for c in status.get("conditions") or []]
    for parent in status.get("parents") or []:
        parts.append(f"parent {(parent.get('parentRef') or {}).get('name')} by {parent.get('controllerName')}: "
                     + ",".join(f"{c.get('type')}={c.get('status')}" for c in parent.get("conditions") or []))
    return "; ".join(parts) or "no status"
