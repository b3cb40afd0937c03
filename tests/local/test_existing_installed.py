"""--installed on the real API server: the suite certifies two revisions a cluster's owner installed beforehand, one
with istioctl and one with Helm, installs and removes none, and leaves everything of the owner's as it was.

The bed (tests/local/existing_bed.py) runs no proxies and its KWOK node serves no kubelet API (no logs, exec or
port-forward), so the run selects the features that observe through the API server alone: the control planes, tags,
namespace labels, webhooks, injection and analyze, all on the owner's real istiods, plus the features `--installed`
skips with its reason. The others need a data plane, which kind and real clusters have.

The owner's stable revision (1.30-dev) is installed by istioctl with its tag `prod-stable`, the canary (1.31-dev)
by Helm's istiod and gateway charts with its tag `prod-canary` rendered by the chart, as Istio's Helm canary upgrade
does (its base release is not installed: istioctl already brought the CRDs, and Helm would not take them over).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import jsonschema
import pytest
import yaml

from fixtures.mesh import MeshSetup
from multirev.istio import helm, operator
from multirev.istio.installer import HelmInstaller, IstioctlInstaller
from multirev.istio.trust import MeshTrust
from multirev.kube import kinds
from multirev.paths import PROJECT_ROOT
from multirev.plan import MeshPlan
from multirev.profile import load_profile
from multirev.report.conformance import schema
from multirev.waits import Observation, wait_for
from tests.local import certifier
from tests.local.conftest import PROFILE
from tests.local.existing_bed import (
    ExistingBed,
    Key,
    assert_left_as_it_was,
    await_quiet,
    cleanup_dead_runs,
    create,
    existing_cluster,
    interrupt,
    kill_outright,
    populate_foreign,
    read_until,
    run_suite_on,
    start_suite_on,
)

OWNER = "owner"
TAGS = {"stable": "prod-stable", "canary": "prod-canary"}


# The features a bed without proxies or kubelet can certify, and those --installed must skip with its reason.
ON_THE_API_SERVER = ("test_control_plane_installed_and_ready", "test_revision_tag_maps_to_intended_revision",
                     "test_every_namespace_label_names_an_existing_tag_or_revision",
                     "test_injector_webhooks_point_at_existing_services",
                     "test_webhooks_call_their_own_revisions_istiod", "test_workloads_injected_by_intended_revision",
                     "test_analyze_reports_no_errors")
NOT_OURS = ("test_uninstall_one_revision_keeps_the_other", "test_purge_leaves_nothing",
            "test_reapplied_mesh_config_takes_effect")


@dataclass
class Owned:
    bed: ExistingBed  # the owner's view: cluster-admin, for installing, snapshots and diffs
    before: dict[Key, dict]
    profile: Path
    revisions: dict[str, str]
    certifier: ExistingBed  # the run's view: a ServiceAccount bound to exactly the documented ClusterRole

    def nothing_was_forbidden(self) -> None:
        """Every request of the run was within the Role (the audit log of the certifier's requests)."""
        log = self.bed.backend.audit_log
        assert log is not None and log.exists(), "the bed logs the certifier's requests"
        refused = certifier.forbidden(log)
        assert refused == [], (f"the run needed more than {certifier.CERTIFY_INSTALLED_ROLE.name} gives: "
                               + "; ".join(refused))
        # The survey, teardown and cleanup of an --installed run read no Secret (docs/backends.md "What the run
        # reads"); only istioctl analyze does, under the optional role.
        assert certifier.secret_reads_by_the_suite(log) == []


def _owners_plan() -> MeshPlan:
    """The owner's mesh: the local-dev pair in its own namespaces, with the owner's tag names."""
    profile = load_profile(PROFILE)
    return MeshPlan(profile, OWNER)


def _install_owners_mesh(bed: ExistingBed, work: Path) -> dict[str, str]:
    plan = _owners_plan()
    setup = MeshSetup(plan, bed.cluster, bed.backend, {p.role: bed.backend.istioctl(p.plane.version)
                                                       for p in plan.planes}, work)
    trust = MeshTrust()
    for plane in plan.planes:
        setup.use_namespace(plane.plane.namespace, plane.discovery_labels)
        setup.put(trust.cacerts(plane.plane.namespace, {}))
    stable, canary = plan.plane("stable"), plan.plane("canary")
    iop = operator.write(stable, work, backend_settings=bed.backend.istio_settings())
    assert IstioctlInstaller(setup.istioctls).install(stable, iop).returncode == 0
    assert IstioctlInstaller(setup.istioctls).set_tag(stable, TAGS["stable"]).returncode == 0
    # The canary with Helm, as Istio's canary upgrade with Helm does it once base is there.
    tool = bed.backend.helm(work)  # inside the bed's network namespace, where its API server listens
    canary_iop = operator.render(canary, backend_settings=bed.backend.istio_settings())
    charts, image = bed.backend.charts_dir(canary.plane.version), bed.backend.chart_image(canary.plane.version)
    for release, chart, values in [
        (helm.istiod_release(canary), helm.ISTIOD_CHART, helm.istiod_values(canary_iop, image)),
        (canary.gateway_name, helm.GATEWAY_CHART, helm.gateway_values(canary_iop, "ingressGateways", image)),
    ]:
        result = tool.upgrade_install(release, charts / chart, canary.plane.namespace, values)
        assert result.returncode == 0, result.stderr
    helm_setup = HelmInstaller(tool, plan, bed.cluster, bed.backend.charts_dir, bed.backend.chart_image,
                               bed.cluster.apply)
    assert helm_setup.set_tag(canary, TAGS["canary"]).returncode == 0
    return {p.role: p.plane.revision for p in plan.planes}


def run_profile(path: Path, builtin: str = PROFILE, name: str = "certify-the-owners-mesh") -> Path:
    """The built-in profile with the suite's own app namespaces, which it creates; the revisions come from the
    cluster (--installed)."""
    profile = yaml.safe_load((PROJECT_ROOT / "multirev" / "profiles" / f"{builtin}.yaml").read_text())
    profile["name"] = name
    for role in ("stable", "canary"):
        profile[role]["app_namespaces"] = [f"certify-{role}"]
    path.write_text(yaml.safe_dump(profile))
    return path


@pytest.fixture(scope="module")
def owned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Owned]:
    tmp = tmp_path_factory.mktemp("installed")
    with existing_cluster(tmp, run_id="installedbed", audit_users=(certifier.USER,)) as bed:
        populate_foreign(bed)
        revisions = _install_owners_mesh(bed, tmp / "owner")
        as_certifier = replace(bed, kubeconfig=certifier.bind_certifier(bed, tmp))
        yield Owned(bed, await_quiet(bed.cluster, timeout=180), run_profile(tmp / "profile.yaml"), revisions,
                    as_certifier)


