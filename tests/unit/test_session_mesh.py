"""On a cluster the run does not own, set-up checks everything before creating anything, and what it
installed is removed at the end even when set-up fails half-way (the model stands in for the cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.mesh import session_mesh
from multirev.backends.simulated.backend import SimulatedBackend
from multirev.commands import Transcript
from multirev.errors import UsageError
from multirev.istio import facts
from multirev.istio.istioctl import Istioctl
from multirev.kind.images import NODE_IMAGES
from multirev.kube import kinds
from multirev.plan import MeshPlan
from multirev.profile import load_profile

CLIENT = "workloads/mesh-client.yaml"


class ForeignCluster(SimulatedBackend):
    """The model, treated as someone's existing cluster: foreign objects must not change."""

    name = "existing"

    def may_destroy_foreign(self) -> bool:
        return False


@pytest.fixture(params=["separate", "shared"])
def setting(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[ForeignCluster, MeshPlan, Path]:
    plan = MeshPlan(load_profile("current", layout=request.param), "run1")
    backend = ForeignCluster(Transcript(tmp_path / "t.jsonl"), seed=1, faults=[],
                             node_image=next(iter(NODE_IMAGES.values())), work_dir=tmp_path, host_port_base=18080)
    backend.start()
    return backend, plan, tmp_path


def istio_objects(backend: ForeignCluster, plan: MeshPlan) -> dict[str, list[str]]:
    """Everything that makes either revision of the run exist, by kind."""
    cluster = backend.cluster
    found: dict[str, list[str]] = {}
    for plane in plan.planes:
        for kind in (kinds.MUTATING_WEBHOOK, kinds.VALIDATING_WEBHOOK, kinds.DEPLOYMENT, kinds.SERVICE):
            for obj in cluster.list(kind, labels={facts.REV_LABEL: plane.plane.revision}):
                found.setdefault(kind.kind, []).append(obj["metadata"]["name"])
    found["IstioOperator"] = [o["metadata"]["name"] for o in cluster.list(kinds.ISTIO_OPERATOR)]
    found["CRD"] = [c["metadata"]["name"] for c in cluster.list(kinds.CRD)
                    if c["metadata"]["name"].endswith(".istio.io")]
    return {kind: names for kind, names in found.items() if names}


def test_a_failure_half_way_through_set_up_still_removes_what_was_installed(
        setting: tuple[ForeignCluster, MeshPlan, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Both revisions installed, then `tag set` dies: the revisions, tags, installed state and the CRDs the run
    brought to a cluster that had none are all gone when the session ends."""
    backend, plan, work = setting
    original = Istioctl.tag_set

    def tag_set_dies_for_canary(self: Istioctl, tag: str, *args: object, **kwargs: object):
        if tag == plan.plane("canary").plane.tag:
            raise ConnectionResetError("connection to the API server reset")
        return original(self, tag, *args, **kwargs)

    monkeypatch.setattr(Istioctl, "tag_set", tag_set_dies_for_canary)
    with pytest.raises(ConnectionResetError), session_mesh(plan, backend, backend.cluster, work, {CLIENT}):
        pytest.fail("set-up should not have finished")
    assert istio_objects(backend, plan) == {}
    tags = backend.cluster.list(kinds.MUTATING_WEBHOOK, labels={facts.TAG_LABEL: plan.plane("stable").plane.tag})
    assert tags == [], "the stable tag set before the failure is removed too"


def test_a_revision_that_exists_is_refused_before_anything_is_installed(
        setting: tuple[ForeignCluster, MeshPlan, Path]) -> None:
    """The canary revision exists already: one line naming it, and not even the stable revision is installed."""
    backend, plan, work = setting
    canary = plan.plane("canary").plane.revision
    foreign = {"name": f"istio-sidecar-injector-{canary}", "labels": {facts.REV_LABEL: canary}}
    backend.cluster.apply({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
                           "metadata": foreign, "webhooks": []})
    with pytest.raises(UsageError, match=f"revision {canary} already exists"), \
            session_mesh(plan, backend, backend.cluster, work, {CLIENT}):
        pytest.fail("set-up should have been refused")
    assert set(istio_objects(backend, plan)) == {"MutatingWebhookConfiguration"}  # the foreign one, untouched


def _crd(name: str, version: str | None) -> dict:
    labels = {facts.CRD_VERSION_LABEL: version} if version else {}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": name, "labels": labels}, "spec": {"group": name.split(".", 1)[1]}}


def test_istio_crds_of_another_version_are_not_rewritten(setting: tuple[ForeignCluster, MeshPlan, Path]) -> None:
    """CRDs from another Istio than the run's: each install would re-apply its own Base CRDs (a downgrade here),
    so the run refuses before installing anything."""
    backend, plan, work = setting
    backend.cluster.apply(_crd("virtualservices.networking.istio.io", "1.99.0"))
    with pytest.raises(UsageError, match=r"CRDs \(e.g. virtualservices.networking.istio.io\) are from Istio 1\.99\.0, "
                                         r"and the run's installs would rewrite them as 1\.29\.6 and then "
                                         r"1\.30\.3; pass --allow-destructive"), \
            session_mesh(plan, backend, backend.cluster, work, {CLIENT}):
        pytest.fail("set-up should have been refused")
    assert set(istio_objects(backend, plan)) == {"CRD"}


def _one_build_twice(tmp_path: Path) -> MeshPlan:
    """Two revisions of one build from source (what local-dev was before it paired two minors)."""
    path = tmp_path / "one-build.yaml"
    path.write_text("name: one-build\ndescription: two revisions of 1.31-dev\n"
                    "stable: {version: 1.31-dev, revision: a, namespace: istio-stable, tag: stable, "
                    "app_namespaces: [app-stable]}\n"
                    "canary: {version: 1.31-dev, revision: b, namespace: istio-canary, tag: canary, "
                    "app_namespaces: [app-canary]}\n")
    return MeshPlan(load_profile(path=path), "run1")


def test_crds_the_cluster_had_are_kept_with_their_labels(tmp_path: Path) -> None:
    """CRDs of the run's own version (both revisions of one build): used, kept, and their labels, which each
    install rewrites, given back."""
    plan = _one_build_twice(tmp_path)
    backend = ForeignCluster(Transcript(tmp_path / "t.jsonl"), seed=1, faults=[],
                             node_image=next(iter(NODE_IMAGES.values())), work_dir=tmp_path, host_port_base=18080)
    cluster = backend.start()
    crd = _crd("virtualservices.networking.istio.io", facts.CHART_PLACEHOLDER_VERSION)
    crd["metadata"]["labels"]["istio.io/rev"] = "theirs"
    cluster.apply(crd)
    before = cluster.get(kinds.CRD, "virtualservices.networking.istio.io")["metadata"]["labels"]
    with session_mesh(plan, backend, cluster, tmp_path, {CLIENT}):
        pass
    assert set(istio_objects(backend, plan)) == {"CRD"}
    assert cluster.get(kinds.CRD, "virtualservices.networking.istio.io")["metadata"]["labels"] == before


def test_two_builds_from_source_are_refused_on_crds_they_would_rewrite(tmp_path: Path) -> None:
    """1.30-dev and 1.31-dev both label their CRDs with the chart's placeholder, yet each install re-applies its
    own: the label cannot show they are unchanged, so CRDs the cluster had are refused."""
    plan = MeshPlan(load_profile("local-dev"), "run1")
    backend = ForeignCluster(Transcript(tmp_path / "t.jsonl"), seed=1, faults=[],
                             node_image=next(iter(NODE_IMAGES.values())), work_dir=tmp_path, host_port_base=18080)
    cluster = backend.start()
    cluster.apply(_crd("virtualservices.networking.istio.io", facts.CHART_PLACEHOLDER_VERSION))
    with pytest.raises(UsageError, match=r"carry the chart's placeholder version 1\.0\.0 \(a build from source\), "
                                         r"and the run's installs would rewrite them as 1\.30-dev and then "
                                         r"1\.31-dev"), \
            session_mesh(plan, backend, cluster, tmp_path, {CLIENT}):
        pytest.fail("set-up should have been refused")


class DestructiveForeignCluster(ForeignCluster):
    """Someone's cluster, with --allow-destructive."""

    def may_destroy_foreign(self) -> bool:
        return True


def test_with_allow_destructive_rewritten_crds_are_put_back_as_they_were(tmp_path: Path) -> None:
    """The newer install re-applies its CRDs (new fields in the schema); at the end the cluster's own are back,
    spec and labels."""
    plan = MeshPlan(load_profile("local-dev"), "run1")
    backend = DestructiveForeignCluster(Transcript(tmp_path / "t.jsonl"), seed=1, faults=[],
                                        node_image=next(iter(NODE_IMAGES.values())), work_dir=tmp_path,
                                        host_port_base=18080)
    cluster = backend.start()
    name = "destinationrules.networking.istio.io"
    crd = _crd(name, facts.CHART_PLACEHOLDER_VERSION)
    crd["spec"]["versions"] = [{"name": "v1", "schema": {"fields": ["theirs"]}}]
    cluster.apply(crd)
    before = cluster.get(kinds.CRD, name)
    with session_mesh(plan, backend, cluster, tmp_path, {CLIENT}):
        cluster.replace_spec(kinds.CRD, name, {**before["spec"], "versions": [
            {"name": "v1", "schema": {"fields": ["theirs", "http2KeepAlive"]}}]})
    after = cluster.get(kinds.CRD, name)
    assert after["spec"] == before["spec"] and after["metadata"]["labels"] == before["metadata"]["labels"]


def _namespace(name: str, labels: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def test_an_app_namespace_that_exists_is_refused_without_allow_destructive(
        setting: tuple[ForeignCluster, MeshPlan, Path]) -> None:
    backend, plan, work = setting
    app = plan.plane("canary").plane.app_namespaces[0]
    backend.cluster.apply(_namespace(app, {"team": "shop"}))
    with pytest.raises(UsageError, match=f"namespace {app} already exists .* pass --allow-destructive"), \
            session_mesh(plan, backend, backend.cluster, work, {CLIENT}):
        pytest.fail("set-up should have been refused")
    assert istio_objects(backend, plan) == {}


def test_an_app_namespace_that_existed_is_borrowed_and_given_back(tmp_path: Path) -> None:
    """With --allow-destructive the run uses the namespace: labels for injection during the run, exactly the
    prior labels after it, never the run-id label, never deleted (its own objects stay too)."""
    plan = MeshPlan(load_profile("current"), "run1")
    backend = DestructiveForeignCluster(Transcript(tmp_path / "t.jsonl"), seed=1, faults=[],
                                        node_image=next(iter(NODE_IMAGES.values())), work_dir=tmp_path,
                                        host_port_base=18080)
    cluster = backend.start()
    canary = plan.plane("canary").plane
    app = canary.app_namespaces[0]
    cluster.apply(_namespace(app, {"team": "shop", facts.REV_LABEL: "their-tag"}))
    before = cluster.get(kinds.NAMESPACE, app)["metadata"]["labels"]
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "theirs", "namespace": app},
                   "data": {"k": "v"}})
    with session_mesh(plan, backend, cluster, tmp_path, {CLIENT}):
        during = cluster.get(kinds.NAMESPACE, app)["metadata"]["labels"]
        assert during[facts.REV_LABEL] == canary.tag and "conformance.multirev.io/run-id" not in during
    assert cluster.get(kinds.NAMESPACE, app)["metadata"]["labels"] == before
    assert cluster.get(kinds.CONFIGMAP, "theirs", app) is not None


def test_an_object_the_run_would_overwrite_is_refused_even_with_allow_destructive(tmp_path: Path) -> None:
    plan = MeshPlan(load_profile("current"), "run1")
    backend = DestructiveForeignCluster(Transcript(tmp_path / "t.jsonl"), seed=1, faults=[],
                                        node_image=next(iter(NODE_IMAGES.values())), work_dir=tmp_path,
                                        host_port_base=18080)
    cluster = backend.start()
    app = plan.plane("stable").plane.app_namespaces[0]
    cluster.apply(_namespace(app, {}))
    cluster.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "mesh-client", "namespace": app}})
    with pytest.raises(UsageError, match=f"ServiceAccount {app}/mesh-client already exists and this run did not "
                                         "create it"), session_mesh(plan, backend, cluster, tmp_path, {CLIENT}):
        pytest.fail("set-up should have been refused")
    assert istio_objects(backend, plan) == {}


