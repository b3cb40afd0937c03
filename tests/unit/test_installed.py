"""--installed: the revisions a cluster runs, found from what their install left (the model's istioctl install)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fixtures.mesh import build_mesh, session_mesh
from multirev.backends.simulated.backend import SimulatedBackend
from multirev.commands import Transcript
from multirev.errors import UsageError
from multirev.istio import facts
from multirev.istio.installed import certified_profile, find_installed, mesh_settings_of
from multirev.kind.images import NODE_IMAGES
from multirev.kube import kinds
from multirev.kube.objects import labels_of, name_of
from multirev.plan import MeshPlan
from multirev.profile import load_profile, parse_installed
from suites.conftest import BOOKINFO
from suites.conftest import CLIENT as CLIENT_MANIFESTS
from suites.moves import move
from suites.scenario import wait_namespace_rolled_out
from tests.someones_model import (
    HELM_DEFAULT_DISCOVERY,
    HELM_DEFAULT_NAMESPACE,
    install_helm_default_mesh,
    install_owners_mesh,
    objects,
    stop_like_existing,
)

CLIENT = "workloads/mesh-client.yaml"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("installed")
    backend = SimulatedBackend(Transcript(tmp / "t.jsonl"), seed=1, faults=[],
                               node_image=next(iter(NODE_IMAGES.values())), work_dir=tmp, host_port_base=18080)
    cluster = backend.start()
    plan = MeshPlan(load_profile("current"), "bed")
    build_mesh(plan, backend, cluster, tmp, set())
    return plan, cluster


def test_each_named_revision_is_found_with_its_namespace_version_tags_selectors_and_gateways(installed) -> None:
    plan, cluster = installed
    wanted = {p.role: p.plane.revision for p in plan.planes}
    found = find_installed(cluster, wanted)
    for plane in plan.planes:
        got = found[plane.role]
        assert (got.revision, got.namespace, got.version) == (plane.plane.revision, plane.plane.namespace,
                                                              plane.plane.version)
        assert plane.plane.tag in got.tags and got.tag == plane.plane.tag
        assert got.discovery_labels == plane.discovery_labels
        assert got.ingress is not None and got.ingress.name == plane.gateway_name
        assert got.ingress.namespace == plane.plane.namespace
        assert got.egress is not None and got.egress.name == plane.egress_gateway_name
        # What the suite's own install sets (manifests/istio/revision-iop.yaml), as the report will show it.
        assert got.mesh_settings["outboundTrafficPolicy.mode"] == "REGISTRY_ONLY"
        assert got.mesh_settings["defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE"] == "true"
        assert got.mesh_settings["accessLogFile"] == "/dev/stdout"


def test_mesh_settings_are_read_from_the_mesh_key_and_unset_ones_left_out() -> None:
    mesh = {"data": {"mesh": "trustDomain: example.org\ndiscoverySelectors:\n- matchLabels: {team: a}\n"
                             "defaultConfig: {proxyMetadata: {}}\n"}}
    assert mesh_settings_of(mesh) == {"trustDomain": "example.org",
                                      "discoverySelectors": '[{"matchLabels": {"team": "a"}}]'}
    assert mesh_settings_of(None) == {}


def test_a_missing_revision_is_refused_naming_what_runs(installed) -> None:
    plan, cluster = installed
    with pytest.raises(UsageError) as refused:
        find_installed(cluster, {"stable": plan.plane("stable").plane.revision, "canary": "1-99-0"})
    message = str(refused.value)
    assert message.startswith("--installed canary=1-99-0: this cluster runs no revision 1-99-0; it runs ")
    for plane in plan.planes:
        assert f"{plane.plane.revision} ({plane.plane.namespace}, Istio {plane.plane.version})" in message


@pytest.mark.parametrize(("text", "error"), [
    ("stable=a", "names no canary revision"),
    ("stable=a,canary=a", "stable and canary are the same revision"),
    ("stable=a,blue=b", "not 'blue=b'"),
    ("stable:a,canary=b", "not 'stable:a'"),
])
def test_bad_installed_option_is_one_line(text: str, error: str) -> None:
    with pytest.raises(UsageError, match=error):
        parse_installed(text)


def test_the_option_parses() -> None:
    assert parse_installed("stable=1-30-3, canary=1-31-0") == {"stable": "1-30-3", "canary": "1-31-0"}


class SomeonesCluster(SimulatedBackend):
    """The model as someone's cluster that already runs two revisions."""

    name = "existing"

    def may_destroy_foreign(self) -> bool:
        return False


