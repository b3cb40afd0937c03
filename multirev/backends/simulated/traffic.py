"""Requests through the model: ingress gateways, in-mesh calls, and what each sample app answers.

Routing follows Istio's semantics closely enough for the suite's checks: a revision's gateway only
uses config its istiod can see (discoverySelectors; objects labelled for another revision are
ignored: pkg/config/model.go), Gateway selectors pick gateway pods by label, VirtualService http
routes are tried in order (uri exact/prefix, sourceLabels), weights pick a destination with the
seeded RNG, DestinationRule subsets narrow the pods. An unrouted request gets Envoy's 404; a route
to no ready pod gets 503 `no healthy upstream`.
"""

from __future__ import annotations

import ipaddress
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from multirev.backends.base import HttpResponse
from multirev.checks.gateway_api import GATEWAY_NAME_LABEL
from multirev.istio import facts
from multirev.istio.capabilities import supports
from multirev.kube import kinds
from multirev.kube.objects import Obj, labels_of, matches_selector, name_of, namespace_of

if TYPE_CHECKING:
    from multirev.backends.simulated.cluster import SimulatedCluster
    from multirev.backends.simulated.mesh import MeshModel, Revision

ENVOY = {"server": "istio-envoy"}


def _response(status: int, body: str = "", **headers: str) -> HttpResponse:
    return HttpResponse(status, {**ENVOY, **headers}, body)


