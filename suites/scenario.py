"""Steps several scenarios share (not tests themselves: pytest collects only test_*.py)."""

from __future__ import annotations

from collections.abc import Callable

from fixtures.mesh import MeshSetup
from multirev import manifests
from multirev.backends.base import HttpResponse
from multirev.checks.discovery import check_discovery
from multirev.checks.tags import check_default_tag_injection
from multirev.checks.webhooks import check_unlabelled_config_validated, default_tag_revision
from multirev.checks.xds import QUIET_BEFORE_PROBE, config_keys, pushes_naming_any
from multirev.istio import facts
from multirev.kube import kinds
from multirev.observe import istiod_logs, istiod_ref, run_deployments, workload_pods
from multirev.probes import admit_config, admit_pod
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
    if not manifests.is_istio_config(obj):
        return False
    kind = kinds.of(obj)
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


def default_tags(mesh: MeshSetup) -> list[dict]:
    """The `default` tag's MutatingWebhookConfigurations (one, where all is well)."""
    return mesh.cluster.list(kinds.MUTATING_WEBHOOK, labels={facts.TAG_LABEL: facts.DEFAULT_TAG})


def default_tag_now(mesh: MeshSetup) -> str | None:
    """The revision the `default` tag names now, or None without one."""
    return default_tag_revision(default_tags(mesh))


def default_tag_after_set_up(mesh: MeshSetup) -> str | None:
    """The revision the `default` tag should name once set-up is done: the one it named before the run where the
    cluster had one (an install never moves it: operator/pkg/webhook/webhook.go@1.30.3 detectIfTagWebhookIsNeeded),
    else the stable revision, whose install made it. None: --installed, whatever the cluster's tag names."""
    if mesh.plan.installed:
        return None
    before = [config for config in (mesh.footprint.webhook_configs_before.values() if mesh.footprint else ())
              if config.kind == kinds.MUTATING_WEBHOOK.kind and config.labels.get(facts.TAG_LABEL) == facts.DEFAULT_TAG]
    if before:
        return before[0].labels.get(facts.REV_LABEL)
    return mesh.plan.plane("stable").plane.revision


def injection_probe_namespace(mesh: MeshSetup) -> str:
    """A namespace of the run's own labelled istio-injection=enabled and nothing else, made on first use: where the
    default tag decides injection. It holds no pods (the probe is a dry run) and goes with the run's namespaces."""
    name = f"injection-probe-{mesh.plan.run_id}"
    if mesh.cluster.get(kinds.NAMESPACE, name) is None:
        with step(f"create namespace {name} ({facts.INJECTION_LABEL}=enabled)"):
            mesh.use_namespace(name, {facts.INJECTION_LABEL: "enabled"})
    return name


ADMISSION_SETTLE_TIMEOUT = 60.0


def settled_problems(what: str, mesh: MeshSetup, probe: Callable[[], list[str]]) -> list[str]:
    """A probe's problems once they stop changing for the better: asked again (bounded) while it finds any, since an
    istiod that just started, or a webhook just moved, answers a moment later (istiod turns its validators fail-closed
    only once its own webhook answers: pkg/webhooks/validation/controller/controller.go@1.30.3). The last answer is
    the verdict."""
    last: list[list[str]] = [[]]

    def asked() -> Observation[None]:
        last[0] = probe()
        return Observation(not last[0], None, "; ".join(last[0]) or "none")

    wait_problem(what, asked, clock=mesh.cluster.clock, timeout=ADMISSION_SETTLE_TIMEOUT, interval=3)
    return last[0]


def default_tag_injection_problems(mesh: MeshSetup, expected: str | None) -> list[str]:
    """Who injects a pod created in a namespace labelled istio-injection=enabled (asked by dry run, nothing made)."""
    namespace = injection_probe_namespace(mesh)

    def probe() -> list[str]:
        admitted = admit_pod(mesh.cluster, namespace, mesh.plan.run_labels)
        return check_default_tag_injection(namespace, admitted, default_tags(mesh), expected)

    return settled_problems(f"a Pod in {namespace} to be injected by the default tag's revision", mesh, probe)


def unlabelled_config_problems(mesh: MeshSetup, namespace: str) -> list[str]:
    """Is Istio config without a revision label validated (dry runs of a valid and an always-rejected object)?"""
    def probe() -> list[str]:
        valid = admit_config(mesh.cluster, namespace, mesh.plan.run_labels, always_reject=False)
        rejected = admit_config(mesh.cluster, namespace, mesh.plan.run_labels, always_reject=True)
        return check_unlabelled_config_validated(namespace, valid, rejected)

    return settled_problems(f"Istio config without a revision label in {namespace} to be validated", mesh, probe)
