"""Changing mesh config after install: re-run `istioctl install -f` with the new setting."""

from __future__ import annotations

import pytest

from fixtures.mesh import MeshSetup
from multirev.conformance import conformance
from multirev.istio import facts, operator
from multirev.istio.capabilities import supports
from multirev.kube import kinds
from multirev.observe import mesh_config as observed_mesh_config
from multirev.observe import workload_pods
from multirev.progress import step
from multirev.waits import Observation, wait_problem
from suites.conftest import NOT_OURS, assert_no_problems
from suites.scenario import READY_TIMEOUT, wait_rolled_out

APP = "metrics-app"
OWN = {"prometheus.io/port": "9090", "prometheus.io/path": "/metrics"}
MERGED = {"prometheus.io/port": "15020", "prometheus.io/path": "/stats/prometheus"}


def mesh_config(mesh: MeshSetup, role: str) -> dict:
    plane = mesh.plan.plane(role).plane
    return observed_mesh_config(mesh.cluster, plane.revision, plane.namespace)


def prometheus_annotations(mesh: MeshSetup, namespace: str) -> list[tuple[str, dict[str, str]]]:
    return [(p["metadata"]["name"], {k: v for k, v in (p["metadata"].get("annotations") or {}).items()
                                     if k in OWN})
            for p in workload_pods(mesh.cluster, namespace, mesh.plan.run_labels, labels={"app": APP})]


def restart_and_read(mesh: MeshSetup, namespace: str) -> tuple[list[str], list[tuple[str, dict[str, str]]]]:
    with step(f"rollout restart {namespace}/{APP}"):
        mesh.cluster.rollout_restart(namespace, APP)
        problem = wait_rolled_out(mesh, namespace, APP)
    return ([problem] if problem else []), prometheus_annotations(mesh, namespace)


def reinstall(mesh: MeshSetup, role: str, settings: dict) -> list[str]:
    plane = mesh.plan.plane(role)
    iop = operator.write(plane, mesh.work_dir / "reapply", mesh_config=settings, run_labels=mesh.plan.run_labels,
                         backend_settings=mesh.backend.istio_settings(), pin_node_ports=mesh.backend.pins_node_ports)
    command = mesh.installer.describe("install", plane)
    with step(f"{command} (meshConfig {settings or 'as set up'})"):
        result = mesh.installer.install(plane, iop)
    if result.returncode != 0:
        return [f"re-running `{command}` failed: {result.stderr.strip()[-300:]}"]
    return []


@conformance(feature="re-apply", manifests=("workloads/metrics-app.yaml",), mutates=True)
def test_reapplied_mesh_config_takes_effect(mesh: MeshSetup, record_property: pytest.RecordProperty) -> None:
    """Certifies that re-running `istioctl install -f` for the canary revision with
    `meshConfig.enablePrometheusMerge: false` changes that revision's mesh ConfigMap, and that pods injected
    afterwards keep their own prometheus.io annotations instead of Istio's merged ones. For Istio < 1.21,
    which still writes an installed-state IstioOperator, it also records (as information, not a verdict) that
    editing that object alone changes nothing. The original setting is re-applied at the end."""
    if mesh.plan.installed:
        pytest.skip(NOT_OURS.format(what="re-installs"))
    role = "canary"
    plane = mesh.plan.plane(role).plane
    namespace = plane.app_namespaces[0]
    problems, before = restart_and_read(mesh, namespace)
    if not before or any(ann != MERGED for _, ann in before):
        problems.append(f"before the change, {APP} pods in {namespace} should carry the merged annotations "
                        f"{MERGED}; found {before}")
    if supports(plane.version, "installed-state-iop"):
        record_property("installed_state_iop", edit_installed_state(mesh, role))
    problems += reinstall(mesh, role, {"enablePrometheusMerge": False})

    def applied() -> Observation[dict]:
        current = mesh_config(mesh, role)
        return Observation(current.get("enablePrometheusMerge") is False, current,
                           f"enablePrometheusMerge={current.get('enablePrometheusMerge')}")

    problem = wait_problem(f"ConfigMap {plane.namespace}/{facts.mesh_configmap_name(plane.revision)} to carry "
                           "enablePrometheusMerge: false", applied, clock=mesh.cluster.clock, timeout=READY_TIMEOUT)
    problems += [problem] if problem else []
    restart_problems, after = restart_and_read(mesh, namespace)
    problems += restart_problems
    if not after or any(ann != OWN for _, ann in after):
        problems.append(f"after re-applying with enablePrometheusMerge: false, {APP} pods in {namespace} should keep "
                        f"their own annotations {OWN}; found {after}")
    problems += reinstall(mesh, role, {})  # leave the mesh as set-up made it
    assert_no_problems(problems, f"config re-apply ({plane.revision})")


def edit_installed_state(mesh: MeshSetup, role: str) -> str:
    """Edit only the installed-state IstioOperator (< 1.21) and report whether the mesh config followed."""
    plane = mesh.plan.plane(role).plane
    saved = facts.installed_state_name(operator.iop_name(mesh.plan.plane(role)), plane.revision)
    edited = mesh.cluster.get(kinds.ISTIO_OPERATOR, saved, plane.namespace)
    if edited is None:
        return f"no installed-state IstioOperator {plane.namespace}/{saved}"
    edited.setdefault("spec", {}).setdefault("meshConfig", {})["enablePrometheusMerge"] = False
    edited["metadata"] = {k: edited["metadata"][k] for k in ("name", "namespace", "labels") if k in edited["metadata"]}
    edited.pop("status", None)
    mesh.cluster.apply(edited)
    mesh.cluster.clock.sleep(10)
    changed = mesh_config(mesh, role).get("enablePrometheusMerge") is False
    return (f"editing IstioOperator {plane.namespace}/{edited['metadata']['name']} alone "
            f"{'changed' if changed else 'did not change'} the mesh config (no in-cluster operator since 1.24)")
