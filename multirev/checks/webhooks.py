"""Does every Istio injector webhook call a Service that exists, and every Istio webhook its own revision's istiod?

A tag set without `-i <namespace>` points at istio-system while istiod runs elsewhere; pod
creation then fails with `service "istiod-<rev>" not found` (istio@1.30.3:istioctl/pkg/tag/generate.go).
A webhook that calls another revision's istiod calls a Service that exists, so only comparing the Service with the
webhook's own istio.io/rev label finds it.
"""

from __future__ import annotations

from multirev.istio import facts
from multirev.kube.objects import Obj, labels_of, matches_selector, name_of, namespace_of
from multirev.probes import ALWAYS_REJECT_ANNOTATION, DENIED, PROBE_NAME, Admitted


def check_webhook_services(webhooks: list[Obj], services: list[Obj]) -> list[str]:
    existing = {(namespace_of(s), name_of(s)) for s in services}
    where = {}
    for svc in services:
        where.setdefault(name_of(svc), []).append(namespace_of(svc))
    problems = []
    for config in webhooks:
        labels = labels_of(config)
        for entry in config.get("webhooks", []):
            service = (entry.get("clientConfig") or {}).get("service")
            if not service:
                continue  # URL-based webhooks (remote clusters) are out of scope
            key = (service["namespace"], service["name"])
            if key in existing:
                continue
            runs_in = where.get(service["name"])
            hint = f"; {service['name']} runs in {', '.join(sorted(runs_in))}" if runs_in else ""
            fix = ""
            if facts.TAG_LABEL in labels and runs_in:
                fix = (f"; fix: istioctl tag set {labels[facts.TAG_LABEL]} --revision {labels.get(facts.REV_LABEL)} "
                       f"-i {sorted(runs_in)[0]} --overwrite")
            problems.append(f"MutatingWebhookConfiguration {name_of(config)} webhook {entry['name']} calls Service "
                            f"{service['namespace']}/{service['name']}, which does not exist{hint}{fix}")
    return problems


def check_one_webhook_per_tag(webhooks: list[Obj]) -> list[str]:
    """A tag's webhook is named after the `-i` namespace (istio@1.30.3:manifests/charts/istio-control/
    istio-discovery/templates/revision-tags-mwc.yaml), so `tag set --overwrite` with another `-i` writes a second
    one and leaves the first (and its tag Service) behind: pods under the tag then pass two injectors."""
    by_tag: dict[str, list[str]] = {}
    for config in webhooks:
        tag = labels_of(config).get(facts.TAG_LABEL)
        if tag:
            by_tag.setdefault(tag, []).append(name_of(config))
    return [f"tag {tag} has {len(names)} MutatingWebhookConfigurations ({', '.join(sorted(names))}); an earlier "
            f"`istioctl tag set {tag}` with another -i left one behind; fix: istioctl tag remove {tag} -i <that "
            f"namespace>, then tag set again" for tag, names in sorted(by_tag.items()) if len(names) > 1]


def istiod_namespaces(deployments: list[Obj]) -> dict[str, list[str]]:
    """Revision (the istio.io/rev label) -> namespaces where that revision's istiod Deployment runs. The chart names
    the Deployment as the webhooks' Service and labels it app=istiod and istio.io/rev (istio@1.30.3 and 1.18.5:
    manifests/charts/istio-control/istio-discovery/templates/deployment.yaml)."""
    where: dict[str, list[str]] = {}
    for deploy in deployments:
        labels = labels_of(deploy)
        rev = labels.get(facts.REV_LABEL)
        if labels.get("app") == "istiod" and rev and name_of(deploy) == facts.istiod_service_for(rev):
            where.setdefault(rev, []).append(namespace_of(deploy) or "")
    return {rev: sorted(namespaces) for rev, namespaces in where.items()}


