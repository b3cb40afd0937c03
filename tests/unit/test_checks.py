"""Checks are plain functions over observed objects: each is shown failing, and naming what fails, on plain data."""

from __future__ import annotations

from multirev.checks.control_plane import ControlPlaneState, KeptPlaneState, check_kept_plane
from multirev.checks.tags import check_namespace_labels_served
from multirev.checks.webhooks import (
    check_default_validator,
    check_one_webhook_per_tag,
    check_webhook_revisions,
    is_istio_webhook_configuration,
    istiod_namespaces,
)
from multirev.checks.xds import PROBE_KINDS, probe_config, push_lines
from multirev.istio.versions import IstioVersion
from multirev.profile import ControlPlane

STABLE = ControlPlane("stable", IstioVersion.parse("1.29.6"), "istio-system", "1-29-6", "stable", ("app-stable",))


def _istiod(rev: str, namespace: str) -> dict:
    name = "istiod" if rev == "default" else f"istiod-{rev}"
    return {"kind": "Deployment", "metadata": {"name": name, "namespace": namespace,
                                               "labels": {"app": "istiod", "istio.io/rev": rev}}}


def _config(kind: str, name: str, labels: dict, *services: tuple[str, str, str]) -> dict:
    return {"kind": kind, "metadata": {"name": name, "labels": labels},
            "webhooks": [{"name": entry, "clientConfig": {"service": {"namespace": ns, "name": svc}}}
                         for entry, ns, svc in services]}


ISTIODS = istiod_namespaces([_istiod("1-29-6", "istio-system"), _istiod("1-30-3", "istio-system"),
                             {"kind": "Deployment", "metadata": {"name": "other", "namespace": "x",
                                                                 "labels": {"app": "istiod", "istio.io/rev": "r"}}}])


def test_istiod_namespaces_follow_the_chart_name() -> None:
    assert ISTIODS == {"1-29-6": ["istio-system"], "1-30-3": ["istio-system"]}
    assert istiod_namespaces([_istiod("default", "istio-system")]) == {"default": ["istio-system"]}


def test_webhook_calling_its_own_revision_passes_and_one_calling_the_other_is_named() -> None:
    """In the shared layout both Services exist; only the revision label tells them apart."""
    tag = _config("MutatingWebhookConfiguration", "istio-revision-tag-canary",
                  {"app": "sidecar-injector", "istio.io/rev": "1-30-3", "istio.io/tag": "canary"},
                  ("rev.namespace.sidecar-injector.istio.io", "istio-system", "istiod-1-30-3"),
                  ("rev.object.sidecar-injector.istio.io", "istio-system", "istiod-1-29-6"))
    validator = _config("ValidatingWebhookConfiguration", "istio-validator-1-29-6-istio-system",
                        {"app": "istiod", "istio.io/rev": "1-29-6"},
                        ("rev.validation.istio.io", "istio-system", "istiod-1-29-6"))
    problems = check_webhook_revisions([tag], [validator], ISTIODS)
    assert problems == [
        "MutatingWebhookConfiguration istio-revision-tag-canary (istio.io/rev=1-30-3) webhook "
        "rev.object.sidecar-injector.istio.io calls Service istio-system/istiod-1-29-6, expected "
        "istio-system/istiod-1-30-3 (revision 1-30-3's own istiod); fix: istioctl tag set canary --revision 1-30-3 "
        "-i istio-system --overwrite"]


def test_validators_revision_webhooks_and_unowned_configurations_are_named() -> None:
    default_validator = _config("ValidatingWebhookConfiguration", "istiod-default-validator",
                                {"app": "istiod", "istio.io/rev": "1-29-6"},
                                ("validation.istio.io", "istio-canary", "istiod-1-29-6"))
    injector = _config("MutatingWebhookConfiguration", "istio-sidecar-injector-1-30-3",
                       {"app": "sidecar-injector", "istio.io/rev": "1-30-3"},
                       ("rev.namespace.sidecar-injector.istio.io", "istio-system", "istiod-1-29-6"))
    unowned = _config("MutatingWebhookConfiguration", "hand-made", {"app": "sidecar-injector"})
    gone = _config("ValidatingWebhookConfiguration", "istio-validator-9-9-9-istio-system",
                   {"app": "istiod", "istio.io/rev": "9-9-9"},
                   ("rev.validation.istio.io", "istio-system", "istiod-9-9-9"))
    foreign = _config("ValidatingWebhookConfiguration", "cert-manager", {"app": "webhook"}, ("v", "cm", "webhook"))
    problems = check_webhook_revisions([injector, unowned], [default_validator, gone, foreign], ISTIODS)
    assert "fix: re-run `istioctl install` of revision 1-30-3" in problems[0]
    assert problems[1] == "MutatingWebhookConfiguration hand-made has no istio.io/rev label, so no revision owns it"
    # the default validator has no istio.io/tag label at 1.18.5, but `tag set default` re-renders it
    assert "expected istio-system/istiod-1-29-6" in problems[2]
    assert "fix: istioctl tag set default --revision 1-29-6 -i istio-system --overwrite" in problems[2]
    assert "revision 9-9-9 has no istiod Deployment istiod-9-9-9 in any namespace" in problems[3]
    assert len(problems) == 4 and not is_istio_webhook_configuration(foreign)


