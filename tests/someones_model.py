"""The model as someone's cluster that already runs two revisions, for --installed self-tests: the owner's install,
what the existing backend's stop removes, and every object to compare before and after a run."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from fixtures.mesh import build_mesh
from multirev.backends.simulated.backend import SimulatedBackend
from multirev.cleanup import run_labelled_kinds
from multirev.istio import facts
from multirev.kube import kinds
from multirev.plan import RUN_ID_LABEL, MeshPlan
from multirev.profile import load_profile
from multirev.runrecord import record_namespace

OWNER = "owner"


def owners_plan(layout: str = "separate", stable_revision: str | None = None) -> MeshPlan:
    """The `current` profile's pair as the owner installed it; `stable_revision` "default": the stable one installed
    without a revision (facts.DEFAULT_REVISION), as Istio's canary-upgrade page starts."""
    profile = load_profile("current", layout=layout)
    if stable_revision:
        profile = replace(profile, stable=replace(profile.stable, revision=stable_revision))
    return MeshPlan(profile, OWNER)


def install_owners_mesh(backend: SimulatedBackend, cluster: Any, work: Path, layout: str = "separate",
                        stable_revision: str | None = None) -> MeshPlan:
    """`owners_plan` installed by the model's istioctl under the run id `owner` (revisions, tags, gateways); its app
    namespaces removed, as a run's are its own."""
    plan = owners_plan(layout, stable_revision)
    build_mesh(plan, backend, cluster, work, set())
    for plane in plan.planes:
        for app in plane.plane.app_namespaces:
            cluster.delete(kinds.NAMESPACE, app)
    cluster.advance()
    return plan


def stop_like_existing(cluster: Any, run_id: str) -> None:
    """What the existing backend's stop does (multirev/backends/existing.py): the run's labelled objects, then its
    namespaces and its record."""
    selector = {RUN_ID_LABEL: run_id}
    for kind in run_labelled_kinds(installs=True):
        for obj in cluster.list(kind, labels=selector):
            cluster.delete(kind, obj["metadata"]["name"], obj["metadata"].get("namespace"))
    for namespace in cluster.list(kinds.NAMESPACE, labels=selector):
        cluster.delete(kinds.NAMESPACE, namespace["metadata"]["name"])
    cluster.delete(kinds.NAMESPACE, record_namespace(run_id))


def objects(cluster: Any) -> dict[str, Any]:
    """Every object, keyed `kind namespace/name`, without resourceVersion (which any write changes)."""
    cluster.advance()
    found = {}
    for obj in cluster.store.all():
        obj = copy.deepcopy(obj)
        obj["metadata"].pop("resourceVersion", None)
        found[f"{obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"] = obj
    return found


# -- someone's default revision, installed with Helm -------------------------------------------------------------

HELM_DEFAULT_NAMESPACE = "istio-system"
HELM_DEFAULT_APPS = "shop"  # the owner's app namespace, injected by the default revision (istio-injection=enabled)
# The owner's istiod sees only namespaces labelled so: without discoverySelectors it would watch the run's namespaces
# too, and the run refuses that (multirev/footprint.py foreign_istiod_refusals).
HELM_DEFAULT_DISCOVERY = {"mesh-team/discovery": "enabled"}


