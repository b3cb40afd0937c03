"""Removing one revision leaves the other serving; a purge leaves nothing behind. These run last."""

from __future__ import annotations

import pytest

from fixtures.mesh import MeshSetup
from multirev.checks.control_plane import ControlPlaneState, KeptPlaneState, check_kept_plane
from multirev.checks.gateway import check_productpage
from multirev.checks.injection import NamespaceState, check_pods
from multirev.conformance import conformance
from multirev.istio import facts
from multirev.kube import kinds
from multirev.kube.objects import Obj, labels_of, name_of, ref
from multirev.observe import running_proxy_versions, workload_pods
from multirev.plan import RUN_ID_LABEL
from multirev.progress import step
from multirev.traffic import gateway_get
from multirev.waits import Observation, wait_problem
from suites.conftest import BOOKINFO, CLIENT, NOT_OURS, assert_no_problems
from suites.moves import move
from suites.scenario import (
    READY_TIMEOUT,
    default_tag_after_set_up,
    default_tag_injection_problems,
    default_tag_now,
    settled,
    unlabelled_config_problems,
    wait_namespace_rolled_out,
    wait_until_served,
)

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
    selects by, so removing them is part of uninstalling (capability tag-strips-operator-labels). `tag remove`
    deletes the tag's webhooks wherever they are but its Service only in `-i` (istio@1.30.3: istioctl/pkg/tag/tag.go
    removeTag), so a tag whose Service went elsewhere (the `default` tag moved to a canary in its own namespace:
    suites/moves.py) is removed from each namespace that holds one."""
    problems = []
    for role in roles:
        plane = mesh.plan.plane(role).plane
        tagged = {facts.TAG_LABEL: plane.tag}
        services = sorted({s["metadata"]["namespace"] for s in mesh.cluster.list(kinds.SERVICE, labels=tagged)})
        webhooks = mesh.cluster.list(kinds.MUTATING_WEBHOOK, labels=tagged)
        # With the istioctl of the revision the tag names now (the `default` tag may have moved to the canary):
        # from 1.31 it also deletes the tag's validator (capability tag-remove-deletes-validator).
        names = {labels_of(h).get(facts.REV_LABEL) for h in webhooks}
        owner = next((p for p in mesh.plan.planes if p.plane.revision in names), mesh.plan.plane(role))
        for namespace in services or ([plane.namespace] if webhooks else []):
            command = mesh.installer.describe("untag", owner, plane.tag, istio_namespace=namespace)
            with step(command):
                result = mesh.installer.remove_tag(owner, plane.tag, istio_namespace=namespace)
            if result.returncode != 0:
                problems.append(f"`{command}` failed: {result.stderr.strip()[-300:]}")
    return problems


def saved_operators(mesh: MeshSetup) -> str:
    """installed-state IstioOperators still present (< 1.21 only); recorded, not judged: `uninstall --revision`
    deletes only `installed-state-<rev>`, not the copy of a named IstioOperator (facts.installed_state_name)."""
    return ", ".join(ref(o) for o in mesh.cluster.list(kinds.ISTIO_OPERATOR)
                     if name_of(o).startswith("installed-state")) or "none"


@conformance(feature="uninstall", manifests=BOOKINFO + CLIENT, destructive=True)
def test_uninstall_one_revision_keeps_the_other(mesh: MeshSetup, record_property: pytest.RecordProperty) -> None:
    """Certifies that removing one revision leaves the other whole and serving. Usually the canary goes: its tag is
    removed, then `istioctl uninstall --revision <canary> -f <its IstioOperator> -y` (the file: from 1.24 uninstall
    prunes only what that IstioOperator owns). Where stable is a default revision (installed without one), the
    upgrade is finished instead, as Istio's canary page ends it: the stable app namespace moves to the canary under
    traffic, the `default` tag moves to the canary, and the old default control plane is uninstalled. Either way no
    object labelled with the removed revision may remain (namespaced and cluster-scoped, webhooks included) within a
    bounded time, and the kept control plane stays whole: its istiod Deployment ready and its Service, its injector
    and validator webhooks, its mesh and injector ConfigMaps, every revision tag object of the kept revision, every
    Istio CRD, and the Istio config in its app namespaces, as they were just before the uninstall. A Deployment
    created in the kept app namespace afterwards must still get pods injected by the kept revision with its proxy
    version (no Envoy needed: injection happens at pod creation); Istio config without a revision label must still
    be validated (a valid object admitted, an always-rejected one denied by a webhook), and a pod in a namespace
    labelled istio-injection=enabled injected by the revision the `default` tag names, the kept one. Where proxies
    run, the kept revision's Bookinfo must still return 200 through its gateway; Envoy keeps its last config, so
    that alone would not show a broken control plane. Each problem names the object."""
    if mesh.plan.installed:
        pytest.skip(NOT_OURS.format(what="removes"))
    finishing_upgrade = mesh.plan.plane("stable").is_default_revision
    removed, kept = ("stable", "canary") if finishing_upgrade else ("canary", "stable")
    gone = mesh.plan.plane(removed).plane
    problems: list[str] = []
    if finishing_upgrade:
        for namespace in gone.app_namespaces:
            if waited := wait_namespace_rolled_out(mesh, namespace):
                problems.append(f"before the move: {waited}")
            problems += [f"moving {namespace} before the uninstall: {p}" for p in
                         move(mesh, namespace, gone.tag, mesh.plan.plane(removed), mesh.plan.plane(kept))]
    removed_tags = () if finishing_upgrade else (gone.tag,)  # the moved `default` tag is the kept revision's
    before = kept_groups(mesh, kept, removed_tags)
    if not finishing_upgrade:
        problems += remove_tags(mesh, (removed,))
    command = mesh.installer.describe("uninstall", mesh.plan.plane(removed))
    with step(command):
        result = mesh.installer.uninstall(mesh.plan.plane(removed), mesh.iop_files.get(removed))
    if result.returncode != 0:
        problems.append(f"`{command}` failed: {result.stderr.strip()[-300:]}")
    problems += wait_gone(mesh, f"{facts.REV_LABEL}={gone.revision} (Base aside)", facts.REV_LABEL, gone.revision,
                          shared_stays=True)
    record_property("installed_state_left", saved_operators(mesh))
    problems += kept_control_plane_problems(mesh, kept, removed, before, removed_tags)
    problems += injected_after_uninstall_problems(mesh, kept, removed)
    after = f"after {removed} revision {gone.revision} was uninstalled"
    problems += [f"{after}: {p}" for p in unlabelled_config_problems(mesh, mesh.plan.plane(kept).gateway_namespace)]
    if default_tag_now(mesh) is not None or mesh.plan.profile.installer != "helm":  # Helm makes no default tag
        expected = mesh.plan.plane(kept).plane.revision if finishing_upgrade else default_tag_after_set_up(mesh)
        problems += [f"{after}: {p}" for p in default_tag_injection_problems(mesh, expected)]
    if mesh.backend.data_plane_missing:
        record_property(f"{kept}_gateway_served", f"not checked: {mesh.backend.data_plane_missing}")
    else:
        waited = wait_until_served(mesh, kept, "/productpage", "bookinfo.example")
        response = gateway_get(mesh.cluster, mesh.endpoint(kept), "/productpage", "bookinfo.example")
        problems += check_productpage(f"the {kept} gateway {after}", response)
        if waited and problems:
            problems.append(waited)
    assert_no_problems(problems, f"uninstall of revision {gone.revision}")


def kept_groups(mesh: MeshSetup, kept: str, removed_tags: tuple[str, ...]) -> dict[str, list[str]]:
    """What of the kept side exists in numbers the suite does not fix, by group: the tag objects (webhooks and,
    from 1.28, Services) labelled with the kept revision, the default tag's among them (a tag removed on purpose
    aside); the Istio CRDs; the Istio config in the kept app namespaces."""
    plane = mesh.plan.plane(kept).plane
    cluster = mesh.cluster
    groups: dict[str, list[str]] = {}
    tags = [o for kind in (kinds.MUTATING_WEBHOOK, kinds.VALIDATING_WEBHOOK, kinds.SERVICE)
            for o in cluster.list(kind, labels={facts.REV_LABEL: plane.revision})
            if facts.TAG_LABEL in labels_of(o) and labels_of(o)[facts.TAG_LABEL] not in removed_tags]
    groups[f"revision {plane.revision}'s tag object"] = sorted(ref(o) for o in tags)
    groups["an Istio CRD"] = sorted(ref(o) for o in cluster.list(kinds.CRD) if name_of(o).endswith(".istio.io"))
    for app in plane.app_namespaces:
        groups[f"Istio config in {app}"] = sorted(ref(o) for kind in kinds.ISTIO_CONFIG
                                                  for o in cluster.list(kind, app))
    return groups


def kept_control_plane_problems(mesh: MeshSetup, kept: str, removed: str, before: dict[str, list[str]],
                                removed_tags: tuple[str, ...]) -> list[str]:
    """The kept revision's istiod, injector and validator, judged as the install test judges them, and the rest of
    what the other's uninstall must leave (check_kept_plane)."""
    plane = mesh.plan.plane(kept).plane
    cluster = mesh.cluster
    rev, ns = plane.revision, plane.namespace
    state = KeptPlaneState(
        control_plane=ControlPlaneState(
            install=mesh.installs.get(kept),
            istiod=cluster.get(kinds.DEPLOYMENT, facts.istiod_name(rev), ns),
            injector_webhook=cluster.get(kinds.MUTATING_WEBHOOK, facts.injector_webhook_name(rev, ns)),
            validator_webhook=cluster.get(kinds.VALIDATING_WEBHOOK, facts.validator_webhook_name(rev, ns))),
        service=cluster.get(kinds.SERVICE, facts.istiod_name(rev), ns),
        configmaps={name: cluster.get(kinds.CONFIGMAP, name, ns)
                    for name in (facts.mesh_configmap_name(rev), facts.injector_configmap_name(rev))},
        before=before,
        after=kept_groups(mesh, kept, removed_tags),
    )
    return [f"{kept} revision after the {removed}'s uninstall: {p}" for p in check_kept_plane(plane, state)]