def test_a_default_tag_the_run_made_is_removed_and_one_that_existed_is_kept(
        setting: tuple[ForeignCluster, MeshPlan, Path]) -> None:
    backend, plan, work = setting
    with session_mesh(plan, backend, backend.cluster, work, {CLIENT}):
        assert backend.cluster.list(kinds.MUTATING_WEBHOOK, labels={facts.TAG_LABEL: "default"})
    assert backend.cluster.list(kinds.MUTATING_WEBHOOK, labels={facts.TAG_LABEL: "default"}) == []
    assert [h["metadata"]["name"] for h in backend.cluster.list(kinds.VALIDATING_WEBHOOK)] == []


def test_a_removal_that_could_not_reach_the_api_server_is_tried_once_more() -> None:
    """Teardown runs a removal again once when it failed on an unreachable API server, not when it failed otherwise
    (fixtures/mesh.py _once_more_if_unreachable)."""
    from types import SimpleNamespace

    from fixtures.mesh import _once_more_if_unreachable
    from multirev.clock import LogicalClock
    from multirev.commands import Completed

    setup = SimpleNamespace(cluster=SimpleNamespace(clock=LogicalClock()))
    reset = Completed(["istioctl"], 1, "", 'Error: Get "https://127.0.0.1:1/apis": read: connection reset by peer\n')
    answers = [reset, Completed(["istioctl"], 0, "done", "")]
    assert _once_more_if_unreachable(setup, lambda: answers.pop(0)).returncode == 0 and answers == []
    refused = Completed(["istioctl"], 1, "", "Error: revision 1-30-3 not found\n")
    calls = []
    assert _once_more_if_unreachable(setup, lambda: calls.append(1) or refused).returncode == 1 and calls == [1]
