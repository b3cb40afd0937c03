"""Revision tags: set with -i <namespace>, listed by istioctl, each mapping to the intended revision."""

from __future__ import annotations

import pytest

from fixtures.mesh import MeshSetup
from multirev import attach
from multirev.checks.tags import TagState, check_namespace_labels_served, check_tag
from multirev.conformance import conformance
from multirev.istio import facts
from multirev.kube import kinds
from suites.conftest import assert_no_problems
from suites.scenario import default_tag_after_set_up, default_tag_injection_problems, default_tag_now


@pytest.mark.parametrize("role", ["stable", "canary"])
@conformance(feature="tags", canary=True)
def test_revision_tag_maps_to_intended_revision(mesh: MeshSetup, role: str) -> None:
    """Certifies that `istioctl tag set <tag> --revision <rev> -i <namespace>` succeeded, that
    `istioctl tag list` shows the tag once, referencing the intended revision and the app namespaces
    labelled with it, and that the tag's MutatingWebhookConfiguration carries that revision."""
    plane = mesh.plan.plane(role).plane
    if mesh.plan.installed and plane.tag == plane.revision:
        pytest.skip(f"--installed: revision {plane.revision} has no revision tag; the run labels its app namespaces "
                    f"istio.io/rev={plane.revision}")
    listing, rows = mesh.istioctl(role).tag_list(plane.namespace)
    attach.text("istioctl tag list", listing.stdout + listing.stderr)
    state = TagState(
        tag_set=mesh.tag_sets.get(role),
        tag_list=listing,
        rows=rows,
        webhook=mesh.cluster.get(kinds.MUTATING_WEBHOOK, facts.tag_webhook_name(plane.tag, plane.namespace)),
        set_with=mesh.installer.describe("tag", mesh.plan.plane(role), plane.tag),
    )
    assert_no_problems(check_tag(plane, state), f"revision tag {plane.tag} ({role})")


@conformance(feature="tags", canary=True)
def test_every_namespace_label_names_an_existing_tag_or_revision(mesh: MeshSetup) -> None:
    """Certifies that every namespace on the cluster labelled istio.io/rev (and not istio-injection, which wins)
    names a tag or revision that an injector webhook serves. One that names a removed tag, another cluster's
    revision or a typo is selected by no webhook, so its new pods start without a sidecar and nothing reports it;
    the message names the namespace, the label and the tags and revisions that exist."""
    cluster = mesh.cluster
    webhooks = cluster.list(kinds.MUTATING_WEBHOOK, labels={"app": "sidecar-injector"})
    assert_no_problems(check_namespace_labels_served(cluster.list(kinds.NAMESPACE), webhooks),
                       "namespace injection labels")


@conformance(feature="tags", canary=True)
def test_istio_injection_enabled_follows_the_default_tag(mesh: MeshSetup) -> None:
    """Certifies that a pod created in a namespace labelled istio-injection=enabled (the label most meshes use) is
    injected by the revision the `default` tag names, and that the tag names the revision it should after set-up:
    the one it named before the run, else the stable revision, whose install made it (--installed: whatever it
    names). Asked by server-side dry run in a namespace of the run's own that carries only that label: no pod is
    made. A default tag whose webhook does not select the label, or a previous default revision's injector left
    active, fails it."""
    if mesh.plan.profile.installer == "helm" and default_tag_now(mesh) is None:
        pytest.skip("installed with Helm, which makes no `default` tag (its base chart's defaultRevision only "
                    "points the default validator); nothing for the tag to decide")
    if mesh.plan.installed and default_tag_now(mesh) is None:
        pytest.skip("--installed: the cluster has no `default` tag; the run never sets one on a mesh it certifies")
    assert_no_problems(default_tag_injection_problems(mesh, default_tag_after_set_up(mesh)),
                       f"injection of {facts.INJECTION_LABEL}=enabled namespaces")