def _kept(**overrides: object) -> KeptPlaneState:
    state = KeptPlaneState(
        control_plane=ControlPlaneState(None, {"spec": {"replicas": 1}, "status": {"readyReplicas": 1}}, {}, {}),
        service={}, configmaps={"istio-1-29-6": {}, "istio-sidecar-injector-1-29-6": {}},
        before={"an Istio CRD": ["CustomResourceDefinition a.istio.io", "CustomResourceDefinition b.istio.io"]},
        after={"an Istio CRD": ["CustomResourceDefinition b.istio.io"]})
    for key, value in overrides.items():
        setattr(state, key, value)
    return state


def test_kept_plane_names_each_missing_object() -> None:
    assert check_kept_plane(STABLE, _kept(after=_kept().before)) == []
    problems = check_kept_plane(STABLE, _kept(service=None, configmaps={"istio-1-29-6": None}))
    assert problems == [
        "Service istio-system/istiod-1-29-6 (what revision 1-29-6's webhooks and proxies call) does not exist",
        "ConfigMap istio-system/istio-1-29-6 (revision 1-29-6's istiod reads it) does not exist",
        "CustomResourceDefinition a.istio.io (an Istio CRD) existed before the uninstall and is gone"]


def test_probe_keys_and_push_lines_match_exactly() -> None:
    keys = {kind: probe_config(kind, "p", "ns", {})[2] for kind in PROBE_KINDS}
    assert keys == {"VirtualService": "VirtualService/ns/p", "DestinationRule": "DestinationRule/ns/p",
                    "Gateway": "Gateway/ns/p", "ServiceEntry": "ServiceEntry/ns/p.example"}
    logs = ("info\tads\tPush debounce stable[3] 1 for config VirtualService/ns/p-2: 100ms since last change\n"
            "info\tads\tPush debounce stable[4] 2 for config VirtualService/ns/p and 1 more configs: 100ms\n")
    assert len(push_lines(logs, "VirtualService/ns/p")) == 1


def test_a_tag_with_two_webhooks_is_named_with_both() -> None:
    """`tag set --overwrite` with another -i leaves the first webhook behind (issue 16, "Also")."""
    def webhook(name: str, tag: str) -> dict:
        return {"metadata": {"name": name, "labels": {"istio.io/tag": tag}}}

    problems = check_one_webhook_per_tag([webhook("istio-revision-tag-prod-istio-a", "prod"),
                                          webhook("istio-revision-tag-prod-istio-b", "prod"),
                                          webhook("istio-revision-tag-dev", "dev")])
    assert len(problems) == 1
    assert "istio-revision-tag-prod-istio-a, istio-revision-tag-prod-istio-b" in problems[0]


def _injector(name: str, rev: str, *selected: str) -> dict:
    """A MutatingWebhookConfiguration shaped as the istiod chart renders a revision's injector or a tag's
    (istio@1.30-dev: templates/mutatingwebhook.yaml, revision-tags-mwc.yaml): one namespace-level webhook per
    name it selects by istio.io/rev, and the object-level one that never matches a labelled namespace."""
    by_namespace = [{"name": f"rev.namespace.{value}", "namespaceSelector": {"matchExpressions": [
        {"key": "istio.io/rev", "operator": "In", "values": [value]},
        {"key": "istio-injection", "operator": "DoesNotExist"}]}} for value in selected]
    by_object = {"name": "rev.object", "namespaceSelector": {"matchExpressions": [
        {"key": "istio.io/rev", "operator": "DoesNotExist"}, {"key": "istio-injection", "operator": "DoesNotExist"}]}}
    return {"metadata": {"name": name, "labels": {"app": "sidecar-injector", "istio.io/rev": rev}},
            "webhooks": [*by_namespace, by_object]}