def is_istio_webhook_configuration(config: Obj) -> bool:
    """Istio's webhook configurations: injectors and tags are labelled app=sidecar-injector, validators app=istiod, and
    all of them istio.io/rev (the chart files named in facts.istiod_service_for)."""
    labels = labels_of(config)
    return labels.get("app") in ("sidecar-injector", "istiod") or facts.REV_LABEL in labels


def _fix(config: Obj, rev: str, namespace: str) -> str:
    labels = labels_of(config)
    tag = labels.get(facts.TAG_LABEL) or ("default" if name_of(config) == facts.DEFAULT_VALIDATOR else None)
    if tag:
        # `tag set` re-renders the tag's webhook, and for the default tag also istiod-default-validator
        # (istio@1.18.5 and 1.30.3:istioctl/pkg/tag/generate.go Generate).
        return f"istioctl tag set {tag} --revision {rev} -i {namespace} --overwrite"
    return f"re-run `istioctl install` of revision {rev} (its chart renders this webhook with that Service)"


def check_webhook_revisions(mutating: list[Obj], validating: list[Obj], istiods: dict[str, list[str]]) -> list[str]:
    """Every webhook of every Istio MutatingWebhookConfiguration and ValidatingWebhookConfiguration (revision, tag,
    default) calls the istiod of the revision in its istio.io/rev label, in the namespace where that istiod runs.
    A webhook that calls another revision's istiod passes a "Service exists" check (in the shared layout both
    istiods run in istio-system), yet pods or config are then handled by the wrong control plane."""
    problems = []
    for kind, configs in (("MutatingWebhookConfiguration", mutating), ("ValidatingWebhookConfiguration", validating)):
        for config in configs:
            if not is_istio_webhook_configuration(config):
                continue
            rev = labels_of(config).get(facts.REV_LABEL)
            what = f"{kind} {name_of(config)}"
            if not rev:
                problems.append(f"{what} has no {facts.REV_LABEL} label, so no revision owns it")
                continue
            service_name = facts.istiod_service_for(rev)
            runs_in = istiods.get(rev, [])
            expected = [f"{ns}/{service_name}" for ns in runs_in]
            for entry in config.get("webhooks", []):
                service = (entry.get("clientConfig") or {}).get("service")
                if not service:
                    continue  # URL-based webhooks (remote clusters) are out of scope
                actual = f"{service.get('namespace')}/{service.get('name')}"
                if actual in expected:
                    continue
                head = f"{what} ({facts.REV_LABEL}={rev}) webhook {entry.get('name')} calls Service {actual}"
                if not runs_in:
                    problems.append(f"{head}, but revision {rev} has no istiod Deployment {service_name} in any "
                                    "namespace")
                    continue
                problems.append(f"{head}, expected {' or '.join(expected)} (revision {rev}'s own istiod); fix: "
                                f"{_fix(config, rev, runs_in[0])}")
    return problems


def _selects_unlabelled_config(entry: Obj) -> bool:
    """Whether a validating webhook validates Istio config that carries no istio.io/rev label: what the default
    validator does (istio@1.30.3: manifests/charts/default/templates/validatingwebhook.yaml objectSelector
    `istio.io/rev DoesNotExist`), and a revision's own validator does not (istio-discovery templates/
    validatingwebhookconfiguration.yaml: `istio.io/rev In [<revision>]`). A deactivated one selects nothing."""
    selector = entry.get("objectSelector") or {}
    return selector != facts.NEVER_MATCH and matches_selector({}, selector)


def default_tag_revision(mutating: list[Obj]) -> str | None:
    """The revision the `default` tag names (its webhook's istio.io/rev label), or None without a default tag."""
    tags = [labels_of(c).get(facts.REV_LABEL) for c in mutating
            if labels_of(c).get(facts.TAG_LABEL) == facts.DEFAULT_TAG]
    return next((rev for rev in tags if rev), None)


