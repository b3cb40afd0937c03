"""Reading what the checks judge from a cluster: istiod logs, workload pods, published trust roots."""

from __future__ import annotations

import yaml

from multirev.backends.base import Cluster
from multirev.checks.injection import needs_running_version, proxy_version_from
from multirev.checks.trust import PublishedRoot
from multirev.istio import facts
from multirev.istio.namespace_controller import MESH_KEY, Istiod, mesh_config_map
from multirev.istio.trust import ROOT_CONFIGMAP
from multirev.kube import kinds
from multirev.kube.objects import Obj, labels_of
from multirev.plan import MeshPlan
from multirev.profile import ControlPlane

ISTIOD_LOG_LINES = 5000


def istiod_logs(cluster: Cluster, plane: ControlPlane) -> str:
    """Logs of the revision's istiod pods (label app=istiod, istio.io/rev=<rev>; container `discovery`:
    CHART/deployment.yaml)."""
    pods = cluster.list(kinds.POD, plane.namespace, labels={"app": "istiod", facts.REV_LABEL: plane.revision})
    return "\n".join(cluster.pod_logs(plane.namespace, p["metadata"]["name"], facts.ISTIOD_CONTAINER,
                                      ISTIOD_LOG_LINES) for p in pods)


def istiod_ref(plane: ControlPlane) -> str:
    return f"istiod {plane.namespace}/{facts.istiod_name(plane.revision)}"


def workload_pods(cluster: Cluster, namespace: str, run_labels: dict[str, str],
                  labels: dict[str, str] | None = None) -> list[Obj]:
    """Pods of the run's workloads in the namespace (carrying `run_labels`, the plan's run-id label, which set-up
    puts on every pod template: multirev/manifests.py labels_pod_template; with an `app` label, and `labels`) that
    are not shutting down. An app namespace borrowed on an existing cluster (--allow-destructive) may hold the
    user's own workloads, whose pods predate the run and its injection: they are not the run's to judge.
    A terminating pod (deletionTimestamp set) is still listed for its grace period, 30 s by default, while
    its Deployment already leaves it out of its counts (kubernetes@v1.35.4 pkg/controller/controller_utils.go
    IsPodActive): judging it would report the revision it is being moved away from."""
    return [p for p in cluster.list(kinds.POD, namespace, labels={**(labels or {}), **run_labels})
            if (p["metadata"].get("labels") or {}).get("app") and not p["metadata"].get("deletionTimestamp")]


def running_proxy_versions(cluster: Cluster, namespace: str, pods: list[Obj]) -> dict[str, str]:
    """Pod name -> the version its proxy reports, for the pods whose proxy image is pinned by digest and so names no
    version (facts.PROXY_VERSION_COMMAND in istio-proxy). A pod whose proxy cannot say is left out: the check then
    names it."""
    found = {}
    for pod in pods:
        if not needs_running_version(pod):
            continue
        name = pod["metadata"]["name"]
        said = cluster.exec(namespace, name, facts.PROXY_CONTAINER, list(facts.PROXY_VERSION_COMMAND))
        version = proxy_version_from(said.stdout) if said.returncode == 0 else None
        if version:
            found[name] = version
    return found


def run_deployments(cluster: Cluster, namespace: str, run_labels: dict[str, str]) -> list[Obj]:
    """The run's Deployments in the namespace (labelled with `run_labels` by set-up): the ones its checks wait for
    and its upgrades restart. A borrowed app namespace's own Deployments are neither."""
    return cluster.list(kinds.DEPLOYMENT, namespace, labels=run_labels)


def published_roots(cluster: Cluster, plan: MeshPlan) -> list[PublishedRoot]:
    """The root each control plane's istiod publishes: in its own namespace where its discoverySelectors select that
    namespace, else in its first app namespace. istiod's namespace controller writes only where its filter selects,
    its own namespace being no exception (istio@1.30.3: pkg/kube/namespace/filter.go, used by
    pilot/pkg/serviceregistry/kube/controller/namespacecontroller.go through kubeClient.ObjectFilter()), so a
    revision whose selectors leave out its own namespace never writes one there (an owner's, --installed)."""
    roots = []
    for p in plan.planes:
        where = p.plane.namespace if _watches_own_namespace(cluster, p.plane) else p.plane.app_namespaces[0]
        roots.append(PublishedRoot(p.plane.revision, where, cluster.get(kinds.CONFIGMAP, ROOT_CONFIGMAP, where)))
    return roots


def _watches_own_namespace(cluster: Cluster, plane: ControlPlane) -> bool:
    """By its Deployment and mesh config, as multirev/istio/namespace_controller.py reads them; an istiod that cannot
    be found is taken to (its own namespace is then where the check looks, and says what it finds)."""
    deployment = cluster.get(kinds.DEPLOYMENT, facts.istiod_service_for(plane.revision), plane.namespace)
    namespace = cluster.get(kinds.NAMESPACE, plane.namespace)
    if deployment is None or namespace is None:
        return True
    istiod = Istiod.of(deployment, cluster.get(kinds.CONFIGMAP, mesh_config_map(plane.revision), plane.namespace))
    return istiod.watches(plane.namespace, labels_of(namespace))


def mesh_config(cluster: Cluster, revision: str, namespace: str) -> dict:
    """A revision's mesh config as its istiod reads it: the `mesh` key of ConfigMap istio-<revision> in its namespace
    (istio@1.30-dev: pilot/pkg/bootstrap/mesh.go; facts.mesh_configmap_name)."""
    return mesh_of(cluster.get(kinds.CONFIGMAP, facts.mesh_configmap_name(revision), namespace))


def mesh_of(configmap: Obj | None) -> dict:
    """The mesh config a revision's ConfigMap holds under its `mesh` key ({} when there is none)."""
    return yaml.safe_load(((configmap or {}).get("data") or {}).get(MESH_KEY) or "{}") or {}