def helm_default_mesh(version: str = "1.29.6") -> list[dict]:
    """A default revision as Istio's Helm charts install it (base with defaultRevision=default, istiod without a
    revision): Deployment and Service `istiod`, the default injector `istio-sidecar-injector` labelled
    istio.io/rev=default with its four webhooks, `istio-validator-istio-system` and `istiod-default-validator`, the mesh
    ConfigMap `istio`, and **no** `istio.io/tag=default` webhook (istio@1.30.3: manifests/charts/istio-control/
    istio-discovery/templates/{deployment,service,mutatingwebhook,validatingwebhookconfiguration,configmap}.yaml and
    manifests/charts/base/templates/defaultrevision-validatingwebhookconfiguration.yaml; the revision label value is
    `default` where no revision is set). Webhooks fail closed, as istiod makes them once it answers."""
    ns = HELM_DEFAULT_NAMESPACE
    helm = {"app.kubernetes.io/managed-by": "Helm"}
    annotations = {"meta.helm.sh/release-name": "istiod", "meta.helm.sh/release-namespace": ns}
    rev = {facts.REV_LABEL: "default"}
    service = {"name": "istiod", "namespace": ns, "port": 443}
    ca = "b3duZXJzLWNh"  # the owner's istiod's CA bundle (base64 of "owners-ca")

    def hook(name: str, path: str, ns_selector: dict, obj_selector: dict) -> dict:
        return {"name": name, "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                "clientConfig": {"service": {**service, "path": path}, "caBundle": ca},
                "namespaceSelector": ns_selector, "objectSelector": obj_selector}

    no_injection = {"key": facts.INJECTION_LABEL, "operator": "DoesNotExist"}
    no_rev = {"key": facts.REV_LABEL, "operator": "DoesNotExist"}
    not_false = {"key": facts.INJECT_POD_LABEL, "operator": "NotIn", "values": ["false"]}
    injector = [
        hook(facts.REV_NAMESPACE_WEBHOOK, facts.INJECT_PATH, {"matchExpressions": [
            {"key": facts.REV_LABEL, "operator": "In", "values": ["default"]}, no_injection]},
            {"matchExpressions": [not_false]}),
        hook(facts.REV_OBJECT_WEBHOOK, facts.INJECT_PATH, {"matchExpressions": [no_rev, no_injection]},
             {"matchExpressions": [not_false, {"key": facts.REV_LABEL, "operator": "In", "values": ["default"]}]}),
        hook(facts.DEFAULT_NAMESPACE_WEBHOOK, facts.INJECT_PATH, {"matchExpressions": [
            {"key": facts.INJECTION_LABEL, "operator": "In", "values": ["enabled"]}]},
            {"matchExpressions": [not_false]}),
        hook(facts.DEFAULT_OBJECT_WEBHOOK, facts.INJECT_PATH, {"matchExpressions": [no_injection, no_rev]},
             {"matchExpressions": [{"key": facts.INJECT_POD_LABEL, "operator": "In", "values": ["true"]}, no_rev]}),
    ]
    mesh = yaml.safe_dump({"discoverySelectors": [{"matchLabels": HELM_DEFAULT_DISCOVERY}], "rootNamespace": ns})
    meta = {"namespace": ns, "labels": {**helm, **rev, "app": "istiod", "istio": "pilot"}, "annotations": annotations}
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": ns, "labels": {**HELM_DEFAULT_DISCOVERY, "team": "mesh"}}},
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": HELM_DEFAULT_APPS,
                      "labels": {**HELM_DEFAULT_DISCOVERY, facts.INJECTION_LABEL: "enabled", "team": "shop"}}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio", **meta}, "data": {"mesh": mesh}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "istiod", **meta},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "istiod", "istio": "pilot"}},
                  "template": {"metadata": {"labels": {"app": "istiod", "istio": "pilot", **rev}},
                               "spec": {"containers": [{"name": facts.ISTIOD_CONTAINER,
                                                        "image": f"docker.io/istio/pilot:{version}"}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "istiod", **meta},
         "spec": {"selector": {"app": "istiod", "istio": "pilot"}, "clusterIP": "10.96.0.15",
                  "ports": [{"name": "https-webhook", "port": 443, "targetPort": 15017}]}},
        {"apiVersion": kinds.MUTATING_WEBHOOK.api_version, "kind": "MutatingWebhookConfiguration",
         "metadata": {"name": "istio-sidecar-injector", "labels": {**helm, **rev, "app": "sidecar-injector"},
                      "annotations": annotations},
         "webhooks": injector},
        {"apiVersion": kinds.VALIDATING_WEBHOOK.api_version, "kind": "ValidatingWebhookConfiguration",
         "metadata": {"name": f"istio-validator-{ns}", "labels": {**helm, **rev, "app": "istiod", "istio": "istiod"},
                      "annotations": annotations},
         "webhooks": [hook(facts.VALIDATION_WEBHOOK, facts.VALIDATE_PATH, {},
                           {"matchExpressions": [{"key": facts.REV_LABEL, "operator": "In", "values": ["default"]}]})]},
        {"apiVersion": kinds.VALIDATING_WEBHOOK.api_version, "kind": "ValidatingWebhookConfiguration",
         "metadata": {"name": facts.DEFAULT_VALIDATOR, "labels": {**helm, **rev, "app": "istiod", "istio": "istiod"},
                      "annotations": {**annotations, "meta.helm.sh/release-name": "istio-base"}},
         "webhooks": [hook("validation.istio.io", facts.VALIDATE_PATH, {},
                           {"matchExpressions": [{"key": facts.REV_LABEL, "operator": "DoesNotExist"}]})]},
    ]


def install_helm_default_mesh(cluster: Any, version: str = "1.29.6") -> None:
    """The owner's mesh, its istiod ready and its root written where it watches, as long before any run."""
    for obj in helm_default_mesh(version):
        cluster.apply(obj)
    cluster.clock.sleep(60)  # logical time: the istiod pod becomes ready
    cluster.advance()
    assert cluster.get(kinds.CONFIGMAP, "istio-ca-root-cert", HELM_DEFAULT_APPS) is not None, "owner's istiod not up"
