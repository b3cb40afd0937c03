"""Moving an app namespace's data plane between revisions under traffic (not a test module: the canary upgrade and
the uninstall of an old default revision both move one)."""

from __future__ import annotations

from fixtures.mesh import MeshSetup
from multirev.checks.injection import check_pod
from multirev.checks.upgrade import Tally, check_tally
from multirev.istio import facts
from multirev.kube import kinds
from multirev.observe import run_deployments, running_proxy_versions, workload_pods
from multirev.plan import PlanePlan
from multirev.progress import step
from multirev.traffic import mesh_get
from multirev.waits import Observation, wait_problem
from suites.scenario import default_tag_injection_problems, discovery_problems, rollout_state

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
    problems: list[str] = []
    # The cluster's own `default` tag (--installed) stays where it points.
    moves_default_tag = not mesh.plan.installed
    if target.is_default_revision and moves_default_tag:
        # Rollback onto the default revision: the `default` tag back first, so that the namespace, labelled
        # istio-injection=enabled again, is injected by it.
        if failed := move_default_tag(mesh, target):
            return failed
        problems += [f"once the default tag was moved back: {p}"
                     for p in default_tag_injection_problems(mesh, target.plane.revision)]
    if source.uses_discovery_selectors or mesh.plan.installed or source.is_default_revision \
            or target.is_default_revision:
        # Let both istiods see the namespace while its pods move, then label it for the target. The cluster's own
        # tags (--installed) stay where they point: only the run's namespace moves between them. Off the default
        # revision, istio-injection goes (it would win over istio.io/rev); back onto it, istio.io/rev goes.
        labels: dict[str, str | None] = {**target.discovery_labels,
                                         **dict.fromkeys(set(source.injection_labels) - set(target.injection_labels)),
                                         **target.injection_labels}
        shown = ", ".join(f"{k}={v}" if v is not None else f"{k}-" for k, v in labels.items())
        with step(f"relabel namespace {namespace} {shown}"):
            cluster.label(kinds.NAMESPACE, namespace, labels)
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
    if source.is_default_revision and moves_default_tag:
        # Istio's canary page, last step: the `default` tag to the canary, so that namespaces still labelled
        # istio-injection=enabled get it on their next restart, and config without a revision label is validated
        # by it.
        if failed := move_default_tag(mesh, target):
            return [*problems, *failed]
        problems += [f"once the default tag was moved: {p}"
                     for p in default_tag_injection_problems(mesh, target.plane.revision)]
    send(mesh, namespace, tally, max(REQUESTS_PER_TICK, MIN_REQUESTS - tally.total))
    problems += [problem] if problem else []
    pods = workload_pods(cluster, namespace, run_labels)
    running = running_proxy_versions(cluster, namespace, pods)
    for pod in pods:
        problems += check_pod(target.plane, namespace, pod, running.get(pod["metadata"]["name"]))
    if not mesh.backend.data_plane_missing:
        problems += check_tally(f"moving {namespace} to revision {target.plane.revision}", tally)
        problems += discovery_problems(mesh, target.role, namespace, await_rollout=False)  # awaited above
    return problems


def move_default_tag(mesh: MeshSetup, target: PlanePlan) -> list[str]:
    """Point the `default` tag at the target: `istioctl tag set default --revision <target> --overwrite`. `-i` names
    the tag's webhook and the namespace of the istiod it calls (istioctl/pkg/tag/tag.go@1.30.3 setTag, generate.go
    generateMutatingWebhook), so where the tag lives in another namespace than the target's istiod (the separate
    layout), it is removed there first (`tag remove` deletes every webhook of the tag: util.go DeleteTagWebhooks):
    set from there, it would call a Service that does not exist; set from the target's, a second `default` tag
    would sit beside the first, which, first by name, would go on injecting."""
    here = target.plane.namespace
    hooks = mesh.cluster.list(kinds.MUTATING_WEBHOOK, labels={facts.TAG_LABEL: facts.DEFAULT_TAG})
    elsewhere = sorted({service_namespace(h) for h in hooks} - {here, None})
    for namespace in elsewhere:
        command = mesh.installer.describe("untag", target, facts.DEFAULT_TAG, istio_namespace=namespace)
        with step(command):
            result = mesh.installer.remove_tag(target, facts.DEFAULT_TAG, istio_namespace=namespace)
        if result.returncode != 0:
            return [f"`{command}` failed: {result.stderr.strip()}"]
    command = mesh.installer.describe("retag", target, facts.DEFAULT_TAG)
    with step(command):
        result = mesh.installer.set_tag(target, facts.DEFAULT_TAG, overwrite=True)
    return [f"`{command}` failed: {result.stderr.strip()}"] if result.returncode != 0 else []


def service_namespace(hook: dict) -> str | None:
    """The namespace of the Service a webhook configuration's first webhook calls: the tag's `-i`."""
    entries = hook.get("webhooks") or [{}]
    return ((entries[0].get("clientConfig") or {}).get("service") or {}).get("namespace")


