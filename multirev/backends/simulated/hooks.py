"""Named points where the model's behaviour can be changed; faults attach functions to them.

Each point passes a value through every attached function, in order, with keyword context.
The points and their context are listed in docs/faults.md (the fault-plugin API).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

POINTS = {
    "namespace_labels": "labels a Namespace gets when applied or labelled (ctx: name)",
    "tag_webhook": "the MutatingWebhookConfiguration `istioctl tag set` writes (ctx: tag, revision, istio_namespace, "
                   "install_order: the revision's, istiods: install_order -> (istiod Service, namespace))",
    "tag_objects": "the objects `istioctl tag set` writes, after tag_webhook (ctx: tag, revision, istio_namespace, "
                   "install_order: the revision's)",
    "tag_revision": "the revision `istioctl tag set` makes a tag point at (ctx: tag, install_order, revisions)",
    "install_objects": "objects `istioctl install` creates for a revision (ctx: revision, install_order, istiods: "
                       "install_order -> (istiod Service, namespace) of the revisions installed so far)",
    "istiod_ready": "whether a revision's istiod pods become ready (ctx: revision, install_order)",
    "proxy_image": "the sidecar image the injector puts into a pod (ctx: revision, version)",
    "proxy_version": "the version a proxy reports (`pilot-agent version --short`) (ctx: revision)",
    "push_targets": "names of the revisions whose istiod pushes a config change (ctx: key, revisions)",
    "mesh_config": "the meshConfig an `istioctl install` applies (ctx: revision, previous: the revision's current "
                   "meshConfig or None on first install, install_order)",
    "uninstall_targets": "the objects `istioctl uninstall` deletes (ctx: mode revision|purge, revision, all_objects)",
    "uninstall_namespace_labels": "a Namespace's labels after `istioctl uninstall`, which leaves them as they are "
                                  "(ctx: name, mode revision|purge, revision)",
    "pod_admitted": "a Pod after mutating admission, as it is stored (ctx: namespace)",
    "istio_config": "an Istio config object (Gateway, VirtualService, ...) as it is stored when applied",
    "gateway_selector": "the pod selector of a Gateway as a revision's gateway reads it (ctx: gateway, install_order)",
    "gateway_server_port": "the port number of a Gateway server as a revision's gateway reads it (ctx: gateway, "
                           "install_order)",
    "gateway_response": "the response an ingress gateway returns (ctx: revision, install_order)",
    "gateway_config": "the Gateways or VirtualServices a revision's ingress gateway routes by, those its istiod sees "
                      "(ctx: revision, install_order, kind: Gateway|VirtualService, unseen: the others of that kind)",
    "proxy_discovery_address": "the istiod address an injected proxy connects to (ctx: revision, install_order, "
                               "restarted, addresses: install_order -> address)",
    "mesh_response": "the response to an in-mesh request (ctx: namespace, rollout_in_progress, source_app: the calling "
                     "pod's app label, url)",
    "analyze_findings": "what `istioctl analyze` reports for a namespace (ctx: namespace)",
    "proxy_metadata": "the proxyMetadata (meshConfig.defaultConfig) an injected proxy gets as env (ctx: revision)",
    "ca_root": "the root certificate (PEM) a revision's istiod signs with and publishes (ctx: revision, namespace, "
               "install_order, plugged: whether it came from a `cacerts` Secret)",
    "route_weights": "the weights a route's destinations are drawn with (ctx: revision, install_order, "
                     "virtual_service)",
    "gateway_api_owners": "the revisions whose istiod takes a Gateway or HTTPRoute as its own (ctx: obj, revisions)",
    "gateway_api_foreign_status_writers": "the revisions that write an HTTPRoute's status without owning it, none in "
                                          "a healthy mesh (ctx: others: the revisions that do not own it)",
    "gateway_api_routes": "the HTTPRoutes a Gateway API gateway's pods route by, those their revision's istiod sees "
                          "(ctx: gateway, moved: deployed now by another revision than first)",
    "http_route_weights": "the weights an HTTPRoute rule's backendRefs are drawn with (ctx: revision, install_order, "
                          "route)",
}


class Hooks:
    def __init__(self) -> None:
        self._fns: dict[str, list[Callable[..., Any]]] = defaultdict(list)

    def add(self, point: str, fn: Callable[..., Any]) -> None:
        if point not in POINTS:
            raise KeyError(f"unknown hook point '{point}'; known: {', '.join(sorted(POINTS))}")
        self._fns[point].append(fn)

    def has(self, point: str) -> bool:
        return bool(self._fns.get(point))

    def apply(self, point: str, value: Any, **ctx: Any) -> Any:
        for fn in self._fns.get(point, []):
            value = fn(value, **ctx)
        return value
