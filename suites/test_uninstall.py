"""Removing one revision leaves the other serving; a purge leaves nothing behind. These run last."""

from __future__ import annotations

import pytest

from fixtures.mesh import MeshSetup
from multirev.checks.control_plane import ControlPlaneState, check_control_plane
from multirev.checks.gateway import check_productpage
from multirev.conformance import conformance
from multirev.istio import facts
from multirev.kube import kinds
from multirev.kube.objects import Obj, labels_of, name_of, ref
from multirev.plan import RUN_ID_LABEL
from multirev.progress import step
from multirev.traffic import gateway_get
from multirev.waits import Observation, wait_problem
from suites.conftest import BOOKINFO, assert_no_problems
from suites.scenario import wait_until_served

# Istio's own uninstall test polls up to 120 s (tests/integration/pilot/revisions/uninstall_test.go).
REMOVAL_TIMEOUT = 180.0
SKIP = {kinds.EVENT.kind}


def remaining(mesh: MeshSetup, key: str, value: str | None = None,
              only: tuple[kinds.Kind, ...] = kinds.ALL, shared_stays: bool = False) -> list[Obj]:
    """Objects istioctl made that carry the label `key` (with `value`, if given); what the suite made itself
    carries its run id and is not istioctl's to remove. With `shared_stays`, Base objects (CRDs, the reader
    ServiceAccount) are not counted: every install re-applies Base and labels it with its own revision, and a
    revision uninstall never prunes Base (istio@1.30.3:operator/pkg/uninstall/prune.go "do not prune base
    components"), so after the canary's uninstall they rightly carry its revision (seen on the local backend)."""
    found = []
    for kind in only:
        if kind.kind in SKIP:
            continue
        selector = {key: value} if value is not None else None
        found += [o for o in mesh.cluster.list(kind, labels=selector)
                  if key in labels_of(o) and RUN_ID_LABEL not in labels_of(o)
                  and not (shared_stays and labels_of(o).get(facts.COMPONENT_LABEL) == "Base")]
    return found


def wait_gone(mesh: MeshSetup, what: str, key: str, value: str | None = None,
              only: tuple[kinds.Kind, ...] = kinds.ALL, shared_stays: bool = False) -> list[str]:
    def gone() -> Observation[list[Obj]]:
        left = remaining(mesh, key, value, only, shared_stays)
        return Observation(not left, left, ", ".join(ref(o) for o in left[:8]) + (" ..." if len(left) > 8 else ""))

    problem = wait_problem(f"no object labelled {what} to remain", gone, clock=mesh.cluster.clock,
                           timeout=REMOVAL_TIMEOUT, interval=3)
    return [problem] if problem else []


def remove_tags(mesh: MeshSetup, roles: tuple[str, ...]) -> list[str]:
    """`istioctl tag remove <tag> -y` for each role's tag that still exists. Tags made by `tag set` are
    user-managed from 1.21 (and 1.19.5/1.20.1): they lose the operator.istio.io labels that `uninstall`
    selects by, so removing them is part of uninstalling (capability tag-strips-operator-labels)."""
    problems = []
    for role in roles:
        plane = mesh.plan.plane(role).plane
        tagged = {facts.TAG_LABEL: plane.tag}
        if not any(mesh.cluster.list(kind, labels=tagged) for kind in (kinds.MUTATING_WEBHOOK, kinds.SERVICE)):
            continue
        with step(f"istioctl tag remove {plane.tag}"):
            result = mesh.istioctl(role).tag_remove(plane.tag, plane.namespace)
        if result.returncode != 0:
            problems.append(f"`istioctl tag remove {plane.tag}` failed: {result.stderr.strip()[-300:]}")
    return problems


def saved_operators(mesh: MeshSetup) -> str:
    """installed-state IstioOperators still present (< 1.21 only); recorded, not judged: `uninstall --revision`
    deletes only `installed-state-<rev>`, not the copy of a named IstioOperator (facts.installed_state_name)."""
    return ", ".join(ref(o) for o in mesh.cluster.list(kinds.ISTIO_OPERATOR)
                     if name_of(o).startswith("installed-state")) or "none"


