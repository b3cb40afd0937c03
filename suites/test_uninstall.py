"""Removing one revision leaves the other serving; a purge leaves nothing behind. These run last."""

from __future__ import annotations

import pytest

from fixtures.mesh import MeshSetup
from multirev.checks.gateway import check_productpage
from multirev.conformance import conformance
from multirev.istio import facts
from multirev.kube import kinds
from multirev.kube.objects import Obj, labels_of, ref
from multirev.plan import RUN_ID_LABEL
from multirev.progress import step
from multirev.traffic import gateway_get
from multirev.waits import Observation, wait_problem
from suites.conftest import BOOKINFO, assert_no_problems
from suites.scenario import wait_until_served

# Istio's own uninstall test polls up to 120 s (tests/integration/pilot/revisions/uninstall_test.go).
REMOVAL_TIMEOUT = 180.0
SKIP = {kinds.EVENT.kind}


def remaining(mesh: MeshSetup, key: str, value: str | None = None) -> list[Obj]:
    """Objects istioctl made that carry the label `key` (with `value`, if given); what the suite made itself
    carries its run id and is not istioctl's to remove."""
    found = []
    for kind in kinds.ALL:
        if kind.kind in SKIP:
            continue
        selector = {key: value} if value is not None else None
        found += [o for o in mesh.cluster.list(kind, labels=selector)
                  if key in labels_of(o) and RUN_ID_LABEL not in labels_of(o)]
    return found


def wait_gone(mesh: MeshSetup, what: str, key: str, value: str | None = None) -> list[str]:
    def gone() -> Observation[list[Obj]]:
        left = remaining(mesh, key, value)
        return Observation(not left, left, ", ".join(ref(o) for o in left[:8]) + (" ..." if len(left) > 8 else ""))

    problem = wait_problem(f"no object labelled {what} to remain", gone, clock=mesh.cluster.clock,
                           timeout=REMOVAL_TIMEOUT, interval=3)
    return [problem] if problem else []


@conformance(feature="uninstall", manifests=BOOKINFO, destructive=True)
def test_uninstall_one_revision_keeps_the_other(mesh: MeshSetup) -> None:
    """Certifies that `istioctl uninstall --revision <canary> -y` removes every object labelled with the canary
    revision (namespaced and cluster-scoped, its tag webhooks included) within a bounded time, and that the
    stable revision's Bookinfo still returns 200 through the stable gateway afterwards."""
    canary = mesh.plan.plane("canary").plane
    with step(f"istioctl uninstall --revision {canary.revision}"):
        result = mesh.istioctl("canary").uninstall_revision(canary.revision)
    problems = []
    if result.returncode != 0:
        problems.append(f"`istioctl uninstall --revision {canary.revision}` failed: {result.stderr.strip()[-300:]}")
    problems += wait_gone(mesh, f"{facts.REV_LABEL}={canary.revision}", facts.REV_LABEL, canary.revision)
    waited = wait_until_served(mesh, "stable", "/productpage", "bookinfo.example")
    response = gateway_get(mesh.cluster, mesh.endpoint("stable"), "/productpage", "bookinfo.example")
    problems += check_productpage("the stable gateway after the canary was uninstalled", response)
    if waited and problems:
        problems.append(waited)
    assert_no_problems(problems, f"uninstall of revision {canary.revision}")


@conformance(feature="uninstall", destructive=True)
def test_purge_leaves_nothing(mesh: MeshSetup, record_property: pytest.RecordProperty) -> None:
    """Certifies that `istioctl uninstall --purge -y` leaves no object labelled operator.istio.io/component,
    CRDs included, within a bounded time. On an existing cluster it runs only with --allow-destructive,
    since a purge also removes Istio objects this run did not create."""
    if not mesh.backend.may_destroy_foreign():
        pytest.skip("a purge removes Istio objects this run did not create; pass --allow-destructive")
    with step("istioctl uninstall --purge"):
        result = mesh.istioctl("stable").uninstall_purge()
    problems = []
    if result.returncode != 0:
        problems.append(f"`istioctl uninstall --purge` failed: {result.stderr.strip()[-300:]}")
    problems += wait_gone(mesh, facts.COMPONENT_LABEL, facts.COMPONENT_LABEL)
    leftover_tags = [w for w in mesh.cluster.list(kinds.MUTATING_WEBHOOK) if facts.TAG_LABEL in labels_of(w)]
    record_property("tag_webhooks_left", ", ".join(ref(o) for o in leftover_tags) or "none")
    assert_no_problems(problems, "purge")
