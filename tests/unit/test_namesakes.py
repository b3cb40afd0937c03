"""Someone's revision that happens to share a name with one of the run's, in another namespace, is not the run's:
teardown neither waits for its istiod nor takes its webhooks or ClusterRoles, and neither does `./run cleanup`
(issue 26, item 4; the model stands in for someone's cluster, with --allow-destructive, as the shared revision name
needs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fixtures.mesh import session_mesh
from multirev.cleanup import dead_runs, remove_run
from multirev.istio import facts
from multirev.kube import kinds
from multirev.plan import MeshPlan
from multirev.profile import load_profile
from tests.someones_model import stop_like_existing
from tests.unit.test_cleanup import CLIENT, RUN, _backend, run_killed, silence, snapshot

THEIRS = "their-istio"


def _namesake(revision: str) -> list[dict]:
    """An istiod of revision `revision` in THEIRS, seeing only namespaces labelled team=theirs, with its Service,
    its injector webhook and ClusterRole named as the chart names them (facts.injector_webhook_name,
    cluster_scoped_suffix)."""
    rev = {facts.REV_LABEL: revision}
    meta = {"namespace": THEIRS, "labels": {**rev, "app": "istiod"}}
    service = {"name": facts.istiod_name(revision), "namespace": THEIRS, "path": facts.INJECT_PATH}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": THEIRS, "labels": {"team": "theirs"}}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": facts.mesh_configmap_name(revision), **meta},
         "data": {"mesh": yaml.safe_dump({"discoverySelectors": [{"matchLabels": {"team": "theirs"}}]})}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": facts.istiod_name(revision), **meta},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "istiod", **rev}},
                  "template": {"metadata": {"labels": {"app": "istiod", **rev}},
                               "spec": {"containers": [{"name": facts.ISTIOD_CONTAINER,
                                                        "image": "docker.io/istio/pilot:1.29.6"}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": facts.istiod_name(revision), **meta},
         "spec": {"selector": {"app": "istiod", **rev}, "ports": [{"name": "https-webhook", "port": 443}]}},
        {"apiVersion": kinds.MUTATING_WEBHOOK.api_version, "kind": "MutatingWebhookConfiguration",
         "metadata": {"name": facts.injector_webhook_name(revision, THEIRS),
                      "labels": {**rev, "app": "sidecar-injector"}},
         "webhooks": [{"name": facts.REV_NAMESPACE_WEBHOOK, "clientConfig": {"service": service}}]},
        {"apiVersion": kinds.CLUSTER_ROLE.api_version, "kind": "ClusterRole",
         "metadata": {"name": f"istiod-clusterrole{facts.cluster_scoped_suffix(revision, THEIRS)}", "labels": rev},
         "rules": []},
    ]


def _cluster_with_namesake(tmp_path: Path):
    plan = MeshPlan(load_profile("current"), RUN)
    backend = _backend(tmp_path)  # --allow-destructive: a revision of the run's name exists
    for obj in _namesake(plan.plane("stable").plane.revision):
        backend.cluster.apply(obj)
    backend.cluster.clock.sleep(30)  # its istiod pod is up
    return backend, plan


def test_teardown_leaves_a_namesake_revision_alone(tmp_path: Path) -> None:
    backend, plan = _cluster_with_namesake(tmp_path)
    before = snapshot(backend.cluster)
    with session_mesh(plan, backend, backend.cluster, tmp_path, {CLIENT}):
        pass
    stop_like_existing(backend.cluster, RUN)
    assert snapshot(backend.cluster) == before


def test_cleanup_leaves_a_namesake_revision_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend, plan = _cluster_with_namesake(tmp_path)
    before = snapshot(backend.cluster)
    run_killed(plan, backend, tmp_path, monkeypatch)
    silence(backend.cluster)
    lines = remove_run(backend.cluster, dead_runs(backend.cluster)[0])
    assert not [line for line in lines if THEIRS in line]
    assert snapshot(backend.cluster) == before