def check_default_validator(mutating: list[Obj], validating: list[Obj], istiods: dict[str, list[str]]) -> list[str]:
    """Exactly one active webhook validates Istio config that names no revision, and it calls the istiod of the
    default revision: the one the `default` tag names, or without a default tag the one the validator itself is
    labelled for (Helm's base chart labels it with `defaultRevision` and makes no tag: istio@1.30.3
    manifests/charts/base/templates/defaultrevision-validatingwebhookconfiguration.yaml). A second one (an earlier
    default revision's validator left active: istio/istio PR #61669) has that config validated by two control
    planes; one calling a revision that is gone rejects it outright once it fails closed (#35590, #32143)."""
    tagged = default_tag_revision(mutating)
    active = [(config, entry) for config in validating if is_istio_webhook_configuration(config)
              for entry in config.get("webhooks", []) if _selects_unlabelled_config(entry)]
    if not active:
        default = tagged or (facts.DEFAULT_REVISION if facts.DEFAULT_REVISION in istiods else None)
        return [] if default is None else [
            f"no ValidatingWebhookConfiguration validates Istio config without an {facts.REV_LABEL} label, though "
            f"the default revision is {default}; fix: istioctl tag set default --revision {default} --overwrite"]
    problems = []
    if len(active) > 1:
        names = sorted({f"{name_of(config)} (webhook {entry.get('name')})" for config, entry in active})
        problems.append(f"{len(active)} webhooks validate Istio config without an {facts.REV_LABEL} label: "
                        f"{', '.join(names)}; exactly one should (the default validator, {facts.DEFAULT_VALIDATOR}); "
                        "remove the ones a previous default revision left")
    for config, entry in active:
        default = tagged or labels_of(config).get(facts.REV_LABEL)
        why = "the default tag names" if tagged else f"without a default tag, its own {facts.REV_LABEL} names"
        what = f"ValidatingWebhookConfiguration {name_of(config)} webhook {entry.get('name')}"
        if not default:
            problems.append(f"{what} validates Istio config without an {facts.REV_LABEL} label, but neither a "
                            f"`default` tag nor its own {facts.REV_LABEL} label names the revision it is for")
            continue
        expected = {f"{ns}/{facts.istiod_service_for(default)}" for ns in istiods.get(default, [])}
        service = (entry.get("clientConfig") or {}).get("service") or {}
        actual = f"{service.get('namespace')}/{service.get('name')}"
        if actual not in expected:
            problems.append(f"{what} validates Istio config without an {facts.REV_LABEL} label by calling Service "
                            f"{actual}, but {why} revision {default}, whose istiod is "
                            f"{' or '.join(sorted(expected)) or 'not running'}; fix: istioctl tag set default "
                            f"--revision {default} --overwrite")
    return problems


def check_unlabelled_config_validated(namespace: str, valid: Admitted, always_rejected: Admitted) -> list[str]:
    """Istio config without an istio.io/rev label is validated: a valid object is admitted (a default validator that
    calls a revision that is gone refuses it once it fails closed: istio/istio #35590, #32143), and one carrying the
    annotation every istiod rejects (probes.ALWAYS_REJECT_ANNOTATION) is denied by a validating webhook (without one,
    or with one that fails open, invalid config reaches every istiod)."""
    what = f"DestinationRule {namespace}/{PROBE_NAME} without an {facts.REV_LABEL} label"
    problems = []
    if valid.refused is not None:
        problems.append(f"a valid {what} would be refused: {valid.refused}; fix: point the default validator at a "
                        f"running revision (istioctl tag set default --revision <revision> --overwrite)")
    if always_rejected.refused is None:
        problems.append(f"a {what} carrying {ALWAYS_REJECT_ANNOTATION}, which every istiod's validation rejects, "
                        "would be admitted: no webhook validates Istio config that names no revision (the default "
                        "validator is missing, deactivated, or calls an istiod that does not answer and fails open)")
    elif DENIED not in always_rejected.refused:
        problems.append(f"a {what} carrying {ALWAYS_REJECT_ANNOTATION} was refused, but not by a validating webhook's "
                        f"verdict: {always_rejected.refused}")
    return problems
