"""An istiod the run did not install writes its own root into istio-ca-root-cert in every namespace it watches, so
on a cluster that runs Istio the run refuses, before it creates anything, when such an istiod watches the run's
namespaces; the model overwrites the root as a real one does (issue 16, finding 4)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fixtures.mesh import build_mesh, session_mesh
from multirev.backends.simulated.backend import SimulatedBackend
from multirev.checks.trust import root_of, trust_root_problems
from multirev.commands import Transcript
from multirev.errors import UsageError
from multirev.faults import resolve
from multirev.istio import facts
from multirev.istio.namespace_controller import Istiod
from multirev.istio.trust import ROOT_CONFIGMAP
from multirev.kind.images import NODE_IMAGES
from multirev.kube import kinds
from multirev.observe import published_roots
from multirev.plan import MeshPlan
from multirev.profile import load_profile

CLIENT = "workloads/mesh-client.yaml"


class ExistingModel(SimulatedBackend):
    """The model standing in for someone's cluster, run with --allow-destructive."""

    name = "existing"

    def may_destroy_foreign(self) -> bool:
        return True


class ExistingModelWithoutDestructive(ExistingModel):
    def may_destroy_foreign(self) -> bool:
        return False


def model(tmp_path: Path, backend: type[SimulatedBackend] = ExistingModel,
          faults: tuple[str, ...] = ()) -> SimulatedBackend:
    made = backend(Transcript(tmp_path / "t.jsonl"), seed=1, faults=resolve(list(faults)),
                   node_image=next(iter(NODE_IMAGES.values())), work_dir=tmp_path, host_port_base=18080)
    made.start()
    return made


def deployment(namespace: str, revision: str, image: str, env: dict[str, str]) -> dict:
    """An istiod Deployment as the istio-discovery chart makes it (templates/deployment.yaml@1.29.6)."""
    labels = {"app": "istiod", facts.REV_LABEL: revision}
    name = "istiod" if revision == "default" else f"istiod-{revision}"
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": "discovery", "image": image,
                          "env": [{"name": k, "value": v} for k, v in env.items()]}]}}}}


def foreign_istiod(backend: SimulatedBackend, *, namespace: str = "istio-system", revision: str = "default",
                   selectors: list[dict] | None = None, namespace_labels: dict[str, str] | None = None,
                   image: str = "docker.io/istio/pilot:1.29.6", env: dict[str, str] | None = None) -> None:
    """Someone's Istio, there before the run: its namespace, mesh ConfigMap and istiod, running."""
    cluster = backend.cluster
    cluster.apply({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": namespace, "labels": namespace_labels or {}}})
    mesh = {"rootNamespace": namespace, **({"discoverySelectors": selectors} if selectors is not None else {})}
    config_map = "istio" if revision == "default" else f"istio-{revision}"
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": config_map, "namespace": namespace},
                   "data": {"mesh": yaml.safe_dump(mesh)}})
    cluster.apply(deployment(namespace, revision, image, env or {}))
    cluster.settle(10.0)  # its pod is ready: it has written its root where it watches


def foreign_root(backend: SimulatedBackend, namespace: str = "istio-system") -> str:
    found = backend.cluster.get(kinds.CONFIGMAP, ROOT_CONFIGMAP, namespace)
    assert found is not None, f"the foreign istiod published no root in its namespace {namespace}"
    return root_of(found) or ""


def run_objects(backend: SimulatedBackend, plan: MeshPlan) -> list[str]:
    return [f"{kind.kind} {o['metadata']['name']}" for plane in plan.planes
            for kind in (kinds.DEPLOYMENT, kinds.MUTATING_WEBHOOK)
            for o in backend.cluster.list(kind, labels={facts.REV_LABEL: plane.plane.revision})]


