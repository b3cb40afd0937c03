"""Does each revision tag exist, show in `istioctl tag list`, and reference the intended revision?"""

from __future__ import annotations

from dataclasses import dataclass

from multirev.commands import Completed
from multirev.istio import facts
from multirev.istio.istioctl import TagRow
from multirev.kube.objects import Obj, annotations_of, labels_of, matches_selector, name_of
from multirev.probes import Admitted
from multirev.profile import ControlPlane


@dataclass
class TagState:
    tag_set: Completed | None
    tag_list: Completed
    rows: list[TagRow]
    webhook: Obj | None  # istio-revision-tag-<tag>[-<ns>]
    set_with: str = ""  # the command that set the tag, as a user would type it (istioctl or Helm)


def check_tag(plane: ControlPlane, state: TagState) -> list[str]:
    problems: list[str] = []
    tag, rev = plane.tag, plane.revision
    if state.tag_set is not None and state.tag_set.returncode != 0:
        command = state.set_with or f"istioctl tag set {tag} --revision {rev} -i {plane.namespace}"
        problems.append(f"`{command}` failed: "
                        f"{state.tag_set.stderr.strip() or state.tag_set.stdout.strip()}")
    if state.tag_list.returncode != 0:
        problems.append(f"`istioctl tag list` failed: {state.tag_list.stderr.strip()}")
    rows = [r for r in state.rows if r.tag == tag]
    if not rows:
        listed = ", ".join(f"{r.tag or '<untagged>'}->{r.revision}" for r in state.rows) or "nothing"
        problems.append(f"tag {tag} is not listed by `istioctl tag list` (listed: {listed})")
    revisions = sorted({r.revision for r in rows})
    if rows and revisions != [rev]:
        problems.append(f"tag {tag} references revision {', '.join(revisions)}, expected {rev}")
    # `tag list` shows the namespaces labelled istio.io/rev=<tag> (istio@1.30.3: istioctl/pkg/tag/util.go
    # GetNamespacesWithTag); the default revision's are labelled istio-injection=enabled, and not listed.
    listed_by_tag = facts.REV_LABEL in facts.injection_labels(rev, tag)
    for app_ns in plane.app_namespaces if listed_by_tag else ():
        if rows and not any(app_ns in r.namespaces for r in rows):
            problems.append(f"`istioctl tag list` does not show namespace {app_ns} under tag {tag}, although the "
                            f"suite labelled it istio.io/rev={tag}")
    name = facts.tag_webhook_name(tag, plane.namespace)
    if state.webhook is None:
        problems.append(f"MutatingWebhookConfiguration {name} (tag {tag}) does not exist")
    elif labels_of(state.webhook).get(facts.REV_LABEL) != rev:
        problems.append(f"MutatingWebhookConfiguration {name} is labelled istio.io/rev="
                        f"{labels_of(state.webhook).get(facts.REV_LABEL)}, expected {rev}")
    return problems


def served_names(webhooks: list[Obj]) -> set[str]:
    """The istio.io/rev values the injector webhooks select namespaces by: a tag's webhook selects istio.io/rev In
    [<tag>], a revision's own injector istio.io/rev In [<revision>] (istio@1.30-dev and 1.31-dev:
    manifests/charts/istio-control/istio-discovery/templates/revision-tags-mwc.yaml, mutatingwebhook.yaml)."""
    names: set[str] = set()
    for hook in webhooks:
        for entry in hook.get("webhooks") or []:
            selector = entry.get("namespaceSelector") or {}
            if value := (selector.get("matchLabels") or {}).get(facts.REV_LABEL):
                names.add(value)
            for expr in selector.get("matchExpressions") or []:
                if expr.get("key") == facts.REV_LABEL and expr.get("operator") == "In":
                    names.update(expr.get("values") or [])
    return names


def selected_by_any(namespace: Obj, webhooks: list[Obj]) -> bool:
    """Whether some injector webhook's namespaceSelector matches the namespace: what decides that its new pods are
    sent to an istiod. Selectors, not the webhooks' istio.io/tag labels, which a policy may strip while injection
    goes on working."""
    labels = labels_of(namespace)
    return any(matches_selector(labels, entry.get("namespaceSelector"))
               for hook in webhooks for entry in hook.get("webhooks") or [] if entry.get("namespaceSelector"))


