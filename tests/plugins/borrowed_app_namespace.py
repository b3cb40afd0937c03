"""A pytest plugin for child runs: the simulated cluster stands in for someone's existing cluster, run with
--allow-destructive, whose app namespace $BORROWED_NAMESPACE already exists and holds a Deployment of the user's
own (`shop-web`, label app=shop-web) that has no sidecar: its pod was created before the run labelled the namespace
for injection.

When the backend stops (after the mesh's teardown gave the namespace back), the user's Deployment and pods as the
cluster then holds them are written as JSON to $BORROWED_NAMESPACE_DUMP, for the parent test to judge.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from multirev.backends.base import Cluster
from multirev.backends.simulated.backend import SimulatedBackend
from multirev.kube import kinds

USER_APP = "shop-web"

_start, _stop = SimulatedBackend.start, SimulatedBackend.stop


def user_deployment(namespace: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": USER_APP, "namespace": namespace, "labels": {"app": USER_APP}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": USER_APP}},
                     "template": {"metadata": {"labels": {"app": USER_APP}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}


def _start_with_a_user_namespace(self: SimulatedBackend) -> Cluster:
    cluster = _start(self)
    namespace = os.environ["BORROWED_NAMESPACE"]
    if cluster.get(kinds.NAMESPACE, namespace) is None:
        cluster.apply({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": namespace, "labels": {"team": "shop"}}})
        cluster.apply(user_deployment(namespace))
        cluster.clock.sleep(10)  # its pod is up before the run starts
    return cluster


def _stop_and_dump(self: SimulatedBackend) -> None:
    namespace = os.environ["BORROWED_NAMESPACE"]
    cluster = self.cluster
    Path(os.environ["BORROWED_NAMESPACE_DUMP"]).write_text(json.dumps({
        "namespace": cluster.get(kinds.NAMESPACE, namespace),
        "deployment": cluster.get(kinds.DEPLOYMENT, USER_APP, namespace),
        "pods": cluster.list(kinds.POD, namespace, labels={"app": USER_APP}),
    }))
    _stop(self)


def pytest_configure(config: object) -> None:
    """Only when loaded as a plugin (`-p`), not when a parent test imports this module for USER_APP."""
    SimulatedBackend.name = "existing"  # set-up surveys the cluster, borrows what exists, gives it back at the end
    SimulatedBackend.may_destroy_foreign = lambda self: True  # type: ignore[method-assign]  # --allow-destructive
    SimulatedBackend.start = _start_with_a_user_namespace  # type: ignore[method-assign]
    SimulatedBackend.stop = _stop_and_dump  # type: ignore[method-assign]
