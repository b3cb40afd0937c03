"""The Gateway API checks (multirev/checks/gateway_api.py) pass on what an owning istiod makes and name each fault."""

from __future__ import annotations

from multirev.checks.gateway_api import check_deployed_by, check_gateway_status, check_route_status

GATEWAY = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
           "metadata": {"name": "bookinfo", "namespace": "app-stable", "labels": {"istio.io/rev": "prod-stable"}}}


def _deployment(name: str, rendered_by: str, image: str) -> dict:
    return {"kind": "Deployment", "metadata": {"name": name, "namespace": "app-stable",
                                               "labels": {"gateway.networking.k8s.io/gateway-name": "bookinfo"}},
            "spec": {"template": {"metadata": {"annotations": {"istio.io/rev": rendered_by}},
                                  "spec": {"containers": [{"name": "istio-proxy", "image": image}]}}}}


def _true(kind: str) -> dict:
    return {"type": kind, "status": "True", "reason": kind}


def test_one_deployment_rendered_by_the_owner_passes_and_every_other_shape_is_named() -> None:
    owner = _deployment("bookinfo-istio", "1-30-3", "docker.io/istio/proxyv2:1.30.3-distroless")
    assert check_deployed_by(GATEWAY, [owner], "1-30-3", "1.30.3") == []
    assert check_deployed_by(GATEWAY, [], "1-30-3", "1.30.3") == [
        "Gateway app-stable/bookinfo has no Deployment: revision 1-30-3's istiod did not deploy it"]
    other = _deployment("bookinfo-istio", "1-31-0", "docker.io/istio/proxyv2:1.31.0")
    [rendered, version] = check_deployed_by(GATEWAY, [other], "1-30-3", "1.30.3")
    assert "was rendered by revision 1-31-0, not by its owner 1-30-3" in rendered
    assert "runs proxy docker.io/istio/proxyv2:1.31.0, not the owner's version 1.30.3" in version
    twice = check_deployed_by(GATEWAY, [owner, _deployment("bookinfo-2", "1-30-3", owner["spec"]["template"]["spec"]
                                                            ["containers"][0]["image"])], "1-30-3", "1.30.3")
    assert twice == ["Gateway app-stable/bookinfo has 2 Deployments (Deployment app-stable/bookinfo-2, "
                     "Deployment app-stable/bookinfo-istio): more than one istiod deployed it"]


def test_gateway_status_needs_accepted_programmed_and_an_address() -> None:
    good = {**GATEWAY, "status": {"conditions": [_true("Accepted"), _true("Programmed")],
                                  "addresses": [{"type": "Hostname", "value": "bookinfo-istio.app-stable.svc"}]}}
    assert check_gateway_status(good) == []
    pending = {**GATEWAY, "status": {"conditions": [_true("Accepted"), {
        "type": "Programmed", "status": "False", "reason": "AddressNotAssigned", "message": "address pending"}]}}
    assert check_gateway_status(pending) == [
        "Gateway app-stable/bookinfo is not Programmed: AddressNotAssigned: address pending",
        "Gateway app-stable/bookinfo has no status.addresses"]


def test_route_status_needs_one_accepted_parent_entry_by_istio() -> None:
    def route(*parents: dict) -> dict:
        return {"kind": "HTTPRoute", "metadata": {"name": "r", "namespace": "app-stable"},
                "status": {"parents": list(parents)}}

    ours = {"parentRef": {"name": "bookinfo"}, "controllerName": "istio.io/gateway-controller",
            "conditions": [_true("Accepted"), _true("ResolvedRefs")]}
    assert check_route_status(route(ours), "bookinfo") == []
    assert check_route_status(route(), "bookinfo") == [
        "HTTPRoute app-stable/r has no status for parent Gateway bookinfo: no istiod took it"]
    theirs = {**ours, "controllerName": "example.com/other"}
    assert check_route_status(route(ours, theirs), "bookinfo") == [
        "HTTPRoute app-stable/r has 2 status entries for Gateway bookinfo",
        "HTTPRoute app-stable/r's status for Gateway bookinfo is written by example.com/other, not "
        "istio.io/gateway-controller"]
