"""Moving an app namespace's data plane from the stable to the canary revision, and back."""

from __future__ import annotations

import pytest

from fixtures.mesh import MeshSetup
from multirev.checks.injection import check_pod
from multirev.checks.trust import trust_root_problems
from multirev.checks.upgrade import Tally, check_tally
from multirev.conformance import conformance
from multirev.istio import facts
from multirev.kube import kinds
from multirev.observe import published_roots, run_deployments, running_proxy_versions, workload_pods
from multirev.plan import PlanePlan
from multirev.progress import step
from multirev.traffic import mesh_get
from multirev.waits import Observation, wait_problem
from suites.conftest import BOOKINFO, CLIENT, assert_no_problems
from suites.scenario import discovery_problems, rollout_state, wait_namespace_rolled_out

ROLLOUT_TIMEOUT = 300.0
REQUESTS_PER_TICK = 5
MIN_REQUESTS = 200
TARGET = "http://productpage:9080/productpage"


def send(mesh: MeshSetup, namespace: str, tally: Tally, count: int) -> None:
    if mesh.backend.data_plane_missing:
        return  # no proxy answers; the test is reported as skipped for its traffic half
    for _ in range(count):
        response = mesh_get(mesh.cluster, namespace, TARGET, labels=mesh.plan.run_labels)
        tally.add(response.status, response.body)


def move(mesh: MeshSetup, namespace: str, namespace_tag: str, source: PlanePlan, target: PlanePlan) -> list[str]:
    """Point the namespace at the target revision, restart the run's workloads in it, keep requests flowing
    throughout. Only the run's Deployments are restarted, awaited and judged (observe.run_deployments): a borrowed
    app namespace's own Deployments are the user's, and restarting them would re-inject them."""
    cluster = mesh.cluster
    run_labels = mesh.plan.run_labels
    tally = Tally()
    send(mesh, namespace, tally, REQUESTS_PER_TICK)
    if source.uses_discovery_selectors or mesh.plan.installed:
        # Let both istiods see the namespace while its pods move, then relabel it for the target's tag. The
        # cluster's own tags (--installed) stay where they point: only the run's namespace moves between them.
        with step(f"relabel namespace {namespace} istio.io/rev={target.plane.tag}"):
            cluster.label(kinds.NAMESPACE, namespace, {**target.discovery_labels, facts.REV_LABEL: target.plane.tag})
    else:
        # Shared layout: move the namespace's tag to the target revision (classic in-place canary upgrade).
        command = mesh.installer.describe("retag", target, namespace_tag)
        with step(command):
            result = mesh.installer.set_tag(target, namespace_tag, overwrite=True)
        if result.returncode != 0:
            return [f"`{command}` failed: {result.stderr.strip()}"]
    send(mesh, namespace, tally, REQUESTS_PER_TICK)
    deployments = [d["metadata"]["name"] for d in run_deployments(cluster, namespace, run_labels)]
    with step(f"rollout restart {len(deployments)} deployments in {namespace} -> {target.plane.revision}"):
        for name in deployments:
            cluster.rollout_restart(namespace, name)

        def rolled_out() -> Observation[None]:
            send(mesh, namespace, tally, REQUESTS_PER_TICK)
            pending = []
            for deploy in run_deployments(cluster, namespace, run_labels):
                done, _, state = rollout_state(deploy)
                if not done:
                    pending.append(state)
            return Observation(not pending, None, "; ".join(pending) or "all rolled out")

        problem = wait_problem(f"rollout of {namespace} onto revision {target.plane.revision}", rolled_out,
                               clock=cluster.clock, timeout=ROLLOUT_TIMEOUT, interval=1)
    if source.uses_discovery_selectors:
        # The source's own labels only: two installed revisions may select namespaces by the same one.
        cluster.label(kinds.NAMESPACE, namespace, dict.fromkeys(set(source.discovery_labels)
                                                                - set(target.discovery_labels)))
    send(mesh, namespace, tally, max(REQUESTS_PER_TICK, MIN_REQUESTS - tally.total))
    problems = [problem] if problem else []
    pods = workload_pods(cluster, namespace, run_labels)
    running = running_proxy_versions(cluster, namespace, pods)
    for pod in pods:
        problems += check_pod(target.plane, namespace, pod, running.get(pod["metadata"]["name"]))
    if not mesh.backend.data_plane_missing:
        problems += check_tally(f"moving {namespace} to revision {target.plane.revision}", tally)
        problems += discovery_problems(mesh, target.role, namespace, await_rollout=False)  # awaited above
    return problems


@conformance(feature="canary-upgrade", manifests=BOOKINFO + CLIENT, canary=True, mutates=True)
def test_canary_upgrade_and_rollback(mesh: MeshSetup) -> None:
    """Certifies a canary data-plane upgrade: while the namespace's in-mesh client keeps calling productpage,
    the stable app namespace is moved to the canary revision (relabelled in the separate layout, its tag
    moved with --overwrite in the shared one) and its deployments are restarted; both revisions publish one
    trust root (pods of the two revisions talk mTLS during the move); at least 99.5% of requests succeed
    throughout, and afterwards every pod runs the canary proxy version and talks to the canary istiod.
    The rollback moves it back the same way, with the same guarantees for the stable revision."""
    stable, canary = mesh.plan.plane("stable"), mesh.plan.plane("canary")
    namespace = stable.plane.app_namespaces[0]
    tag = stable.plane.tag
    # Pods of the two revisions talk mTLS to each other while the namespace moves: one root, or nothing works.
    problems = [f"before the move: {p}" for p in trust_root_problems(published_roots(mesh.cluster, mesh.plan))]
    # Set-up does not wait for workloads: requests sent before the client and productpage are up would count
    # against the move (seen with this test selected alone).
    if waited := wait_namespace_rolled_out(mesh, namespace):
        assert_no_problems([*problems, f"before the move: {waited}"], f"canary upgrade of {namespace}")
    problems += [f"upgrade: {p}" for p in move(mesh, namespace, tag, stable, canary)]
    problems += [f"rollback: {p}" for p in move(mesh, namespace, tag, canary, stable)]
    assert_no_problems(problems, f"canary upgrade of {namespace}")
    if mesh.backend.data_plane_missing:
        # The control-plane half passed (relabel, restart, re-injection both ways); the traffic half was not run.
        pytest.skip(f"{mesh.backend.data_plane_missing}: requests during the move and discovery addresses not "
                    "checked (relabel, restart and re-injection by the target revision passed both ways)")