def someones_cluster(tmp_path: Path, layout: str = "separate") -> tuple[SomeonesCluster, Any, MeshPlan, MeshPlan]:
    """The model with two revisions installed under another run id (the bed), and the plan of a run certifying them
    with --installed."""
    backend = SomeonesCluster(Transcript(tmp_path / "t.jsonl"), seed=1, faults=[],
                              node_image=next(iter(NODE_IMAGES.values())), work_dir=tmp_path, host_port_base=18080)
    cluster = backend.start()
    bed = install_owners_mesh(backend, cluster, tmp_path / "bed", layout)
    installed = load_profile("current", installed=",".join(f"{p.role}={p.plane.revision}" for p in bed.planes))
    plan = MeshPlan(certified_profile(installed, find_installed(cluster, dict(installed.installed))), "run1")
    return backend, cluster, bed, plan


def test_a_run_on_installed_revisions_installs_nothing_and_leaves_them_whole(tmp_path) -> None:
    """The bed's revisions (installed by the model's istioctl under another run id) are certified: the run creates
    its app namespaces labelled for their tags, installs and tags nothing, and at the end leaves the cluster as it
    found it."""
    backend, cluster, bed, plan = someones_cluster(tmp_path)
    before = objects(cluster)
    assert plan.installed and [p.plane.tag for p in plan.planes] == [p.plane.tag for p in bed.planes]
    transcript = tmp_path / "t.jsonl"
    commands_before = len(transcript.read_text().splitlines())
    with session_mesh(plan, backend, cluster, tmp_path / "run", {CLIENT}) as setup:
        assert not setup.installs and not setup.tag_sets
        for plane in plan.planes:
            labels = labels_of(cluster.get(kinds.NAMESPACE, plane.plane.app_namespaces[0]))
            assert labels[facts.REV_LABEL] == plane.plane.tag
    issued = transcript.read_text().splitlines()[commands_before:]
    assert not [c for c in issued if '"install"' in c or '"tag", "set"' in c or '"uninstall"' in c], issued
    stop_like_existing(cluster, "run1")
    assert objects(cluster) == before


@pytest.mark.parametrize("layout", ["separate", "shared"])
def test_the_canary_upgrade_moves_only_the_runs_namespace_between_the_clusters_tags(tmp_path, layout: str) -> None:
    """The upgrade and rollback relabel the run's app namespace from one of the cluster's tags to the other and back
    (in the shared layout too, where a run of its own moves the tag instead); the cluster's tags (their webhooks)
    stay where they point, and the traffic during both moves is judged."""
    backend, cluster, _, plan = someones_cluster(tmp_path, layout)
    assert plan.profile.layout == layout
    tags_before = {name_of(h): h for h in cluster.list(kinds.MUTATING_WEBHOOK)}
    stable, canary = plan.plane("stable"), plan.plane("canary")
    namespace = stable.plane.app_namespaces[0]
    with session_mesh(plan, backend, cluster, tmp_path / "run", set(BOOKINFO + CLIENT_MANIFESTS)) as setup:
        assert not wait_namespace_rolled_out(setup, namespace)
        assert move(setup, namespace, stable.plane.tag, stable, canary) == []
        assert labels_of(cluster.get(kinds.NAMESPACE, namespace))[facts.REV_LABEL] == canary.plane.tag
        assert move(setup, namespace, stable.plane.tag, canary, stable) == []
        assert labels_of(cluster.get(kinds.NAMESPACE, namespace))[facts.REV_LABEL] == stable.plane.tag
        assert {name_of(h): h for h in cluster.list(kinds.MUTATING_WEBHOOK)} == tags_before


def test_a_default_revision_installed_by_helm_is_found_as_default(tmp_path: Path) -> None:
    """The most common real setup: istiod installed without a revision (Deployment `istiod`, labelled
    istio.io/rev=default; mesh ConfigMap `istio`), beside a revisioned canary. `--installed stable=default` finds it,
    with its namespace, version and discovery labels, and no tag (a Helm install makes none) (issue 26, item 2)."""
    backend = SimulatedBackend(Transcript(tmp_path / "t.jsonl"), seed=1, faults=[],
                               node_image=next(iter(NODE_IMAGES.values())), work_dir=tmp_path, host_port_base=18080)
    cluster = backend.start()
    install_helm_default_mesh(cluster)
    [(role, found)] = find_installed(cluster, {"stable": facts.DEFAULT_REVISION}).items()
    assert (role, found.revision, found.namespace, str(found.version)) == (
        "stable", "default", HELM_DEFAULT_NAMESPACE, "1.29.6")
    assert found.tags == () and found.tag == "default"  # namespaces labelled istio.io/rev=default are its
    assert found.discovery_labels == HELM_DEFAULT_DISCOVERY
