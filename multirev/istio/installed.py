"""The revisions a cluster already runs, for `--installed stable=<revision>,canary=<revision>`: found from what
their install left, whichever tool made it (istioctl and Helm render the same istiod chart).

- a revision is its istiod Deployment: labelled app=istiod and istio.io/rev=<revision>, named istiod-<revision>
  (istio@1.30-dev and 1.31-dev: manifests/charts/istio-control/istio-discovery/templates/deployment.yaml);
- its version is its image's tag (`<hub>/pilot:<version>[-<variant>]`, the same template);
- its tags are the MutatingWebhookConfigurations labelled istio.io/tag=<tag> and istio.io/rev=<revision>
  (templates/revision-tags-mwc.yaml; what `istioctl tag list` reads: istioctl/pkg/tag/util.go);
- which namespaces it watches is its mesh config's discoverySelectors (ConfigMap istio-<revision>, key `mesh`);
- what it is configured with is its mesh config (the same ConfigMap); the report shows the settings the suite's
  scenarios depend on (MESH_SETTINGS);
- its ingress gateway is a Service whose pods carry istio.io/rev=<revision> and an `istio` label: istioctl's
  gateway chart and Helm's `gateway` chart both label their pods so (gateways/istio-ingress and gateway
  templates/deployment.yaml).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from multirev.backends.base import Cluster
from multirev.errors import UsageError
from multirev.istio import facts
from multirev.istio.capabilities import check_known
from multirev.istio.namespace_controller import ISTIOD_LABELS, Istiod, mesh_config_map, revision_of
from multirev.istio.versions import IstioVersion
from multirev.kube import kinds
from multirev.kube.objects import Obj, labels_of, matches_selector, name_of, namespace_of
from multirev.observe import mesh_of
from multirev.profile import Profile

# Mesh-config settings the report shows for each certified revision (api@v1.30.8: mesh/v1alpha1/config.proto field
# names; DNS capture is proxy metadata, istio@1.30-dev: pkg/model/proxy.go DNSCapture): which namespaces it sees,
# its trust domain and root namespace, and what the egress scenario needs.
MESH_SETTINGS = ("discoverySelectors", "trustDomain", "rootNamespace", "outboundTrafficPolicy.mode", "accessLogFile",
                 "defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE")


@dataclass(frozen=True)
class GatewayService:
    namespace: str
    name: str
    pod_labels: dict[str, str]  # what its Service selects on (the suite's Gateways select these plus the revision)


@dataclass(frozen=True)
class InstalledRevision:
    role: str
    revision: str
    namespace: str
    version: IstioVersion
    tags: tuple[str, ...]
    # Labels that put a namespace in its view: {} when it watches every namespace; None when none can be derived
    # (selectors with only matchExpressions).
    discovery_labels: dict[str, str] | None
    ingress: GatewayService | None
    egress: GatewayService | None
    mesh_settings: dict[str, str]

    @property
    def tag(self) -> str:
        """The tag the run labels its app namespaces with: the revision's first non-default tag, else the revision
        itself (a namespace labelled istio.io/rev=<revision> is injected by it without a tag)."""
        named = [t for t in self.tags if t != facts.DEFAULT_TAG]
        return named[0] if named else self.revision


def version_of(deployment: Obj) -> IstioVersion | None:
    containers = deployment["spec"]["template"]["spec"].get("containers") or []
    container = next((c for c in containers if c.get("name") == facts.ISTIOD_CONTAINER), containers[0] if containers
                     else {})
    return IstioVersion.try_parse(facts.image_version(container.get("image") or ""))


def find_installed(cluster: Cluster, wanted: dict[str, str]) -> dict[str, InstalledRevision]:
    """Each named revision as the cluster runs it; a missing or unreadable one is refused in one line that names
    what the cluster has."""
    istiods = cluster.list(kinds.DEPLOYMENT, labels=ISTIOD_LABELS)
    by_revision: dict[str, list[Obj]] = {}
    for deployment in istiods:
        by_revision.setdefault(revision_of(deployment), []).append(deployment)
    found = {}
    for role, revision in wanted.items():
        deployments = [d for d in by_revision.get(revision, []) if name_of(d) == facts.istiod_name(revision)]
        if not deployments:
            raise UsageError(f"--installed {role}={revision}: this cluster runs no revision {revision}; it runs "
                             f"{describe(istiods)}")
        if len(deployments) > 1:
            where = ", ".join(namespace_of(d) or "" for d in deployments)
            raise UsageError(f"--installed {role}={revision}: revision {revision} runs in several namespaces "
                             f"({where}); certify one cluster's revision at a time")
        [deployment] = deployments
        version = version_of(deployment)
        if version is None:
            raise UsageError(f"--installed {role}={revision}: cannot tell the Istio version of Deployment "
                             f"{namespace_of(deployment)}/{name_of(deployment)} from its image")
        namespace = namespace_of(deployment) or ""
        mesh = cluster.get(kinds.CONFIGMAP, mesh_config_map(revision), namespace)
        found[role] = InstalledRevision(
            role, revision, namespace, version, tags_of(cluster, revision),
            discovery_labels_of(Istiod.of(deployment, mesh)),
            gateway_of(cluster, revision, "ingressgateway"), gateway_of(cluster, revision, "egressgateway"),
            mesh_settings_of(mesh))
    return found


def mesh_settings_of(configmap: Obj | None) -> dict[str, str]:
    """MESH_SETTINGS as the revision's mesh config sets them (scalars as text, the rest as JSON); unset ones absent."""
    mesh = mesh_of(configmap)
    settings = {}
    for path in MESH_SETTINGS:
        value: Any = mesh
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            settings[path] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return settings


