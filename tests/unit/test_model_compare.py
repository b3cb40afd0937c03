"""The model-vs-real comparison: snapshots, shapes and differences (pure functions, no cluster)."""

from __future__ import annotations

from pathlib import Path

from multirev.backends.local.compare import (
    Difference,
    analyze_findings,
    describe,
    diff_objects,
    diff_values,
    push_shape,
)
from multirev.backends.local.differences import KNOWN, explain


def test_push_lines_compare_by_form_not_by_counters() -> None:
    a = ("2026-11-30T08:00:00.1Z\tinfo\tads\tPush debounce stable[12] 1 for config VirtualService/app/p: "
         "100.2ms since last change, 103ms since last push, full=true")
    b = ("Push debounce stable[3] 1 for config VirtualService/app/p: 101ms since last change, 1.5s since last push, "
         "full=true")
    assert push_shape(a) == push_shape(b)
    assert push_shape(a) != push_shape(b.replace("full=true", "forced=true"))


def test_analyze_findings_name_code_and_resource() -> None:
    out = ("Error [IST0101] (VirtualService app/dangling) Referenced gateway not found: \"no-such-gateway\"\n"
           "Info [IST0102] (Namespace app) The namespace is not enabled for Istio injection.\n")
    assert analyze_findings(out) == ["Error IST0101 VirtualService app/dangling", "Info IST0102 Namespace app"]


def test_webhook_descriptions_carry_selectors_and_service_references() -> None:
    hook = {"kind": "MutatingWebhookConfiguration", "metadata": {"name": "w", "labels": {"istio.io/rev": "a",
                                                                                           "helm.sh/chart": "x"}},
            "webhooks": [{"name": "rev.namespace.sidecar-injector.istio.io",
                          "clientConfig": {"service": {"namespace": "ns", "name": "istiod-a", "path": "/inject"}},
                          "namespaceSelector": {"matchLabels": {"istio.io/rev": "a"}}}]}
    shown = describe(hook)
    assert shown["labels"] == {"istio.io/rev": "a"}
    assert shown["webhooks"][0]["service"] == "ns/istiod-a:/inject"


def test_differences_name_the_object_and_the_field() -> None:
    model = {("Service", "ns", "istiod-a"): {"labels": {"app": "istiod"}}, ("ConfigMap", "ns", "x"): {"labels": {}}}
    real = {("Service", "ns", "istiod-a"): {"labels": {"app": "istiod", "istio.io/rev": "a"}}}
    found = [str(d) for d in diff_objects("install", model, real)]
    assert "[install] ConfigMap/ns/x: only in the model" in found
    assert any("Service/ns/istiod-a: labels" in d and "istio.io/rev" in d for d in found)
    assert [str(d) for d in diff_values("purge", "removed", ["a", "b"], ["b", "c"])] == [
        "[purge] removed: only in the model: a", "[purge] removed: only on the real cluster: c"]


def test_every_listed_simplification_is_justified_and_documented() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "model-vs-real.md").read_text()
    for item in KNOWN:
        assert len(item.why) > 40, f"{item.id}: say why the model keeps this difference"
        assert f"`{item.id}`" in docs, f"docs/model-vs-real.md does not list {item.id}"


def test_an_unlisted_difference_is_unexplained() -> None:
    assert explain(Difference("install", "Widget/ns/never-seen", "only in the model")) is None