def _namespace(name: str, labels: dict[str, str] | None = None) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}}}


def test_a_namespace_on_a_served_tag_or_revision_passes_and_one_on_a_missing_tag_is_named() -> None:
    hooks = [_injector("istio-sidecar-injector-1-30", "1-30", "1-30"), _injector("istio-revision-tag-prod", "1-30",
                                                                               "prod")]
    namespaces = [_namespace("on-tag", {"istio.io/rev": "prod"}), _namespace("on-rev", {"istio.io/rev": "1-30"}),
                  _namespace("retired", {"istio.io/rev": "old"}),
                  _namespace("classic", {"istio.io/rev": "old", "istio-injection": "enabled"}),
                  _namespace("plain")]
    problems = check_namespace_labels_served(namespaces, hooks)
    assert len(problems) == 1 and problems[0].startswith(
        "Namespace retired is labelled istio.io/rev=old, but no injector webhook selects it"), problems
    assert "(tags and revisions served: 1-30, prod)" in problems[0]


def test_a_tag_webhook_without_its_tag_label_still_serves_its_namespaces() -> None:
    """A policy stripping istio.io/tag from the tag's webhook leaves injection working: not this check's problem."""
    hook = _injector("istio-revision-tag-prod", "1-30", "prod")
    assert "istio.io/tag" not in hook["metadata"]["labels"]
    assert check_namespace_labels_served([_namespace("on-tag", {"istio.io/rev": "prod"})], [hook]) == []


def _validator(name: str, rev: str, service: tuple[str, str], selector: dict | None) -> dict:
    return {"kind": "ValidatingWebhookConfiguration", "metadata": {"name": name, "labels": {"istio.io/rev": rev}},
            "webhooks": [{"name": "validation.istio.io", **({"objectSelector": selector} if selector is not None
                                                            else {}),
                          "clientConfig": {"service": {"namespace": service[0], "name": service[1]}}}]}


UNLABELLED = {"matchExpressions": [{"key": "istio.io/rev", "operator": "DoesNotExist"}]}
OWN_ONLY = {"matchExpressions": [{"key": "istio.io/rev", "operator": "In", "values": ["1-29-6"]}]}
DEFAULT_TAG = _config("MutatingWebhookConfiguration", "istio-revision-tag-default",
                      {"istio.io/tag": "default", "istio.io/rev": "1-29-6"})


def test_one_default_validator_calling_the_default_tags_revision_passes() -> None:
    validating = [_validator("istiod-default-validator", "1-29-6", ("istio-system", "istiod-1-29-6"), UNLABELLED),
                  _validator("istio-validator-1-29-6-istio-system", "1-29-6", ("istio-system", "istiod-1-29-6"),
                             OWN_ONLY)]
    assert check_default_validator([DEFAULT_TAG], validating, ISTIODS) == []


def test_a_second_default_validator_and_a_wrong_istiod_are_named() -> None:
    validating = [_validator("istiod-default-validator", "1-29-6", ("istio-system", "istiod-1-29-6"), UNLABELLED),
                  _validator("istio-validator-1-30-3-istio-system", "1-30-3", ("istio-system", "istiod-1-30-3"),
                             UNLABELLED)]
    problems = check_default_validator([DEFAULT_TAG], validating, ISTIODS)
    assert problems[0].startswith("2 webhooks validate Istio config without an istio.io/rev label: "
                                  "istio-validator-1-30-3-istio-system (webhook validation.istio.io), "
                                  "istiod-default-validator (webhook validation.istio.io); exactly one should")
    assert problems[1] == (
        "ValidatingWebhookConfiguration istio-validator-1-30-3-istio-system webhook validation.istio.io validates "
        "Istio config without an istio.io/rev label by calling Service istio-system/istiod-1-30-3, but the default "
        "tag names revision 1-29-6, whose istiod is istio-system/istiod-1-29-6; fix: istioctl tag set default "
        "--revision 1-29-6 --overwrite")