def describe(istiods: list[Obj]) -> str:
    if not istiods:
        return "no istiod (no Deployment labelled app=istiod)"
    return ", ".join(sorted(f"{revision_of(d)} ({namespace_of(d)}, Istio {version_of(d) or 'unknown'})"
                            for d in istiods))


def tags_of(cluster: Cluster, revision: str) -> tuple[str, ...]:
    hooks = cluster.list(kinds.MUTATING_WEBHOOK, labels={facts.REV_LABEL: revision})
    return tuple(sorted({labels_of(h)[facts.TAG_LABEL] for h in hooks if facts.TAG_LABEL in labels_of(h)}))


def discovery_labels_of(istiod: Istiod) -> dict[str, str] | None:
    """The labels a namespace needs to be seen: none without selectors; the first selector made only of
    matchLabels otherwise (a namespace is seen when any selector matches: pkg/kube/namespace/filter.go)."""
    if istiod.selectors is None:
        return {}
    for selector in istiod.selectors:
        if selector and set(selector) == {"matchLabels"}:
            return dict(selector["matchLabels"])
    return None


def gateway_of(cluster: Cluster, revision: str, istio_label: str) -> GatewayService | None:
    """The Service whose selector picks pods of this revision labelled istio=<istio_label>: the suite's Gateways
    select `istio: ingressgateway` (or `egressgateway`) and the revision (multirev/manifests.py own_gateway)."""
    for deployment in sorted(cluster.list(kinds.DEPLOYMENT), key=lambda d: (namespace_of(d), name_of(d))):
        pod_labels = labels_of(deployment["spec"]["template"])
        if pod_labels.get(facts.REV_LABEL) != revision or pod_labels.get("istio") != istio_label:
            continue
        for service in cluster.list(kinds.SERVICE, namespace_of(deployment)):
            selector = (service.get("spec") or {}).get("selector") or {}
            if selector and matches_selector(pod_labels, {"matchLabels": selector}):
                return GatewayService(namespace_of(deployment) or "", name_of(service), dict(selector))
    return None


def certified_profile(profile: Profile, found: dict[str, InstalledRevision]) -> Profile:
    """The profile with each plane the cluster's revision: its version, namespace, revision, tag, discovery labels
    and gateways; the app namespaces stay the profile's (the run creates them). Both revisions in one namespace is
    the shared layout."""
    planes = {}
    for role, got in found.items():
        if got.discovery_labels is None:
            raise UsageError(f"--installed {role}={got.revision}: its discoverySelectors (ConfigMap {got.namespace}/"
                             f"{mesh_config_map(got.revision)}) use only matchExpressions, so the run cannot tell "
                             "which labels put its namespaces in the revision's view; add a matchLabels selector")
        check_known(got.version)  # the suite's facts must cover it, as for a profile's version
        mine = profile.plane(role)
        planes[role] = replace(
            mine, version=got.version, namespace=got.namespace, revision=got.revision, tag=got.tag,
            discovery=tuple(sorted(got.discovery_labels.items())) if got.discovery_labels is not None else None,
            ingress=(got.ingress.namespace, got.ingress.name) if got.ingress else None,
            egress=(got.egress.namespace, got.egress.name) if got.egress else None,
            found_tags=got.tags, mesh_settings=tuple(got.mesh_settings.items()))
    layout = "shared" if planes["stable"].namespace == planes["canary"].namespace else "separate"
    return replace(profile, layout=layout, stable=planes["stable"], canary=planes["canary"])