def test_the_owners_revisions_are_certified_and_left_as_they_were(owned: Owned, tmp_path: Path) -> None:
    installed = ",".join(f"{role}={rev}" for role, rev in owned.revisions.items())
    run = run_suite_on(owned.certifier, tmp_path / "reports", "--profile-file", str(owned.profile), "--installed",
                       installed, "-q", "-k", " or ".join(ON_THE_API_SERVER + NOT_OURS))
    outcomes = {nodeid: (o["outcome"], o.get("message", "")) for nodeid, o in run.outcomes.items()}
    assert run.returncode == 0, run.output[-4000:]
    failed = {n: o for n, o in outcomes.items() if o[0] == "failed"}
    assert not failed, failed
    skipped = {n: m for n, (outcome, m) in outcomes.items() if outcome == "skipped"}
    for nodeid in NOT_OURS:
        assert any(nodeid in n and "--installed: the run never" in m for n, m in skipped.items()), skipped
    passed = {n for n, (outcome, _) in outcomes.items() if outcome == "passed"}
    for observing in ON_THE_API_SERVER:
        assert any(observing in n for n in passed), (observing, sorted(passed))
    jsonschema.validate(run.report, schema())
    assert run.report["installer"] == "none"
    for role, revision in owned.revisions.items():
        plane = run.report[role]
        assert plane["revision"] == revision and plane["tag"] == TAGS[role], plane
        found = plane["installed"]
        assert TAGS[role] in found["tags"] and found["ingress_gateway"], found
        assert found["mesh_config"]["outboundTrafficPolicy.mode"] == "REGISTRY_ONLY", found
    markdown = (tmp_path / "reports" / "conformance.md").read_text()
    assert "| canary as found (--installed) | tags `prod-canary`;" in markdown, markdown
    assert_left_as_it_was(owned.bed, owned.before, "a run certifying the owner's revisions")
    owned.nothing_was_forbidden()