AFTER_UNINSTALL = "workloads/injected-after-uninstall.yaml"
AFTER_UNINSTALL_APP = "injected-after-uninstall"


def injected_after_uninstall_problems(mesh: MeshSetup, kept: str, removed: str) -> list[str]:
    """Create a Deployment in the kept app namespace and judge its pods as the injection test does: injected by the
    kept revision, its proxy version, ready. Admission runs the webhook at pod creation, so this needs no Envoy."""
    plane = mesh.plan.plane(kept).plane
    app = plane.app_namespaces[0]
    cluster = mesh.cluster
    with step(f"apply {AFTER_UNINSTALL} in {app}"):
        mesh.apply(AFTER_UNINSTALL, kept, app)
    try:
        def created() -> Observation[None]:
            done, state = settled([d for d in [cluster.get(kinds.DEPLOYMENT, AFTER_UNINSTALL_APP, app)] if d])
            return Observation(done, None, state)

        waited = wait_problem(f"Deployment {app}/{AFTER_UNINSTALL_APP} to be ready or to report failures", created,
                              clock=cluster.clock, timeout=READY_TIMEOUT)
        deploy = cluster.get(kinds.DEPLOYMENT, AFTER_UNINSTALL_APP, app)
        pods = workload_pods(cluster, app, mesh.plan.run_labels, labels={"app": AFTER_UNINSTALL_APP})
        state = NamespaceState(
            namespace=cluster.get(kinds.NAMESPACE, app),
            deployments=[deploy] if deploy else [],
            pods=pods,
            wait_problem=waited,
            running_versions=running_proxy_versions(cluster, app, pods))
        # Only the pods are judged here: the namespace's labels are the injection test's verdict.
        problems = check_pods(plane, app, state, judge_labels=False)
        return [f"{kept} revision after the {removed}'s uninstall: {p}" for p in problems]
    finally:
        cluster.delete(kinds.DEPLOYMENT, AFTER_UNINSTALL_APP, app)