class Router:
    def __init__(self, cluster: SimulatedCluster, mesh: MeshModel) -> None:
        self.cluster = cluster
        self.mesh = mesh

    # -- ingress ---------------------------------------------------------------------------------
    def via_gateway(self, node_port: int, path: str, host: str) -> HttpResponse:
        service = self._service_with_node_port(node_port)
        if service is None:
            return HttpResponse(0, {}, f"connection refused: nothing listens on node port {node_port}")
        pods = self._ready_pods(namespace_of(service) or "", service["spec"].get("selector") or {})
        if not pods:
            return HttpResponse(0, {}, f"connection reset: Service {namespace_of(service)}/{name_of(service)} "
                                       "has no ready endpoints")
        gateway_pod = pods[0]
        revision = self.mesh.revisions.get(labels_of(gateway_pod).get(facts.REV_LABEL, ""))
        if revision is None:
            return _response(503, "no healthy upstream")
        hostname = host.split(":")[0]
        listener = self._target_port(service, node_port)
        bound = [g for g in self._gateway_config(revision, kinds.GATEWAY)
                 if matches_selector(labels_of(gateway_pod), {"matchLabels": self._selector(g, revision)})
                 and any(self._listener_port(g, s, gateway_pod, revision) == listener
                         and any(_host_matches(h, hostname) for h in s.get("hosts", []))
                         for s in g["spec"].get("servers", []))]
        names = {f"{namespace_of(g)}/{name_of(g)}" for g in bound}
        # VirtualServices are tried in order, each by host then path, where Envoy first picks the virtual host with
        # the most specific domain (exact, then wildcards, "*" last: envoy api/envoy/config/route/v3/
        # route_components.proto VirtualHost.domains): the same answer unless a "*" route and a route for the
        # named host both match the path.
        for vs in self._gateway_config(revision, kinds.VIRTUAL_SERVICE):
            gateways = {g if "/" in g else f"{namespace_of(vs)}/{g}" for g in vs["spec"].get("gateways") or []}
            if not gateways & names or not any(_host_matches(h, hostname) for h in vs["spec"].get("hosts", [])):
                continue
            route = self._match(vs, path, source_labels=None, context=gateways & names)
            if route is not None:
                return self._gateway_response(revision, self._forward(revision, vs, route, path, host))
        return self._gateway_response(revision, _response(404))

    def via_service(self, namespace: str, name: str, port_name: str, path: str, host: str) -> HttpResponse:
        """A port-forward to a Service's port: one ready pod behind it answers (a Gateway API gateway's pod routes by
        the HTTPRoutes its revision programmed)."""
        service = self.cluster.store.raw(kinds.SERVICE, name, namespace)
        if service is None or not any(p.get("name") == port_name for p in service["spec"].get("ports") or []):
            return HttpResponse(0, {}, f"connection refused: Service {namespace}/{name} has no port {port_name}")
        pods = self._ready_pods(namespace, service["spec"].get("selector") or {})
        if not pods:
            return HttpResponse(0, {}, f"connection refused: Service {namespace}/{name} has no ready endpoints")
        pod = pods[0]
        gateway = labels_of(pod).get(GATEWAY_NAME_LABEL)
        if gateway is None:
            return self._app(pod, path, host)
        revision = self.mesh.revisions.get((pod["metadata"].get("annotations") or {}).get(facts.REV_LABEL, ""))
        if revision is None:
            return _response(503, "no healthy upstream")
        return self._gateway_response(revision, self._via_k8s_gateway(revision, namespace, gateway, path, host))

    def _via_k8s_gateway(self, revision: Revision, namespace: str, gateway: str, path: str,
                         host: str) -> HttpResponse:
        """The HTTPRoutes the revision's istiod sees that attach to the Gateway and name the host (or none); of their
        matches the most specific wins, as Gateway API orders them: an exact path before any prefix, a longer
        prefix before a shorter (gateway-api apis/v1/httproute_types.go HTTPRouteRule, "precedence")."""
        hostname = host.split(":")[0]
        candidates = []
        routes = self._visible(revision, kinds.HTTP_ROUTE)
        routes = self.cluster.hooks.apply("gateway_api_routes", routes, gateway=f"{namespace}/{gateway}",
                                          moved=self.mesh.gateway_api.moved(namespace, gateway))
        for route in routes:
            spec = route.get("spec") or {}
            attached = any(ref.get("name") == gateway and (ref.get("namespace") or namespace_of(route)) == namespace
                           and ref.get("kind", "Gateway") == "Gateway" for ref in spec.get("parentRefs") or [])
            if not attached or (spec.get("hostnames") and not any(_host_matches(h, hostname)
                                                                  for h in spec["hostnames"])):
                continue
            for rule in spec.get("rules") or []:
                for match in rule.get("matches") or [{}]:
                    wanted = match.get("path") or {"type": "PathPrefix", "value": "/"}
                    value = wanted.get("value", "/")
                    if wanted.get("type") == "Exact" and path == value:
                        candidates.append(((1, len(value)), route, rule))
                    elif wanted.get("type", "PathPrefix") == "PathPrefix" and _prefix_matches(value, path):
                        candidates.append(((0, len(value)), route, rule))
        if not candidates:
            return _response(404)
        _, route, rule = max(candidates, key=lambda c: c[0])
        backends = rule.get("backendRefs") or []
        if not backends:
            return _response(500)
        weights = [int(b.get("weight", 1)) for b in backends]
        weights = self.cluster.hooks.apply("http_route_weights", weights, revision=revision.name,
                                           install_order=revision.install_order, route=name_of(route))
        if not sum(weights):
            return _response(500)
        chosen = self.cluster.rng.choices(backends, weights=weights)[0]
        return self._call_service(revision, (chosen.get("namespace") or namespace_of(route) or "", chosen["name"]),
                                  {}, path, host)

    def _gateway_config(self, revision: Revision, kind: kinds.Kind) -> list[Obj]:
        """The Gateways or VirtualServices an ingress gateway of the revision is programmed with: those its istiod
        sees, unless a fault says otherwise."""
        seen = self._visible(revision, kind)
        if not self.cluster.hooks.has("gateway_config"):
            return seen
        unseen = [o for o in self.cluster.store.raw_list(kind) if not self.mesh.sees(revision, o)]
        return self.cluster.hooks.apply("gateway_config", seen, revision=revision.name,
                                        install_order=revision.install_order, kind=kind.kind, unseen=unseen)

    def _gateway_response(self, revision: Revision, response: HttpResponse) -> HttpResponse:
        return self.cluster.hooks.apply("gateway_response", response, revision=revision.name,
                                        install_order=revision.install_order)

    # -- in-mesh ---------------------------------------------------------------------------------
    def from_pod(self, pod: Obj, url: str) -> HttpResponse:
        response = self._from_pod(pod, url)
        namespace = namespace_of(pod) or ""
        if not self.cluster.hooks.has("mesh_response"):
            return response
        return self.cluster.hooks.apply("mesh_response", response, namespace=namespace,
                                        rollout_in_progress=self.cluster.rollout_in_progress(namespace),
                                        source_app=labels_of(pod).get("app", ""), url=url)

    def _from_pod(self, pod: Obj, url: str) -> HttpResponse:
        parsed = urlparse(url)
        host = parsed.hostname or ""
        path = parsed.path or "/"
        revision = self.mesh.revisions.get(self._sidecar_revision(pod) or "")
        if not self._resolves(pod, revision, host):
            return HttpResponse(0, {}, f"Could not resolve host: {host}")
        if revision is None:
            return self._call_service(None, _service_ref(host, namespace_of(pod) or ""), {}, path, url)
        for vs in self._visible(revision, kinds.VIRTUAL_SERVICE):
            gateways = vs["spec"].get("gateways") or ["mesh"]
            if "mesh" not in gateways:
                continue
            request = _service_ref(host, namespace_of(pod) or "")
            if not any(_service_ref(h, namespace_of(vs) or "") == request for h in vs["spec"].get("hosts", [])):
                continue
            route = self._match(vs, path, source_labels=labels_of(pod), context={"mesh"})
            if route is not None:
                return self._forward(revision, vs, route, path, host)
        return self._outbound(revision, pod, host, path)

    def _resolves(self, pod: Obj, revision: Revision | None, host: str) -> bool:
        """Name resolution before any request: an address, a Kubernetes Service (kube-dns), or a ServiceEntry host,
        which only the sidecar's DNS proxy answers: with DNS capture on, and for a host that has an address
        (pkg/dns/server/name_table.go skips hosts without one; istio@1.18.5 and @1.30.3)."""
        hostname = host.split(":")[0]
        if _is_address(hostname) or self.cluster.store.raw(kinds.SERVICE, *reversed(
                _service_ref(hostname, namespace_of(pod) or ""))) is not None:
            return True
        if revision is None or self._service_entry(revision, hostname) is None:
            return False
        metadata = _proxy_env(pod)
        if metadata.get("ISTIO_META_DNS_CAPTURE") != "true":
            return False  # off by default: pilot/cmd/pilot-agent/options/options.go
        entry = self._service_entry(revision, hostname)
        assert entry is not None
        # The address: given, or auto-allocated by istiod from 1.25 (PILOT_ENABLE_IP_AUTOALLOCATE) and by the
        # agent before, when asked (DNS_AUTO_ALLOCATE; pilot/pkg/model/service.go@1.18.5 and @1.30.3).
        by_istiod = supports(revision.version, "istiod-ip-autoallocate") and \
            revision.env.get("PILOT_ENABLE_IP_AUTOALLOCATE", "true") == "true"
        return bool(entry["spec"].get("addresses")) or by_istiod or \
            metadata.get("ISTIO_META_DNS_AUTO_ALLOCATE") == "true"

    def _outbound(self, revision: Revision, pod: Obj, host: str, path: str) -> HttpResponse:
        """No route for the host: a Kubernetes Service, a ServiceEntry host, or (REGISTRY_ONLY) refused with
        502 by the BlackHole route (istio@1.30.3:pilot/pkg/networking/core/httproute.go block_all)."""
        ref = _service_ref(host, namespace_of(pod) or "")
        if self.cluster.store.raw(kinds.SERVICE, ref[1], ref[0]) is not None:
            return self._call_service(revision, ref, {}, path, host)
        entry = self._service_entry(revision, host)
        if entry is not None:
            return self._to_service_entry(entry, path, host)
        mode = (revision.mesh_config.get("outboundTrafficPolicy") or {}).get("mode", "ALLOW_ANY")
        if mode == "REGISTRY_ONLY":
            return _response(502)
        target = self.cluster.pod_by_ip(host.split(":")[0])  # ALLOW_ANY: PassthroughCluster to the address
        if target is not None and self.cluster.is_ready(target):
            return self._app(target, path, host)
        return HttpResponse(0, {}, f"Could not resolve host: {host}")

    def _service_entry(self, revision: Revision, host: str) -> Obj | None:
        hostname = host.split(":")[0]
        for entry in self._visible(revision, kinds.SERVICE_ENTRY):
            if hostname in (entry["spec"].get("hosts") or []):
                return entry
        return None

    def _to_service_entry(self, entry: Obj, path: str, host: str) -> HttpResponse:
        for endpoint in entry["spec"].get("endpoints") or []:
            ref = _service_ref(endpoint.get("address", ""), namespace_of(entry) or "")
            if self.cluster.store.raw(kinds.SERVICE, ref[1], ref[0]) is not None:
                return self._call_service(None, ref, {}, path, host)
        return _response(503, "no healthy upstream")

    def _through_egress_gateway(self, gateway_pod: Obj, path: str, host: str) -> HttpResponse:
        """A request arriving at an egress gateway: the routes bound to it decide where it goes; the gateway's
        access log records it (meshConfig.accessLogFile)."""
        revision = self.mesh.revisions.get(labels_of(gateway_pod).get(facts.REV_LABEL, ""))
        hostname = host.split(":")[0]
        response = _response(404)
        if revision is not None:
            bound = {f"{namespace_of(g)}/{name_of(g)}" for g in self._visible(revision, kinds.GATEWAY)
                     if matches_selector(labels_of(gateway_pod), {"matchLabels": self._selector(g, revision)})}
            for vs in self._visible(revision, kinds.VIRTUAL_SERVICE):
                gateways = {g if "/" in g else f"{namespace_of(vs)}/{g}" for g in vs["spec"].get("gateways") or []}
                if not gateways & bound or hostname not in vs["spec"].get("hosts", []):
                    continue
                route = self._match(vs, path, None, context=gateways & bound)
                if route is None:
                    continue
                target = route["route"][0]["destination"]["host"]
                entry = self._service_entry(revision, target)
                response = self._to_service_entry(entry, path, host) if entry else _response(503)
                break
        self.mesh.gateway_log(gateway_pod, f'[{self.cluster.clock.now():.3f}] "GET {path} HTTP/1.1" '
                                           f'{response.status} - "{hostname}" outbound|80||{hostname}')
        return response

    # -- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _target_port(service: Obj, node_port: int) -> int:
        port = next(p for p in service["spec"].get("ports", []) if p.get("nodePort") == node_port)
        return int(port.get("targetPort") or port["port"])

    def _listener_port(self, gateway: Obj, server: dict[str, Any], gateway_pod: Obj, revision: Revision) -> int | None:
        """The port a Gateway server listens on in a selector-based gateway pod: a number equal to a Service
        port of the pod becomes that port's targetPort, any other number is used as is, and the unprivileged
        gateway skips ports below 1024 (istio@1.18.5 and 1.30.3: pilot/pkg/model/gateway.go resolvePorts;
        pilot/pkg/networking/core/v1alpha3/gateway.go buildGatewayListeners)."""
        number = self.cluster.hooks.apply("gateway_server_port", int((server.get("port") or {}).get("number", 0)),
                                          gateway=name_of(gateway), install_order=revision.install_order)
        for svc in self.cluster.store.raw_list(kinds.SERVICE, namespace_of(gateway_pod)):
            selector = svc["spec"].get("selector") or {}
            if not selector or not matches_selector(labels_of(gateway_pod), {"matchLabels": selector}):
                continue
            for port in svc["spec"].get("ports", []):
                if port.get("port") == number:
                    number = int(port.get("targetPort") or number)
                    break
        return number if number >= 1024 else None

    def _service_with_node_port(self, node_port: int) -> Obj | None:
        for svc in self.cluster.store.raw_list(kinds.SERVICE):
            if any(p.get("nodePort") == node_port for p in svc["spec"].get("ports", [])):
                return svc
        return None

    def _selector(self, gateway: Obj, revision: Revision) -> dict[str, str]:
        return self.cluster.hooks.apply("gateway_selector", dict(gateway["spec"].get("selector") or {}),
                                        gateway=name_of(gateway), install_order=revision.install_order)

    def _ready_pods(self, namespace: str, selector: dict[str, str]) -> list[Obj]:
        return [p for p in self.cluster.store.raw_list(kinds.POD, namespace, selector or None)
                if selector and self.cluster.is_ready(p)]

    def _visible(self, revision: Revision, kind: kinds.Kind) -> list[Obj]:
        return [o for o in self.cluster.store.raw_list(kind) if self.mesh.sees(revision, o)]

    @staticmethod
    def _sidecar_revision(pod: Obj) -> str | None:
        return (pod["metadata"].get("annotations") or {}).get(facts.REV_ANNOTATION)

    @staticmethod
    def _match(vs: Obj, path: str, source_labels: dict[str, str] | None,
               context: set[str] | None = None) -> dict[str, Any] | None:
        """`context`: "mesh" for sidecars, or the namespace/name of the gateway applying the route."""
        for route in vs["spec"].get("http", []):
            matches = route.get("match") or [{}]
            for match in matches:
                wanted_gateways = {g if "/" in g or g == "mesh" else f"{namespace_of(vs)}/{g}"
                                   for g in match.get("gateways") or []}
                if wanted_gateways and context is not None and not wanted_gateways & context:
                    continue
                uri = match.get("uri") or {}
                if "exact" in uri and path != uri["exact"]:
                    continue
                if "prefix" in uri and not path.startswith(uri["prefix"]):
                    continue
                wanted = match.get("sourceLabels")
                if wanted and (source_labels is None or any(source_labels.get(k) != v for k, v in wanted.items())):
                    continue
                return route
        return None

    def _forward(self, revision: Revision, vs: Obj, route: dict[str, Any], path: str, host: str) -> HttpResponse:
        destinations = route.get("route") or []
        if not destinations:
            return _response(404)
        weights = [int(d.get("weight", 100 if len(destinations) == 1 else 0)) for d in destinations]
        weights = self.cluster.hooks.apply("route_weights", weights, revision=revision.name,
                                           install_order=revision.install_order, virtual_service=name_of(vs))
        chosen = self.cluster.rng.choices(destinations, weights=weights)[0] if sum(weights) else destinations[0]
        target = chosen["destination"]
        path = (route.get("rewrite") or {}).get("uri") or path
        ref = _service_ref(target["host"], namespace_of(vs) or "")
        subset_labels = self._subset(revision, ref, target.get("subset"))
        if subset_labels is None:
            return _response(503, "no healthy upstream")
        return self._call_service(revision, ref, subset_labels, path, host)

    def _subset(self, revision: Revision, ref: tuple[str, str], subset: str | None) -> dict[str, str] | None:
        if not subset:
            return {}
        for rule in self._visible(revision, kinds.DESTINATION_RULE):
            if _service_ref(rule["spec"].get("host", ""), namespace_of(rule) or "") != ref:
                continue
            for entry in rule["spec"].get("subsets", []):
                if entry.get("name") == subset:
                    return dict(entry.get("labels") or {})
        return None  # an undefined subset has no endpoints

    def _call_service(self, revision: Revision | None, ref: tuple[str, str], subset_labels: dict[str, str],
                      path: str, host: str) -> HttpResponse:
        namespace, name = ref
        service = self.cluster.store.raw(kinds.SERVICE, name, namespace)
        if service is None:
            return _response(503, "no healthy upstream")
        selector = {**(service["spec"].get("selector") or {}), **subset_labels}
        pods = self._ready_pods(namespace, selector)
        if not pods:
            return _response(503, "no healthy upstream")
        pod = self.cluster.rng.choice(pods)
        target = self.mesh.revisions.get(self._sidecar_revision(pod) or "")
        if revision is not None and target is not None and revision.root != target.root:
            # Each sidecar checks the other's certificate against its own root (mTLS between the revisions).
            return _response(503, "upstream connect error or disconnect/reset before headers. reset reason: "
                                  "connection failure, transport failure reason: TLS_error: CERTIFICATE_VERIFY_FAILED")
        return self._app(pod, path, host)

    # -- the sample apps -------------------------------------------------------------------------
    def _app(self, pod: Obj, path: str, host: str) -> HttpResponse:
        labels = labels_of(pod)
        if labels.get("istio") == "egressgateway":
            return self._through_egress_gateway(pod, path, host)
        app, version, podname = labels.get("app", ""), labels.get("version", "v1"), name_of(pod)
        ns = namespace_of(pod) or ""
        if app == "productpage":
            return self._productpage(pod, path)
        if app == "reviews":
            return _response(200, json.dumps(_reviews_body(version, podname)), **{"content-type": "application/json"})
        if app in ("ratings", "details"):
            return _response(200, json.dumps({"id": 0, "app": app, "podname": podname}),
                             **{"content-type": "application/json"})
        if app == "nginx-sample":
            return _response(200, "<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head>"
                                  f"<body>{podname}</body></html>", **{"content-type": "text/html"})
        if app in ("echo-sample", "external-http"):
            return _response(200, json.dumps({"path": path, "host": host, "pod": podname, "namespace": ns}),
                             **{"content-type": "application/json"})
        return _response(200, f"{app} {version} {podname}")

    def _productpage(self, pod: Obj, path: str) -> HttpResponse:
        if path.startswith("/api/v1/products/") and path.endswith("/reviews"):
            return self.from_pod(pod, f"http://reviews:9080/reviews/{path.split('/')[4]}")
        if path == "/health":
            return _response(200, "Product page is healthy")
        if path != "/productpage":
            return _response(404)
        # front() (samples/bookinfo/src/productpage/productpage.py@1.30.3): details, then reviews; 200 either way, with
        # each backend's part or its error (templates/productpage.html).
        details = self.from_pod(pod, "http://details:9080/details/0")
        reviews = self.from_pod(pod, "http://reviews:9080/reviews/0")
        parts = ["<html><head><title>Simple Bookstore App</title></head><body>"]
        parts.append("<h4>Book Details</h4>" if details.status == 200 else
                     "<p>Error fetching product details</p>\n"
                     "<p>Sorry, product details are currently unavailable for this book.</p>")
        parts.append(f"<small>Reviews served by: {json.loads(reviews.body).get('podname', '')}</small>"
                     if reviews.status == 200 else "<p>Error fetching product reviews</p>\n"
                     "<p>Sorry, product reviews are currently unavailable for this book.</p>")
        return _response(200, "".join(parts) + "</body></html>", **{"content-type": "text/html; charset=utf-8"})