def test_a_namespace_of_the_owners_labelled_for_a_missing_tag_is_named(owned: Owned, tmp_path: Path) -> None:
    """Real misuse on the owner's side: a namespace still labelled for a tag that no longer exists gets no sidecar,
    silently. The run on the owner's revisions fails the namespace-label check, naming it and the tags that exist."""
    namespace = {"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": "left-on-a-retired-tag", "labels": {"istio.io/rev": "prod-retired"}}}
    create(owned.bed.cluster, namespace)
    try:
        installed = ",".join(f"{role}={rev}" for role, rev in owned.revisions.items())
        run = run_suite_on(owned.certifier, tmp_path / "reports", "--profile-file", str(owned.profile), "--installed",
                           installed, "-q", "-k", "test_every_namespace_label_names_an_existing_tag_or_revision")
        [(nodeid, outcome)] = run.outcomes.items()
        assert outcome["outcome"] == "failed", run.output[-3000:]
        message = outcome["message"]
        assert "Namespace left-on-a-retired-tag is labelled istio.io/rev=prod-retired" in message, message
        assert all(tag in message for tag in TAGS.values()), message
    finally:
        cluster = owned.bed.cluster
        cluster.delete(kinds.NAMESPACE, "left-on-a-retired-tag")
        def gone() -> Observation[None]:
            left = cluster.get(kinds.NAMESPACE, "left-on-a-retired-tag")
            phase = ((left or {}).get("status") or {}).get("phase")
            return Observation(left is None, None, "gone" if left is None else f"still there, phase {phase}")

        wait_for("Namespace left-on-a-retired-tag to be gone", gone, clock=cluster.clock, timeout=60)
    assert_left_as_it_was(owned.bed, owned.before, "a run that found the owner's mislabelled namespace")
    owned.nothing_was_forbidden()


def test_a_role_narrower_than_documented_is_refused_before_anything_is_made(owned: Owned, tmp_path: Path) -> None:
    """Real misuse: the account's role lacks exec into pods (which in-mesh requests need on a cluster with proxies).
    The run stops before it creates anything, in one line naming the account and exactly what it lacks."""
    narrow = [{**role, "metadata": {"name": f"narrow-{role['metadata']['name']}"},
               "rules": [{**rule, "resources": [r for r in rule["resources"] if r != "pods/exec"]}
                         for rule in role["rules"]]}
              for role in certifier.role_objects()]
    kubeconfig = certifier.bind(owned.bed, tmp_path, "narrow", narrow)
    try:
        installed = ",".join(f"{role}={rev}" for role, rev in owned.revisions.items())
        run = run_suite_on(replace(owned.bed, kubeconfig=kubeconfig), tmp_path / "reports", "--profile-file",
                           str(owned.profile), "--installed", installed, "-q", "-k", "analyze")
        assert run.returncode == 4, run.output[-3000:]  # pytest's usage error
        [line] = [line for line in run.output.splitlines() if "may not do what the run needs" in line]
        assert f"system:serviceaccount:{certifier.NAMESPACE}:narrow may not do" in line, line
        assert "(multirev-certify-installed: get pods/exec, create pods/exec)" in line, line
        assert "manifests/rbac/certify-installed.yaml" in line, line
    finally:
        certifier.unbind(owned.bed, "narrow", narrow)
    assert_left_as_it_was(owned.bed, owned.before, "a run refused for its account's permissions")