@pytest.mark.parametrize("layout", ["separate", "shared"])
@pytest.mark.parametrize("backend_type", [ExistingModel, ExistingModelWithoutDestructive])
def test_a_foreign_istiod_without_discovery_selectors_is_refused_in_one_line(
        tmp_path: Path, layout: str, backend_type: type[SimulatedBackend]) -> None:
    """Someone's istiod with no discoverySelectors watches every namespace, the run's too: one line naming it, its
    namespace, revision, the run's namespaces it writes to and the fix, before anything is installed; with
    --allow-destructive too, which cannot lift it."""
    plan = MeshPlan(load_profile("current", layout=layout), "run1")
    backend = model(tmp_path, backend_type)
    foreign_istiod(backend)
    namespaces = sorted({*(p.plane.namespace for p in plan.planes),
                         *(app for p in plan.planes for app in p.plane.app_namespaces)})
    with pytest.raises(UsageError) as refused, session_mesh(plan, backend, backend.cluster, tmp_path, {CLIENT}):
        pytest.fail("set-up should have been refused")
    line = str(refused.value)
    assert "\n" not in line
    assert line.startswith("istiod Deployment istio-system/istiod (revision default) was not installed by this run "
                           "and watches every namespace (ConfigMap istio-system/istio sets no discoverySelectors)")
    assert f"istio-ca-root-cert in the run's namespaces {', '.join(namespaces)} over" in line
    assert "give it discoverySelectors that select none of them" in line
    assert "--allow-destructive does not permit this" in line
    assert run_objects(backend, plan) == []


def test_a_foreign_istiod_whose_selectors_select_none_of_the_runs_namespaces_is_left_alone(tmp_path: Path) -> None:
    """Someone's istiod scoped to its own team's namespaces: the run goes ahead, and the roots the trust check reads
    are the run's own, not the foreign istiod's."""
    plan = MeshPlan(load_profile("current"), "run1")
    backend = model(tmp_path)
    foreign_istiod(backend, namespace="their-istio", revision="theirs", namespace_labels={"team": "owner"},
                   selectors=[{"matchLabels": {"team": "owner"}}])
    theirs = foreign_root(backend, "their-istio")
    with session_mesh(plan, backend, backend.cluster, tmp_path, {CLIENT}) as mesh:
        roots = {entry.namespace: root_of(entry.config_map) for entry in published_roots(mesh.cluster, plan)}
        assert set(roots) == {"istio-stable", "istio-canary"} and None not in roots.values()
        assert theirs not in roots.values()
        assert trust_root_problems(published_roots(mesh.cluster, plan)) == []
    assert backend.cluster.list(kinds.DEPLOYMENT, "their-istio") != [], "the foreign istiod is left as it was"


def test_foreign_selectors_that_match_the_labels_the_run_sets_are_refused(tmp_path: Path) -> None:
    """Selectors matched only once the run labels its namespaces (istio.io/rev for injection) still select them:
    the app namespaces are named, the control planes' (without that label) are not."""
    plan = MeshPlan(load_profile("current"), "run1")
    backend = model(tmp_path)
    foreign_istiod(backend, selectors=[{"matchExpressions": [{"key": facts.REV_LABEL, "operator": "Exists"}]}])
    with pytest.raises(UsageError, match=r"its discoverySelectors \(ConfigMap istio-system/istio\) select them: it "
                                         r"would write its own root into istio-ca-root-cert in the run's namespaces "
                                         r"app-canary, app-stable over"), \
            session_mesh(plan, backend, backend.cluster, tmp_path, {CLIENT}):
        pytest.fail("set-up should have been refused")


def test_an_old_istiod_that_ignores_its_selectors_is_refused(tmp_path: Path) -> None:
    """Before 1.22 the namespace controller keeps to discoverySelectors only with ENABLE_ENHANCED_RESOURCE_SCOPING
    (default off): scoped selectors do not keep a 1.21 istiod out of the run's namespaces."""
    plan = MeshPlan(load_profile("current"), "run1")
    backend = model(tmp_path)
    foreign_istiod(backend, selectors=[{"matchLabels": {"team": "owner"}}], image="docker.io/istio/pilot:1.21.6")
    with pytest.raises(UsageError, match=r"watches every namespace \(Istio 1\.21's namespace controller ignores "
                                         r"discoverySelectors unless ENABLE_ENHANCED_RESOURCE_SCOPING=true\)"), \
            session_mesh(plan, backend, backend.cluster, tmp_path, {CLIENT}):
        pytest.fail("set-up should have been refused")