def _reviews_body(version: str, podname: str) -> dict[str, Any]:
    """samples/bookinfo/src/reviews: v1 has no rating, v2 black stars, v3 red stars."""
    reviewers = [("Reviewer1", "An extremely entertaining play by Shakespeare.", 5),
                 ("Reviewer2", "Absolutely fun and entertaining.", 4)]
    reviews = []
    for reviewer, text, stars in reviewers:
        entry: dict[str, Any] = {"reviewer": reviewer, "text": text}
        if version in ("v2", "v3"):
            entry["rating"] = {"stars": stars, "color": "black" if version == "v2" else "red"}
        reviews.append(entry)
    return {"id": "0", "podname": podname, "clustername": "null", "reviews": reviews}


def _is_address(hostname: str) -> bool:
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return True


def _proxy_env(pod: Obj) -> dict[str, str]:
    spec = pod.get("spec") or {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if container.get("name") == facts.PROXY_CONTAINER:
            return {e["name"]: str(e.get("value", "")) for e in container.get("env") or []}
    return {}


def _prefix_matches(prefix: str, path: str) -> bool:
    """A PathPrefix matches by whole path elements: /reviews matches /reviews and /reviews/0, not /reviewsx."""
    prefix = prefix.rstrip("/")
    return not prefix or path == prefix or path.startswith(prefix + "/")


def _host_matches(pattern: str, host: str) -> bool:
    pattern = pattern.split("/", 1)[-1]
    return pattern == "*" or pattern == host or (pattern.startswith("*.") and host.endswith(pattern[1:]))


def _service_ref(host: str, default_namespace: str) -> tuple[str, str]:
    """(namespace, name) of a host: short names resolve in the namespace they are written in."""
    parts = host.split(":")[0].split(".")
    return (parts[1], parts[0]) if len(parts) > 1 else (default_namespace, parts[0])