def test_without_the_analyze_role_analyze_is_skipped_saying_why(owned: Owned, tmp_path: Path) -> None:
    """The optional role (every Secret, for istioctl analyze) left unbound: the run goes on, and the analyze tests are
    skipped with the reason, never passed."""
    required = [role for role in certifier.role_objects() if role["metadata"]["name"] == "multirev-certify-installed"]
    as_role = [{**role, "metadata": {"name": "no-analyze-certifier"}} for role in required]
    kubeconfig = certifier.bind(owned.bed, tmp_path, "no-analyze", as_role)
    try:
        installed = ",".join(f"{role}={rev}" for role, rev in owned.revisions.items())
        run = run_suite_on(replace(owned.bed, kubeconfig=kubeconfig), tmp_path / "reports", "--profile-file",
                           str(owned.profile), "--installed", installed, "-q", "-k", "analyze")
        assert run.returncode == 0, run.output[-3000:]
        analyze = {n: o for n, o in run.outcomes.items() if "test_analyze" in n}
        assert len(analyze) == 2, run.outcomes
        for nodeid, outcome in analyze.items():
            assert outcome["outcome"] == "skipped", (nodeid, outcome)
            assert "lacks ClusterRole multirev-certify-installed-analyze (list secrets, watch secrets)" in \
                outcome["message"], outcome
    finally:
        certifier.unbind(owned.bed, "no-analyze", as_role)
    assert_left_as_it_was(owned.bed, owned.before, "a run without the analyze role")


def _start(owned: Owned, reports: Path) -> object:
    installed = ",".join(f"{role}={rev}" for role, rev in owned.revisions.items())
    return start_suite_on(owned.certifier, reports, "-s", "-q", "--profile-file", str(owned.profile), "--installed",
                          installed, "-k", " or ".join(ON_THE_API_SERVER))


# The run's own app namespace for the canary gets the Bookinfo sample: the run's objects are being made then.
APPLYING = "[multirev] apply"


def test_an_interrupted_run_gives_the_owners_mesh_back(owned: Owned, tmp_path: Path) -> None:
    """Ctrl-C while the run deploys its workloads under the owner's tags: pytest's teardown removes what the run
    made and the owner's revisions, tags and namespaces are as they were."""
    proc = _start(owned, tmp_path / "reports")
    seen = read_until(proc, APPLYING)
    assert seen and APPLYING in seen[-1], "\n".join(seen[-20:])
    assert interrupt(proc) != 0, "an interrupted run must not report success"
    assert_left_as_it_was(owned.bed, owned.before, "an interrupted run on the owner's revisions")
    owned.nothing_was_forbidden()


def test_a_killed_run_on_the_owners_mesh_is_removed_by_cleanup(owned: Owned, tmp_path: Path) -> None:
    """SIGKILL while the run deploys its workloads: no teardown runs. `./run cleanup --all-dead` finds the run by
    its record and removes only what it made; its record says --installed, so nothing of the owner's revisions is
    a candidate."""
    proc = _start(owned, tmp_path / "reports")
    seen = read_until(proc, APPLYING)
    assert seen and APPLYING in seen[-1], "\n".join(seen[-20:])
    time.sleep(1.0)
    assert kill_outright(proc) == -signal.SIGKILL
    cleanup = cleanup_dead_runs(owned.certifier)
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    assert "deleted Namespace multirev-run-" in cleanup.stdout, cleanup.stdout + cleanup.stderr
    assert_left_as_it_was(owned.bed, owned.before, "a run on the owner's revisions killed outright, after cleanup")
    owned.nothing_was_forbidden()