def _istiod(image: str, env: dict[str, str] | None = None, selectors: list[dict] | None = None) -> Istiod:
    mesh = {"data": {"mesh": yaml.safe_dump({"discoverySelectors": selectors})}} if selectors is not None else None
    return Istiod.of(deployment("istio-system", "default", image, env or {}), mesh)


@pytest.mark.parametrize(("image", "env", "honours"), [
    ("docker.io/istio/pilot:1.15.7", {"ENABLE_ENHANCED_RESOURCE_SCOPING": "true"}, False),  # no filter at all
    ("docker.io/istio/pilot:1.18.5", {}, False),  # default false
    ("docker.io/istio/pilot:1.21.0", {"ENABLE_ENHANCED_RESOURCE_SCOPING": "true"}, True),
    ("docker.io/istio/pilot:1.22.0", {}, True),  # default true
    ("docker.io/istio/pilot:1.24.3", {"ENABLE_ENHANCED_RESOURCE_SCOPING": "false"}, False),
    ("registry.istio.io/release/pilot:1.29.6-distroless", {"ENABLE_ENHANCED_RESOURCE_SCOPING": "false"}, True),
    ("my.registry:5000/pilot@sha256:0123", {}, True),  # no version in the tag: a current build
])
def test_which_versions_keep_their_root_to_their_selectors(image: str, env: dict[str, str], honours: bool) -> None:
    istiod = _istiod(image, env, [{"matchLabels": {"team": "owner"}}])
    assert istiod.honours_selectors is honours
    assert istiod.watches("app-stable", {"kubernetes.io/metadata.name": "app-stable"}) is not honours
    assert istiod.watches("theirs", {"team": "owner"})


def test_what_discovery_selectors_select() -> None:
    """None set, or an empty list: every namespace; an empty selector: every namespace; a null one: none; never
    kube-public (the controller skips it)."""
    image = "docker.io/istio/pilot:1.29.6"
    assert _istiod(image).watches("app-stable", {})
    assert _istiod(image, selectors=[]).watches("app-stable", {})
    assert _istiod(image, selectors=[{}]).watches("app-stable", {})
    assert not _istiod(image, selectors=[None]).watches("app-stable", {})
    assert not _istiod(image).watches("kube-public", {})
    assert _istiod(image).watches("kube-system", {})


def test_the_model_lets_a_foreign_istiod_overwrite_the_runs_root(tmp_path: Path) -> None:
    """Without the refusal (the model's own set-up does not refuse): someone's istiod without selectors writes its
    root over the run's in the control planes' namespaces and the app namespaces, so the trust check is judged on the
    foreign root. It then passes a mesh whose two revisions do not share a root (fault trust-roots-differ)."""
    plan = MeshPlan(load_profile("current"), "run1")
    alone = model(tmp_path / "alone", SimulatedBackend, ("trust-roots-differ",))
    build_mesh(plan, alone, alone.cluster, tmp_path / "alone", {CLIENT})
    assert trust_root_problems(published_roots(alone.cluster, plan)), "the fault alone fails the trust check"

    backend = model(tmp_path / "with", SimulatedBackend, ("trust-roots-differ",))
    foreign_istiod(backend)
    theirs = foreign_root(backend)
    mesh = build_mesh(plan, backend, backend.cluster, tmp_path / "with", {CLIENT})
    written = {ns: root_of(backend.cluster.get(kinds.CONFIGMAP, ROOT_CONFIGMAP, ns))
               for p in plan.planes for ns in (p.plane.namespace, *p.plane.app_namespaces)}
    assert written == dict.fromkeys(written, theirs), "the foreign istiod's root everywhere it watches"
    assert mesh.cluster.get(kinds.CONFIGMAP, ROOT_CONFIGMAP, "kube-public") is None
    assert trust_root_problems(published_roots(backend.cluster, plan)) == [], "judged on the foreign root"
