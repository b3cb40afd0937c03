"""The model's Gateway API controller (multirev/backends/simulated/gateway_api.py) on the local-dev pair, with the
suite's own Gateway and HTTPRoutes, judged by the suite's checks and misused as real istiods are in
tests/local/test_real_data_plane.py."""

from __future__ import annotations

from pathlib import Path

from fixtures.mesh import MeshSetup, build_mesh
from multirev.backends.simulated.backend import SimulatedBackend
from multirev.commands import Transcript
from multirev.istio import facts
from multirev.istio.gateway_api import deployment_name
from multirev.kind.images import NODE_IMAGES
from multirev.kube import kinds
from multirev.plan import MeshPlan
from multirev.profile import load_profile
from suites.conftest import BOOKINFO, GATEWAY_API
from suites.gateway_api import GATEWAY, deployed_problems, move_tag, status_problems


def _mesh(tmp_path: Path, profile: str = "local-dev") -> MeshSetup:
    backend = SimulatedBackend(Transcript(tmp_path / "t.jsonl"), seed=1, faults=[],
                               node_image=next(iter(NODE_IMAGES.values())), work_dir=tmp_path, host_port_base=18080)
    setup = build_mesh(MeshPlan(load_profile(profile), "gwapi"), backend, backend.start(), tmp_path,
                       {*BOOKINFO, *GATEWAY_API})
    setup.cluster.settle(30)  # the istiods deploy their Gateways
    setup.cluster.settle(30)  # and their pods become ready, so the Gateways get an address
    return setup


def test_each_revision_deploys_and_programs_only_the_gateway_it_owns(tmp_path: Path) -> None:
    setup = _mesh(tmp_path)
    for role in ("stable", "canary"):
        assert deployed_problems(setup, role, role) + status_problems(setup, role) == [], role
    # Real misuse, as on real istiods: the stable Gateway relabelled with the canary's tag, in a namespace the
    # canary does not watch. Nobody redeploys it; asked for the owner its label names, the check says so.
    stable, canary = setup.plan.plane("stable").plane, setup.plan.plane("canary").plane
    app = stable.app_namespaces[0]
    setup.cluster.label(kinds.K8S_GATEWAY, GATEWAY, {facts.REV_LABEL: canary.tag}, app)
    setup.cluster.settle(30)
    problems = deployed_problems(setup, "stable", "canary")
    assert any(f"Deployment {app}/{deployment_name(GATEWAY)} for Gateway {app}/{GATEWAY} was rendered by revision "
               f"{stable.revision}, not by its owner {canary.revision}" in p for p in problems), problems
    # Deleting the Gateway takes what was deployed for it.
    setup.cluster.delete(kinds.K8S_GATEWAY, GATEWAY, app)
    setup.cluster.settle(5)
    assert setup.cluster.get(kinds.DEPLOYMENT, deployment_name(GATEWAY), app) is None


def test_moving_the_tag_a_gateway_follows_hands_it_to_the_other_revision(tmp_path: Path) -> None:
    """As on real istiods: the stable Gateway's tag moved to the canary (which is given the namespace to watch first)
    is re-rendered by the canary and stays Programmed; moved back, by the stable revision again."""
    setup = _mesh(tmp_path)
    stable, canary = setup.plan.plane("stable"), setup.plan.plane("canary")
    setup.cluster.label(kinds.NAMESPACE, stable.gateway_namespace, dict(canary.discovery_labels))
    for source, target in (("stable", "canary"), ("canary", "stable")):
        assert move_tag(setup, stable.plane.tag, source, target) == []
        setup.cluster.settle(30)
        setup.cluster.settle(30)
        assert deployed_problems(setup, "stable", target) + status_problems(setup, "stable") == [], target


def test_a_tag_moved_to_a_revision_that_does_not_watch_the_namespace_leaves_the_gateway_behind(tmp_path: Path) -> None:
    """Misuse, as on real istiods: the stable tag moved to the canary, which does not watch the stable namespace
    (discoverySelectors). The stable istiod lets the Gateway go, the canary never sees it: its Deployment stays as the
    stable revision rendered it, and the move's check names that."""
    setup = _mesh(tmp_path)
    stable, canary = setup.plan.plane("stable").plane, setup.plan.plane("canary").plane
    app = stable.app_namespaces[0]
    assert move_tag(setup, stable.tag, "stable", "canary") == []
    setup.cluster.settle(30)
    problems = deployed_problems(setup, "stable", "canary")
    assert problems == [f"Deployment {app}/{deployment_name(GATEWAY)} for Gateway {app}/{GATEWAY} was rendered by "
                        f"revision {stable.revision}, not by its owner {canary.revision}",
                        f"Deployment {app}/{deployment_name(GATEWAY)} for Gateway {app}/{GATEWAY} runs proxy "
                        f"{_proxy_image(setup, app)}, not the owner's version {canary.version}"], problems


def _proxy_image(setup: MeshSetup, app: str) -> str:
    deployment = setup.cluster.get(kinds.DEPLOYMENT, deployment_name(GATEWAY), app)
    assert deployment is not None
    return next(c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]
                if c["name"] == facts.PROXY_CONTAINER)
