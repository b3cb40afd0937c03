"""The model as someone's cluster that already runs two revisions, for --installed self-tests: the owner's install,
what the existing backend's stop removes, and every object to compare before and after a run."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from fixtures.mesh import build_mesh
from multirev.backends.existing import CLEANUP_KINDS
from multirev.backends.simulated.backend import SimulatedBackend
from multirev.kube import kinds
from multirev.plan import RUN_ID_LABEL, MeshPlan
from multirev.profile import load_profile
from multirev.runrecord import record_namespace

OWNER = "owner"


def install_owners_mesh(backend: SimulatedBackend, cluster: Any, work: Path, layout: str = "separate") -> MeshPlan:
    """The `current` profile's pair installed by the model's istioctl under the run id `owner` (revisions, tags,
    gateways); its app namespaces removed, as a run's are its own."""
    plan = MeshPlan(load_profile("current", layout=layout), OWNER)
    build_mesh(plan, backend, cluster, work, set())
    for plane in plan.planes:
        for app in plane.plane.app_namespaces:
            cluster.delete(kinds.NAMESPACE, app)
    cluster.advance()
    return plan


def stop_like_existing(cluster: Any, run_id: str) -> None:
    """What the existing backend's stop does (multirev/backends/existing.py): the run's labelled objects, then its
    namespaces and its record."""
    selector = {RUN_ID_LABEL: run_id}
    for kind in CLEANUP_KINDS:
        for obj in cluster.list(kind, labels=selector):
            cluster.delete(kind, obj["metadata"]["name"], obj["metadata"].get("namespace"))
    for namespace in cluster.list(kinds.NAMESPACE, labels=selector):
        cluster.delete(kinds.NAMESPACE, namespace["metadata"]["name"])
    cluster.delete(kinds.NAMESPACE, record_namespace(run_id))


def objects(cluster: Any) -> dict[str, Any]:
    """Every object, keyed `kind namespace/name`, without resourceVersion (which any write changes)."""
    cluster.advance()
    found = {}
    for obj in cluster.store.all():
        obj = copy.deepcopy(obj)
        obj["metadata"].pop("resourceVersion", None)
        found[f"{obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"] = obj
    return found
