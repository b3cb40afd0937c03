"""Every Istio injector webhook calls a Service that exists, and every Istio webhook its own revision's istiod."""

from __future__ import annotations

from fixtures.mesh import MeshSetup
from multirev import attach
from multirev.checks.webhooks import (
    check_default_validator,
    check_one_webhook_per_tag,
    check_webhook_revisions,
    check_webhook_services,
    is_istio_webhook_configuration,
    istiod_namespaces,
)
from multirev.conformance import conformance
from multirev.kube import kinds
from multirev.kube.objects import Obj, labels_of, name_of
from suites.conftest import assert_no_problems
from suites.scenario import unlabelled_config_problems


def _references(configs: list[Obj]) -> str:
    return "\n".join(
        f"{w['kind']} {name_of(w)} (istio.io/rev={labels_of(w).get('istio.io/rev')}) {e['name']} -> "
        f"{e['clientConfig']['service']['namespace']}/{e['clientConfig']['service']['name']}"
        for w in configs for e in w.get("webhooks", []) if (e.get("clientConfig") or {}).get("service"))


@conformance(feature="webhooks", canary=True)
def test_injector_webhooks_point_at_existing_services(mesh: MeshSetup) -> None:
    """Certifies that every Istio MutatingWebhookConfiguration (each revision's injector and each tag's
    webhook, all labelled app=sidecar-injector) calls a Service that exists. A tag set without
    `-i <namespace>` points at istio-system while istiod runs elsewhere, and every pod creation under
    that tag then fails; the message names the webhook, the missing Service and the fix. Each tag has one such
    webhook: `tag set --overwrite` with another `-i` leaves the old one behind, named here with its tag."""
    cluster = mesh.cluster
    webhooks = cluster.list(kinds.MUTATING_WEBHOOK, labels={"app": "sidecar-injector"})
    services = cluster.list(kinds.SERVICE)
    assert webhooks, "no MutatingWebhookConfiguration labelled app=sidecar-injector exists"
    attach.text("webhook service references", _references(webhooks))
    assert_no_problems(check_webhook_services(webhooks, services) + check_one_webhook_per_tag(webhooks),
                       "injector webhooks")


@conformance(feature="webhooks", canary=True)
def test_webhooks_call_their_own_revisions_istiod(mesh: MeshSetup) -> None:
    """Certifies that every webhook of every Istio MutatingWebhookConfiguration and ValidatingWebhookConfiguration
    (each revision's injector and validator, each tag's webhook, the default tag's and istiod-default-validator)
    calls `istiod-<rev>` in the namespace where that revision's istiod Deployment runs, `<rev>` being the
    configuration's istio.io/rev label. A webhook calling the other revision's istiod calls a Service that exists
    (in the shared layout both run in istio-system) and so passes the test above, while pods or config are handled
    by the wrong control plane; the message names the webhook, the Service it calls, the one expected and the fix.
    That each revision's injector and validator exist is the install test's verdict."""
    cluster = mesh.cluster
    mutating = [c for c in cluster.list(kinds.MUTATING_WEBHOOK) if is_istio_webhook_configuration(c)]
    validating = [c for c in cluster.list(kinds.VALIDATING_WEBHOOK) if is_istio_webhook_configuration(c)]
    istiods = istiod_namespaces(cluster.list(kinds.DEPLOYMENT, labels={"app": "istiod"}))
    attach.text("webhook service references", _references(mutating + validating)
                + "\n\nistiod Deployments: " + ", ".join(f"{rev} in {'/'.join(ns)}" for rev, ns in istiods.items()))
    assert_no_problems(check_webhook_revisions(mutating, validating, istiods), "webhook revisions")


@conformance(feature="webhooks", canary=True)
def test_one_default_validator_calls_the_default_tags_revision(mesh: MeshSetup) -> None:
    """Certifies that exactly one webhook validates Istio config that carries no istio.io/rev label (the default
    validator, istiod-default-validator, which the first install makes with the `default` tag), and that it calls
    the istiod of the revision the `default` tag names (without a default tag, as Helm's base chart makes it, the
    revision it is labelled for). A second one
    (a previous default revision's validator left active) has that config validated by two control planes; one
    calling a revision that is gone rejects it once it fails closed. The message names each webhook, the Service it
    calls, the one expected and the fix."""
    cluster = mesh.cluster
    mutating = [c for c in cluster.list(kinds.MUTATING_WEBHOOK) if is_istio_webhook_configuration(c)]
    validating = [c for c in cluster.list(kinds.VALIDATING_WEBHOOK) if is_istio_webhook_configuration(c)]
    istiods = istiod_namespaces(cluster.list(kinds.DEPLOYMENT, labels={"app": "istiod"}))
    attach.text("validating webhook references", _references(validating))
    assert_no_problems(check_default_validator(mutating, validating, istiods), "default validator")


@conformance(feature="webhooks", canary=True)
def test_config_without_revision_label_is_validated(mesh: MeshSetup) -> None:
    """Certifies that Istio config carrying no istio.io/rev label is validated: a valid DestinationRule is admitted
    (a default validator that calls a revision that is gone refuses every such object once it fails closed:
    istio/istio #35590, #32143), and one carrying the annotation every istiod's validation rejects is denied by a
    validating webhook (without an active default validator, invalid config reaches every istiod). Both asked by
    server-side dry run in the stable app namespace: nothing is created."""
    namespace = mesh.plan.plane("stable").plane.app_namespaces[0]
    assert_no_problems(unlabelled_config_problems(mesh, namespace), "validation of config without a revision label")