def check_namespace_labels_served(namespaces: list[Obj], webhooks: list[Obj]) -> list[str]:
    """Every namespace labelled istio.io/rev=<name> (and not istio-injection, which wins) is selected by an injector
    webhook, as a namespace on an existing tag or revision is. Otherwise its new pods start without a sidecar, with
    no error anywhere: e.g. a namespace left on a tag that was removed, or a typo in the label."""
    problems = []
    for namespace in sorted(namespaces, key=name_of):
        labels = labels_of(namespace)
        wanted = labels.get(facts.REV_LABEL)
        if not wanted or facts.INJECTION_LABEL in labels or selected_by_any(namespace, webhooks):
            continue
        problems.append(f"Namespace {name_of(namespace)} is labelled {facts.REV_LABEL}={wanted}, but no injector "
                        f"webhook selects it: no tag or revision of that name exists (tags and revisions served: "
                        f"{', '.join(sorted(served_names(webhooks))) or 'none'}), so its new pods get no sidecar; "
                        f"fix: label it for one of those, or `istioctl tag set {wanted} --revision <revision>`")
    return problems


def check_default_tag_injection(namespace: str, admitted: Admitted, default_tags: list[Obj],
                                expected: str | None) -> list[str]:
    """A pod created in a namespace labelled istio-injection=enabled (the label most meshes use) is injected by the
    revision the one `default` tag names, and that tag names `expected` (None: whatever it names). The tag's webhook
    selects that label (istio@1.30.3: manifests/charts/istio-control/istio-discovery/templates/revision-tags-mwc.yaml,
    namespace.sidecar-injector.istio.io), and `istioctl tag set default` deactivates the old default revision's
    own injector (istioctl/pkg/tag/util.go DeactivateIstioInjectionWebhook), so exactly the tag's revision injects.
    `default_tags`: the MutatingWebhookConfigurations labelled istio.io/tag=default. `tag set` names its webhook after
    `-i` (istioctl/pkg/tag/tag.go setTag), so setting the tag from another namespace adds a second one, and the API
    server calls webhooks in configuration-name order: the first to inject wins."""
    where = f"a Pod in Namespace {namespace} (labelled {facts.INJECTION_LABEL}=enabled)"
    if not default_tags:
        return [f"no `{facts.DEFAULT_TAG}` tag exists, so nothing decides who injects {where}; fix: istioctl tag set "
                f"{facts.DEFAULT_TAG} --revision {expected or '<revision>'}"]
    problems = []
    if len(default_tags) > 1:
        named = ", ".join(f"{name_of(t)} (revision {labels_of(t).get(facts.REV_LABEL)})"
                          for t in sorted(default_tags, key=name_of))
        problems.append(f"{len(default_tags)} MutatingWebhookConfigurations are the `{facts.DEFAULT_TAG}` tag: "
                        f"{named}; the first by name injects; fix: istioctl tag remove {facts.DEFAULT_TAG}, then set "
                        "it once")
    tag_revision = labels_of(sorted(default_tags, key=name_of)[0]).get(facts.REV_LABEL)
    if expected is not None and tag_revision != expected:
        problems.append(f"the `{facts.DEFAULT_TAG}` tag names revision {tag_revision}, expected {expected}")
    if admitted.refused is not None:
        return [*problems, f"{where} would be refused at admission: {admitted.refused}"]
    pod = admitted.obj or {}
    annotations = annotations_of(pod)
    if facts.SIDECAR_STATUS_ANNOTATION not in annotations:
        return [*problems, f"{where} gets no sidecar, although the `{facts.DEFAULT_TAG}` tag names revision "
                           f"{tag_revision}: no injector webhook selects {facts.INJECTION_LABEL}=enabled"]
    injected_by = annotations.get(facts.REV_ANNOTATION)
    if injected_by != tag_revision:
        problems.append(f"{where} is injected by revision {injected_by}, but the `{facts.DEFAULT_TAG}` tag names "
                        f"revision {tag_revision}")
    return problems