def test_a_deactivated_validator_is_not_active_and_the_default_revision_counts_without_a_tag() -> None:
    never = {"matchLabels": {"istio.io/deactivated": "never-match"}}
    istiods = istiod_namespaces([_istiod("default", "istio-system")])
    validating = [_validator("istiod-default-validator", "default", ("istio-system", "istiod"), UNLABELLED),
                  _validator("stale", "default", ("istio-system", "istiod-gone"), never)]
    assert check_default_validator([], validating, istiods) == []
    [missing] = check_default_validator([], validating[1:], istiods)
    assert missing.startswith("no ValidatingWebhookConfiguration validates Istio config without an istio.io/rev "
                              "label, though the default revision is default")


def test_without_a_default_tag_the_validator_calls_the_revision_it_is_labelled_for() -> None:
    """Helm's base chart makes the default validator for `defaultRevision` and no default tag."""
    own = [_validator("istiod-default-validator", "1-29-6", ("istio-system", "istiod-1-29-6"), UNLABELLED)]
    assert check_default_validator([], own, ISTIODS) == []
    other = [_validator("istiod-default-validator", "1-29-6", ("istio-system", "istiod-1-30-3"), UNLABELLED)]
    [problem] = check_default_validator([], other, ISTIODS)
    assert "by calling Service istio-system/istiod-1-30-3, but without a default tag, its own istio.io/rev names " \
           "revision 1-29-6, whose istiod is istio-system/istiod-1-29-6" in problem


def _tag(name: str, revision: str) -> dict:
    return {"metadata": {"name": name, "labels": {"istio.io/tag": "default", "istio.io/rev": revision}}}


def _injected(revision: str) -> dict:
    return {"metadata": {"annotations": {"sidecar.istio.io/status": "{}", "istio.io/rev": revision}}}


def test_default_tag_injection_names_each_way_it_goes_wrong() -> None:
    from multirev.checks.tags import check_default_tag_injection
    from multirev.probes import Admitted

    tag = [_tag("istio-revision-tag-default", "1-31-dev")]
    assert check_default_tag_injection("probe", Admitted(_injected("1-31-dev")), tag, "1-31-dev") == []
    assert check_default_tag_injection("probe", Admitted(_injected("1-31-dev")), tag, None) == []
    [moved] = check_default_tag_injection("probe", Admitted(_injected("1-31-dev")), tag, "default")
    assert moved == "the `default` tag names revision 1-31-dev, expected default"
    [bare] = check_default_tag_injection("probe", Admitted({"metadata": {}}), tag, "1-31-dev")
    assert bare.startswith("a Pod in Namespace probe (labelled istio-injection=enabled) gets no sidecar")
    [other] = check_default_tag_injection("probe", Admitted(_injected("default")), tag, "1-31-dev")
    assert other.endswith("is injected by revision default, but the `default` tag names revision 1-31-dev")
    [refused] = check_default_tag_injection("probe", Admitted(None, "failed calling webhook"), tag, "1-31-dev")
    assert refused.endswith("would be refused at admission: failed calling webhook")
    [missing] = check_default_tag_injection("probe", Admitted(_injected("x")), [], "1-31-dev")
    assert missing.startswith("no `default` tag exists")
    two = [*tag, _tag("istio-revision-tag-default-istio-canary", "1-31-dev")]
    [double] = check_default_tag_injection("probe", Admitted(_injected("1-31-dev")), two, "1-31-dev")
    assert double.startswith("2 MutatingWebhookConfigurations are the `default` tag: istio-revision-tag-default "
                             "(revision 1-31-dev), istio-revision-tag-default-istio-canary (revision 1-31-dev)")


def test_unlabelled_config_validation_names_each_way_it_goes_wrong() -> None:
    from multirev.checks.webhooks import check_unlabelled_config_validated
    from multirev.probes import Admitted

    denied = Admitted(None, 'admission webhook "validation.istio.io" denied the request: configuration is invalid')
    assert check_unlabelled_config_validated("ns", Admitted({}), denied) == []
    [open_] = check_unlabelled_config_validated("ns", Admitted({}), Admitted({}))
    assert "would be admitted: no webhook validates Istio config that names no revision" in open_
    [closed, _] = check_unlabelled_config_validated("ns", Admitted(None, "failed calling webhook"),
                                                    Admitted(None, "failed calling webhook"))
    assert closed.startswith("a valid DestinationRule ns/multirev-admission-probe without an istio.io/rev label "
                             "would be refused: failed calling webhook")
