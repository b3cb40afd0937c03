"""Steps several scenarios share (not tests themselves: pytest collects only test_*.py)."""

from __future__ import annotations

from fixtures.mesh import MeshSetup
from multirev.backends.base import HttpResponse
from multirev.checks.discovery import check_discovery
from multirev.checks.xds import QUIET_BEFORE_PROBE, config_keys, pushes_naming_any
from multirev.istio import facts
from multirev.kube import kinds
from multirev.observe import istiod_logs, istiod_ref, run_deployments, workload_pods
from multirev.progress import step
from multirev.traffic import gateway_get
from multirev.waits import Observation, wait_problem

READY_TIMEOUT = 300.0
PUSH_TIMEOUT = 60.0
SETTLE = 5.0  # after istiod logged a push, time for Envoy to take the new config


def wait_until_served(mesh: MeshSetup, role: str, path: str, host: str) -> str | None:
    """Workloads start after set-up; wait (bounded) until the route answers 200."""
    def probe() -> Observation[HttpResponse]:
        response = gateway_get(mesh.cluster, mesh.endpoint(role), path, host)
        return Observation(response.status == 200, response, f"HTTP {response.status} {response.body[:80]}")

    return wait_problem(f"GET {path} (Host {host}) through the {role} gateway to answer 200", probe,
                        clock=mesh.cluster.clock, timeout=READY_TIMEOUT, interval=3)


def apply_and_await_push(mesh: MeshSetup, role: str, manifest: str) -> None:
    """Apply config and wait (bounded) until the revision's istiod logged a push for it, then let Envoy settle.
    Objects applied together share one push whose line names one of them (multirev/checks/xds.py), so after a
    quiet gap any of the manifest's keys will do. Only a sync aid: a missing push line is the xDS test's
    verdict, wrong behaviour the caller's."""
    plane = mesh.plan.plane(role).plane
    namespace = plane.app_namespaces[0]
    objects = mesh.rendered(manifest, role, namespace)
    # A change still being debounced (a Service or endpoints just made) would lead the batch and name it.
    mesh.cluster.clock.sleep(QUIET_BEFORE_PROBE)
    # An object applied again unchanged makes no watch event, hence no push: only changed ones are awaited.
    keys = [key for obj in objects if _config_changes(mesh, obj) for key in config_keys(obj)]
    before = len(pushes_naming_any(istiod_logs(mesh.cluster, plane), keys))
    with step(f"apply {manifest} in {namespace}"):
        for obj in objects:
            mesh.put(obj)
    if not keys:
        return

    def pushed() -> Observation[None]:
        count = len(pushes_naming_any(istiod_logs(mesh.cluster, plane), keys))
        return Observation(count > before, None, f"{count} pushes naming one of {', '.join(keys)}")

    wait_problem(f"{istiod_ref(plane)} to push one of {', '.join(keys)}", pushed, clock=mesh.cluster.clock,
                 timeout=PUSH_TIMEOUT, interval=1)
    mesh.cluster.clock.sleep(SETTLE)


def _config_changes(mesh: MeshSetup, obj: dict) -> bool:
    """Whether applying `obj` changes Istio config the cluster holds (its spec or labels)."""
    kind = next((k for k in kinds.ISTIO_CONFIG if k.kind == obj["kind"]), None)
    if kind is None:
        return False
    current = mesh.cluster.get(kind, obj["metadata"]["name"], obj["metadata"]["namespace"])
    return current is None or current.get("spec") != obj.get("spec") \
        or (current["metadata"].get("labels") or {}) != (obj["metadata"].get("labels") or {})


def discovery_problems(mesh: MeshSetup, role: str, namespace: str, *, await_rollout: bool = True) -> list[str]:
    """Ask the plane's istioctl for each pod's bootstrap and compare its discovery address. Set-up does not wait
    for workloads, and a proxy that has not started has no bootstrap yet: so first wait (bounded) for the
    namespace's Deployments, unless the caller just did. Only the run's pods are asked (observe.workload_pods)."""
    plane = mesh.plan.plane(role).plane
    expected = facts.discovery_address(plane.revision, plane.namespace)
    if await_rollout and (waited := wait_namespace_rolled_out(mesh, namespace)):
        return [waited]
    pods = workload_pods(mesh.cluster, namespace, mesh.plan.run_labels)
    if not pods:
        return [f"no workload pods in {namespace} to ask"]
    problems = []
    for pod in pods:
        name = pod["metadata"]["name"]
        result = mesh.istioctl(role).proxy_config_bootstrap(name, namespace)
        problems += check_discovery(f"Pod {namespace}/{name}", result, expected)
    return problems


def settled(deployments: list[dict]) -> tuple[bool, str]:
    """Ready, or failing to create pods: either way there is something to judge."""
    states = []
    done = True
    for d in deployments:
        status = d.get("status", {})
        failing = any(c["type"] == "ReplicaFailure" for c in status.get("conditions", []))
        ready = status.get("readyReplicas", 0) >= d["spec"].get("replicas", 1)
        done = done and (ready or failing)
        states.append(f"{d['metadata']['name']}: {status.get('readyReplicas', 0)} ready"
                      f"{', ReplicaFailure' if failing else ''}")
    return done and bool(deployments), "; ".join(states) or "no Deployments"


def wait_rolled_out(mesh: MeshSetup, namespace: str, deployment: str, timeout: float = READY_TIMEOUT) -> str | None:
    """Bounded wait until every pod of the Deployment runs its current template and is ready."""
    def rolled_out() -> Observation[None]:
        deploy = mesh.cluster.get(kinds.DEPLOYMENT, deployment, namespace) or {}
        return Observation(*rollout_state(deploy))

    return wait_problem(f"rollout of Deployment {namespace}/{deployment}", rolled_out, clock=mesh.cluster.clock,
                        timeout=timeout, interval=2)


def wait_namespace_rolled_out(mesh: MeshSetup, namespace: str, timeout: float = READY_TIMEOUT) -> str | None:
    """One bounded wait until every Deployment the run made in the namespace is rolled out (see rollout_state);
    a borrowed namespace's own Deployments are not the run's to wait for (observe.run_deployments)."""
    def rolled_out() -> Observation[None]:
        pending = [state for done, _, state in map(rollout_state, run_deployments(mesh.cluster, namespace,
                                                                                  mesh.plan.run_labels))
                   if not done]
        return Observation(not pending, None, "; ".join(pending) or "all rolled out")

    return wait_problem(f"the Deployments of {namespace} to roll out", rolled_out, clock=mesh.cluster.clock,
                        timeout=timeout, interval=2)


def rollout_state(deploy: dict) -> tuple[bool, None, str]:
    """Done, as `kubectl rollout status` judges it: the controller has observed the current spec (status.
    observedGeneration >= metadata.generation) and every replica is updated and ready (kubernetes@v1.35.4:
    staging/src/k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go). Without the generation check a wait
    right after a restart reads the previous rollout's status and ends at once (seen on the local backend)."""
    status, wanted = deploy.get("status", {}), (deploy.get("spec") or {}).get("replicas", 1)
    observed = status.get("observedGeneration", 0) >= (deploy.get("metadata") or {}).get("generation", 0)
    done = observed and status.get("updatedReplicas") == status.get("replicas") == status.get("readyReplicas") == wanted
    return done, None, (f"{deploy.get('metadata', {}).get('name', '?')}: {status.get('readyReplicas', 0)}/{wanted} "
                        f"ready, {status.get('updatedReplicas', 0)} updated, {status.get('replicas', 0)} pods"
                        + ("" if observed else ", new spec not yet observed"))