@conformance(feature="uninstall", destructive=True)
def test_purge_leaves_nothing(mesh: MeshSetup) -> None:
    """Certifies that removing the run's tags and then `istioctl uninstall --purge -y` leaves no object labelled
    operator.istio.io/component (CRDs included), no revision-tag webhook or Service and no Istio webhook
    configuration of any revision, within a bounded time.
    On an existing cluster that had Istio before the run it runs only with --allow-purge: the purge removes every
    Istio CRD there, and so every Istio resource, the cluster's own included."""
    if mesh.plan.installed:
        pytest.skip(NOT_OURS.format(what="removes"))
    footprint = mesh.footprint
    if footprint is not None and footprint.had_istio and not mesh.backend.may_purge_foreign():
        pytest.skip(footprint.purge_refusal())
    problems = remove_tags(mesh, ("stable", "canary"))
    command = mesh.installer.describe("purge", mesh.plan.plane("stable"))
    with step(command):
        result = mesh.installer.purge()
    if footprint is not None:
        footprint.forget_istio(mesh.cluster)  # purged on purpose: not to be given back
    if result.returncode != 0:
        problems.append(f"`{command}` failed: {result.stderr.strip()[-300:]}")
    problems += wait_gone(mesh, facts.COMPONENT_LABEL, facts.COMPONENT_LABEL)
    problems += wait_gone(mesh, f"{facts.TAG_LABEL} (revision tags)", facts.TAG_LABEL)
    problems += wait_gone(mesh, f"{facts.REV_LABEL} among webhook configurations", facts.REV_LABEL,
                          only=(kinds.MUTATING_WEBHOOK, kinds.VALIDATING_WEBHOOK))
    assert_no_problems(problems, "purge")
