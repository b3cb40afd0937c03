"""--installed on the real API server, for the mesh most clusters run: a control plane installed **without a
revision** (`istioctl install`, which makes the `default` tag for it) beside a revisioned canary with a tag of the
owner's (issue 26, item 2). The run certifies `--installed stable=default,canary=<rev>` on the owner's real istiods,
labels its own stable app namespace istio-injection=enabled, as the owner's are, installs and removes nothing, and
leaves everything of the owner's as it was.

The bed (tests/local/existing_bed.py) runs no proxies and its KWOK node serves no kubelet API, so the run selects
the features that observe through the API server alone, as tests/local/test_existing_installed.py does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.mesh import MeshSetup
from multirev.istio import facts, operator
from multirev.istio.installer import IstioctlInstaller
from multirev.istio.trust import MeshTrust
from multirev.kube import kinds
from multirev.plan import MeshPlan
from multirev.profile import load_profile
from tests.local.existing_bed import (
    ExistingBed,
    Key,
    assert_left_as_it_was,
    await_quiet,
    existing_cluster,
    populate_foreign,
    run_suite_on,
)
from tests.local.test_existing_installed import NOT_OURS, ON_THE_API_SERVER, run_profile

OWNER = "owner"
DEFAULT_PROFILE = "local-dev-default"
CANARY_TAG = "prod-canary"
# What a mesh with a default revision adds to what the other --installed bed certifies.
DEFAULT_REVISION_TESTS = ("test_istio_injection_enabled_follows_the_default_tag",
                          "test_config_without_revision_label_is_validated",
                          "test_one_default_validator_calls_the_default_tags_revision")


@dataclass
class Owned:
    bed: ExistingBed
    before: dict[Key, dict]
    profile: Path
    revisions: dict[str, str]


def _install_owners_mesh(bed: ExistingBed, work: Path) -> dict[str, str]:
    """The owner's mesh, as Istio's canary-upgrade page starts it: `istioctl install` without a revision (istiod
    `istiod` in istio-system, and the `default` tag it makes), then the canary with a revision and the owner's tag."""
    plan = MeshPlan(load_profile(DEFAULT_PROFILE), OWNER)
    setup = MeshSetup(plan, bed.cluster, bed.backend, {p.role: bed.backend.istioctl(p.plane.version)
                                                       for p in plan.planes}, work)
    trust = MeshTrust()
    installer = IstioctlInstaller(setup.istioctls)
    for plane in plan.planes:
        setup.use_namespace(plane.plane.namespace, plane.discovery_labels)
        setup.put(trust.cacerts(plane.plane.namespace, {}))
        iop = operator.write(plane, work, backend_settings=bed.backend.istio_settings())
        assert installer.install(plane, iop).returncode == 0
    assert installer.set_tag(plan.plane("canary"), CANARY_TAG).returncode == 0
    tags = bed.cluster.list(kinds.MUTATING_WEBHOOK, labels={facts.TAG_LABEL: facts.DEFAULT_TAG})
    assert [(t["metadata"]["labels"][facts.REV_LABEL]) for t in tags] == [facts.DEFAULT_REVISION], \
        "installing without a revision makes the default tag for it"
    return {p.role: p.plane.revision for p in plan.planes}


@pytest.fixture(scope="module")
def owned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Owned]:
    tmp = tmp_path_factory.mktemp("installed-default")
    with existing_cluster(tmp, run_id="defaultbed") as bed:
        populate_foreign(bed)
        revisions = _install_owners_mesh(bed, tmp / "owner")
        profile = run_profile(tmp / "profile.yaml", DEFAULT_PROFILE, "certify-the-owners-default-revision")
        yield Owned(bed, await_quiet(bed.cluster, timeout=180), profile, revisions)


def test_a_default_revision_beside_a_canary_is_certified_and_left_as_it_was(owned: Owned, tmp_path: Path) -> None:
    installed = ",".join(f"{role}={rev}" for role, rev in owned.revisions.items())
    assert installed.startswith("stable=default,")
    selected = ON_THE_API_SERVER + DEFAULT_REVISION_TESTS + NOT_OURS
    run = run_suite_on(owned.bed, tmp_path / "reports", "--profile-file", str(owned.profile), "--installed",
                       installed, "-q", "-k", " or ".join(selected))
    outcomes = {nodeid: (o["outcome"], o.get("message", "")) for nodeid, o in run.outcomes.items()}
    assert run.returncode == 0, run.output[-4000:]
    assert not {n: o for n, o in outcomes.items() if o[0] == "failed"}, outcomes
    passed = {n for n, (outcome, _) in outcomes.items() if outcome == "passed"}
    for observing in ON_THE_API_SERVER + DEFAULT_REVISION_TESTS:
        assert any(observing in n for n in passed), (observing, sorted(passed))
    assert run.report["stable"]["revision"] == facts.DEFAULT_REVISION, run.report["stable"]
    assert run.report["canary"]["tag"] == CANARY_TAG, run.report["canary"]
    assert_left_as_it_was(owned.bed, owned.before, "a run certifying the owner's default revision")
