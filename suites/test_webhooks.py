"""Every Istio injector webhook calls a Service that exists."""

from __future__ import annotations

from fixtures.mesh import MeshSetup
from multirev import attach
from multirev.checks.webhooks import check_webhook_services
from multirev.conformance import conformance
from multirev.kube import kinds
from suites.conftest import assert_no_problems


@conformance(feature="webhooks", canary=True)
def test_injector_webhooks_point_at_existing_services(mesh: MeshSetup) -> None:
    """Certifies that every Istio MutatingWebhookConfiguration (each revision's injector and each tag's
    webhook, all labelled app=sidecar-injector) calls a Service that exists. A tag set without
    `-i <namespace>` points at istio-system while istiod runs elsewhere, and every pod creation under
    that tag then fails; the message names the webhook, the missing Service and the fix."""
    cluster = mesh.cluster
    webhooks = cluster.list(kinds.MUTATING_WEBHOOK, labels={"app": "sidecar-injector"})
    services = cluster.list(kinds.SERVICE)
    assert webhooks, "no MutatingWebhookConfiguration labelled app=sidecar-injector exists"
    attach.text("webhook service references", "\n".join(
        f"{w['metadata']['name']} {e['name']} -> {e['clientConfig']['service']['namespace']}/"
        f"{e['clientConfig']['service']['name']}" for w in webhooks for e in w.get("webhooks", [])
        if (e.get("clientConfig") or {}).get("service")))
    assert_no_problems(check_webhook_services(webhooks, services), "injector webhooks")
