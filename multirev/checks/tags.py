"""Does each revision tag exist, show in `istioctl tag list`, and reference the intended revision?"""

from __future__ import annotations

from dataclasses import dataclass

from multirev.commands import Completed
from multirev.istio import facts
from multirev.istio.istioctl import TagRow
from multirev.kube.objects import Obj, labels_of
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
    for app_ns in plane.app_namespaces:
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
