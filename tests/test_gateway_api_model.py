"""The model's Gateway API controller (multirev/backends/simulated/gateway_api.py) on the local-dev pair, judged by
the same checks and the same misuse as real istiods (tests/local/test_real_data_plane.py)."""

from __future__ import annotations

from pathlib import Path

from fixtures.mesh import build_mesh
from multirev.backends.simulated.backend import SimulatedBackend
from multirev.commands import Transcript
from multirev.kind.images import NODE_IMAGES
from multirev.kube import kinds
from multirev.plan import MeshPlan
from multirev.profile import load_profile
from suites.conftest import BOOKINFO
from tests.gateway_api_scenario import gateway_api_objects, problems


def _mesh(tmp_path: Path, faults: list[str] | None = None):
    backend = SimulatedBackend(Transcript(tmp_path / "t.jsonl"), seed=1, faults=faults or [],
                               node_image=next(iter(NODE_IMAGES.values())), work_dir=tmp_path, host_port_base=18080)
    plan = MeshPlan(load_profile("local-dev"), "gwapi")
    return plan, build_mesh(plan, backend, backend.start(), tmp_path, set(BOOKINFO))


def _problems(setup, plan: MeshPlan, role: str, owner_role: str | None = None) -> list[str]:
    owner = plan.plane(owner_role or role).plane
    return problems(setup.cluster, role, plan.plane(role).plane.app_namespaces[0], owner.revision, str(owner.version))


def test_each_revision_deploys_and_programs_only_the_gateway_it_owns(tmp_path: Path) -> None:
    plan, setup = _mesh(tmp_path)
    for role in ("stable", "canary"):
        plane = plan.plane(role).plane
        for obj in gateway_api_objects(role, plane.tag, plane.app_namespaces[0]):
            setup.cluster.apply(obj)
    setup.cluster.settle(30)  # the istiods deploy their Gateways
    setup.cluster.settle(30)  # and their pods become ready, so the Gateways get an address
    for role in ("stable", "canary"):
        assert _problems(setup, plan, role) == [], role
    # Real misuse, as on real istiods: the stable Gateway relabelled with the canary's tag, in a namespace the
    # canary does not watch. Nobody redeploys it; asked for the owner its label names, the check says so.
    stable, canary = plan.plane("stable").plane, plan.plane("canary").plane
    app = stable.app_namespaces[0]
    setup.cluster.label(kinds.K8S_GATEWAY, "bookinfo-stable", {"istio.io/rev": canary.tag}, app)
    setup.cluster.settle(30)
    problems = _problems(setup, plan, "stable", owner_role="canary")
    assert any(f"Deployment {app}/bookinfo-stable-istio for Gateway {app}/bookinfo-stable was rendered by revision "
               f"{stable.revision}, not by its owner {canary.revision}" in p for p in problems), problems
    # Deleting the Gateway takes what was deployed for it.
    setup.cluster.delete(kinds.K8S_GATEWAY, "bookinfo-stable", app)
    setup.cluster.settle(5)
    assert setup.cluster.get(kinds.DEPLOYMENT, "bookinfo-stable-istio", app) is None


def test_moving_the_tag_a_gateway_follows_hands_it_to_the_other_revision(tmp_path: Path) -> None:
    """As on real istiods (tests/local/test_real_data_plane.py): the stable Gateway's tag moved to the canary (which
    is given the namespace to watch first) is re-rendered by the canary and stays Programmed; moved back, by the
    stable revision again."""
    plan, setup = _mesh(tmp_path)
    for role in ("stable", "canary"):
        plane = plan.plane(role).plane
        for obj in gateway_api_objects(role, plane.tag, plane.app_namespaces[0]):
            setup.cluster.apply(obj)
    setup.cluster.settle(30)
    setup.cluster.settle(30)
    stable, canary = plan.plane("stable"), plan.plane("canary")
    app, tag = stable.plane.app_namespaces[0], stable.plane.tag
    setup.cluster.label(kinds.NAMESPACE, app, dict(canary.discovery_labels))
    for source, target, owner in ((stable, canary, "canary"), (canary, stable, "stable")):
        assert setup.installer.remove_tag(source, tag).returncode == 0
        assert setup.installer.set_tag(target, tag, overwrite=True).returncode == 0
        setup.cluster.settle(30)
        setup.cluster.settle(30)
        assert _problems(setup, plan, "stable", owner_role=owner) == [], owner
