"""Namespaces labelled per tag get their pods injected by the intended revision."""

from __future__ import annotations

import pytest

from fixtures.mesh import MeshSetup
from multirev.checks.injection import NamespaceState, check_pods
from multirev.conformance import conformance
from multirev.kube import kinds
from multirev.kube.objects import Obj
from multirev.observe import run_deployments, running_proxy_versions, workload_pods
from multirev.waits import Observation, wait_problem
from suites.conftest import assert_no_problems
from suites.scenario import settled

PODS_READY_TIMEOUT = 180.0


@pytest.mark.parametrize("role", ["stable", "canary"])
@conformance(feature="injection", manifests=("workloads/mesh-client.yaml",), canary=True)
def test_workloads_injected_by_intended_revision(mesh: MeshSetup, role: str) -> None:
    """Certifies that in each app namespace labelled istio.io/rev=<tag>, every workload pod was injected by
    the tag's revision (istio.io/rev annotation and sidecar.istio.io/status revision), runs an istio-proxy
    (container, or native sidecar) whose image version equals that revision's Istio version, and is ready.
    A namespace that also carries istio-injection is reported: that label wins over istio.io/rev.
    Only the run's workloads are judged: an app namespace borrowed on an existing cluster keeps its own, whose
    pods predate the run (observe.workload_pods)."""
    plane = mesh.plan.plane(role).plane
    cluster = mesh.cluster
    run_labels = mesh.plan.run_labels
    problems: list[str] = []
    for app in plane.app_namespaces:
        def deployments(app: str = app) -> Observation[list[Obj]]:
            found = run_deployments(cluster, app, run_labels)
            done, state = settled(found)
            return Observation(done, found, state)

        problem = wait_problem(f"Deployments in {app} to be ready or to report failures", deployments,
                               clock=cluster.clock, timeout=PODS_READY_TIMEOUT)
        pods = workload_pods(cluster, app, run_labels)
        state = NamespaceState(
            namespace=cluster.get(kinds.NAMESPACE, app),
            deployments=run_deployments(cluster, app, run_labels),
            pods=pods,
            wait_problem=problem,
            running_versions=running_proxy_versions(cluster, app, pods),
        )
        problems += check_pods(plane, app, state)
    assert_no_problems(problems, f"injection under tag {plane.tag} ({role})")
