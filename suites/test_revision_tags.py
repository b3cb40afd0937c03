"""Revision tags: set with -i <namespace>, listed by istioctl, each mapping to the intended revision."""

from __future__ import annotations

import pytest

from fixtures.mesh import MeshSetup
from multirev import attach
from multirev.checks.tags import TagState, check_tag
from multirev.conformance import conformance
from multirev.istio import facts
from multirev.kube import kinds
from suites.conftest import assert_no_problems


@pytest.mark.parametrize("role", ["stable", "canary"])
@conformance(feature="tags", canary=True)
def test_revision_tag_maps_to_intended_revision(mesh: MeshSetup, role: str) -> None:
    """Certifies that `istioctl tag set <tag> --revision <rev> -i <namespace>` succeeded, that
    `istioctl tag list` shows the tag once, referencing the intended revision and the app namespaces
    labelled with it, and that the tag's MutatingWebhookConfiguration carries that revision."""
    plane = mesh.plan.plane(role).plane
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
