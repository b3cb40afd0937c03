"""A pytest plugin for child runs: the simulated cluster stands in for someone's cluster that already runs two
revisions, certified with --installed. The owner's mesh is the `current` profile's pair installed by the model's
istioctl under the run id `owner` (revisions, tags, gateways; its app namespaces removed, as the run's are its own),
in the layout $OWNERS_LAYOUT.

Every object of the cluster is written as JSON to $OWNERS_DUMP right after the owner's install and again when the
backend stops (after the run's teardown), as `before` and `after`, for the parent test to compare.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from fixtures.mesh import build_mesh
from fixtures.options import RUN_CONFIG
from multirev.backends.base import Cluster
from multirev.backends.existing import CLEANUP_KINDS
from multirev.backends.simulated.backend import SimulatedBackend
from multirev.istio.installed import certified_profile, find_installed
from multirev.kube import kinds
from multirev.plan import RUN_ID_LABEL, MeshPlan
from multirev.profile import Profile, load_profile
from multirev.runrecord import record_namespace

OWNER = "owner"
_start, _stop = SimulatedBackend.start, SimulatedBackend.stop
_dump: dict[str, Any] = {}
_run: dict[str, str] = {}


def objects(cluster: Any) -> dict[str, Any]:
    """Every object, keyed `kind namespace/name`, without resourceVersion (which any write changes)."""
    cluster.advance()
    found = {}
    for obj in cluster.store.all():
        obj = copy.deepcopy(obj)
        obj["metadata"].pop("resourceVersion", None)
        found[f"{obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"] = obj
    return found


def owners_plan() -> MeshPlan:
    return MeshPlan(load_profile("current", layout=os.environ.get("OWNERS_LAYOUT", "separate")), OWNER)


def _with_the_owners_mesh(self: SimulatedBackend) -> Cluster:
    cluster = _start(self)
    if "before" not in _dump:
        plan = owners_plan()
        build_mesh(plan, self, cluster, Path(self.kubeconfig).parent / OWNER, set())
        for plane in plan.planes:
            for app in plane.plane.app_namespaces:
                cluster.delete(kinds.NAMESPACE, app)
        _dump["before"] = objects(cluster)
    return cluster


def _installed_profile(self: SimulatedBackend, profile: Profile) -> Profile:
    cluster = _with_the_owners_mesh(self)
    assert profile.installed is not None
    return certified_profile(profile, find_installed(cluster, dict(profile.installed)))


def _stop_and_dump(self: SimulatedBackend) -> None:
    """What the existing backend's stop does (multirev/backends/existing.py): the run's labelled objects, then its
    namespaces and its record; then the dump."""
    cluster, selector = self.cluster, {RUN_ID_LABEL: _run["id"]}
    for kind in CLEANUP_KINDS:
        for obj in cluster.list(kind, labels=selector):
            cluster.delete(kind, obj["metadata"]["name"], obj["metadata"].get("namespace"))
    for namespace in cluster.list(kinds.NAMESPACE, labels=selector):
        cluster.delete(kinds.NAMESPACE, namespace["metadata"]["name"])
    cluster.delete(kinds.NAMESPACE, record_namespace(_run["id"]))
    Path(os.environ["OWNERS_DUMP"]).write_text(json.dumps({"before": _dump.get("before", {}),
                                                            "after": objects(cluster)}))
    _stop(self)


def pytest_configure(config: pytest.Config) -> None:
    _run["id"] = config.stash[RUN_CONFIG].run_id


# Patched on import, which `-p` does before any pytest_configure: the suite's own (fixtures/options.py, tryfirst)
# asks the backend for the installed profile. Parent tests do not import this module.
SimulatedBackend.name = "existing"  # set-up surveys the cluster, borrows what exists, gives it back at the end
SimulatedBackend.may_destroy_foreign = lambda self: False  # type: ignore[method-assign]
SimulatedBackend.refuse_installed = lambda self: None  # type: ignore[method-assign]
SimulatedBackend.installed_profile = _installed_profile  # type: ignore[method-assign]
SimulatedBackend.start = _with_the_owners_mesh  # type: ignore[method-assign]
SimulatedBackend.stop = _stop_and_dump  # type: ignore[method-assign]