@conformance(feature="uninstall", manifests=BOOKINFO, destructive=True)
def test_uninstall_one_revision_keeps_the_other(mesh: MeshSetup, record_property: pytest.RecordProperty) -> None:
    """Certifies that removing the canary's tag and then `istioctl uninstall --revision <canary> -f <its
    IstioOperator> -y` (the file: from 1.24 uninstall prunes only what that IstioOperator owns) leaves no
    object labelled with the canary revision (namespaced and cluster-scoped, webhooks included) within a
    bounded time, that the stable revision's istiod, injector and validator are still whole, and (where proxies
    run) that the stable revision's Bookinfo still returns 200 through the stable gateway."""
    canary = mesh.plan.plane("canary").plane
    problems = remove_tags(mesh, ("canary",))
    with step(f"istioctl uninstall --revision {canary.revision}"):
        result = mesh.istioctl("canary").uninstall_revision(canary.revision, mesh.iop_files.get("canary"))
    if result.returncode != 0:
        problems.append(f"`istioctl uninstall --revision {canary.revision}` failed: {result.stderr.strip()[-300:]}")
    problems += wait_gone(mesh, f"{facts.REV_LABEL}={canary.revision} (Base aside)", facts.REV_LABEL, canary.revision,
                          shared_stays=True)
    record_property("installed_state_left", saved_operators(mesh))
    problems += stable_control_plane_problems(mesh)
    if mesh.backend.data_plane_missing:
        record_property("stable_gateway_served", f"not checked: {mesh.backend.data_plane_missing}")
    else:
        waited = wait_until_served(mesh, "stable", "/productpage", "bookinfo.example")
        response = gateway_get(mesh.cluster, mesh.endpoint("stable"), "/productpage", "bookinfo.example")
        problems += check_productpage("the stable gateway after the canary was uninstalled", response)
        if waited and problems:
            problems.append(waited)
    assert_no_problems(problems, f"uninstall of revision {canary.revision}")


def stable_control_plane_problems(mesh: MeshSetup) -> list[str]:
    """The stable revision's istiod, injector and validator, judged as the install test judges them."""
    plane = mesh.plan.plane("stable").plane
    cluster = mesh.cluster
    state = ControlPlaneState(
        install=mesh.installs.get("stable"),
        istiod=cluster.get(kinds.DEPLOYMENT, facts.istiod_name(plane.revision), plane.namespace),
        injector_webhook=cluster.get(kinds.MUTATING_WEBHOOK, facts.injector_webhook_name(plane.revision,
                                                                                         plane.namespace)),
        validator_webhook=cluster.get(kinds.VALIDATING_WEBHOOK, facts.validator_webhook_name(plane.revision,
                                                                                            plane.namespace)),
    )
    return [f"stable revision after the canary's uninstall: {p}" for p in check_control_plane(plane, state)]


@conformance(feature="uninstall", destructive=True)
def test_purge_leaves_nothing(mesh: MeshSetup) -> None:
    """Certifies that removing the run's tags and then `istioctl uninstall --purge -y` leaves no object labelled
    operator.istio.io/component (CRDs included), no revision-tag webhook or Service and no Istio webhook
    configuration of any revision, within a bounded time.
    On an existing cluster it runs only with --allow-destructive, since a purge also removes Istio objects this
    run did not create."""
    if not mesh.backend.may_destroy_foreign():
        pytest.skip("a purge removes Istio objects this run did not create; pass --allow-destructive")
    problems = remove_tags(mesh, ("stable", "canary"))
    with step("istioctl uninstall --purge"):
        result = mesh.istioctl("stable").uninstall_purge()
    if result.returncode != 0:
        problems.append(f"`istioctl uninstall --purge` failed: {result.stderr.strip()[-300:]}")
    problems += wait_gone(mesh, facts.COMPONENT_LABEL, facts.COMPONENT_LABEL)
    problems += wait_gone(mesh, f"{facts.TAG_LABEL} (revision tags)", facts.TAG_LABEL)
    problems += wait_gone(mesh, f"{facts.REV_LABEL} among webhook configurations", facts.REV_LABEL,
                          only=(kinds.MUTATING_WEBHOOK, kinds.VALIDATING_WEBHOOK))
    assert_no_problems(problems, "purge")
