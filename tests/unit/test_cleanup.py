"""A run killed outright on a cluster it does not own leaves its run record, and from it `./run cleanup` (and the
next run, with --allow-destructive) puts the cluster back as it was (the model stands in for someone's cluster,
as in test_session_mesh.py)."""

from __future__ import annotations

import copy
import subprocess
import time
from pathlib import Path

import pytest

import fixtures.mesh as mesh_fixtures
from fixtures.mesh import session_mesh
from multirev.backends.existing import ExistingBackend, ExistingOptions
from multirev.backends.simulated.backend import SimulatedBackend
from multirev.backends.simulated.cluster import SimulatedCluster
from multirev.cleanup import DEAD_AFTER, chosen_records, dead_runs, remove_run
from multirev.commands import RecordingRunner, SubprocessRunner, Transcript
from multirev.errors import UsageError
from multirev.footprint import PUBLISHED_LABEL, Footprint
from multirev.istio import facts
from multirev.kind.images import NODE_IMAGES
from multirev.kube import kinds
from multirev.kube.objects import labels_of
from multirev.plan import RUN_ID_LABEL, MeshPlan
from multirev.profile import load_profile
from multirev.runrecord import (
    HEARTBEAT_LABEL,
    RECORD_ANNOTATION,
    RECORD_BUDGET,
    Heartbeat,
    RunRecord,
    find,
    read,
    record_namespace,
    write,
)

CLIENT = "workloads/mesh-client.yaml"
RUN = "run1"


class ForeignCluster(SimulatedBackend):
    """The model, treated as someone's existing cluster."""

    name = "existing"

    def may_destroy_foreign(self) -> bool:
        return False

    def may_purge_foreign(self) -> bool:
        return False


class DestructiveForeignCluster(ForeignCluster):
    """Someone's cluster, with --allow-destructive (and not --allow-purge)."""

    def may_destroy_foreign(self) -> bool:
        return True

    def may_purge_foreign(self) -> bool:
        return False


def _backend(tmp_path: Path, kind: type[ForeignCluster] = DestructiveForeignCluster) -> ForeignCluster:
    backend = kind(Transcript(tmp_path / "t.jsonl"), seed=1, faults=[], node_image=next(iter(NODE_IMAGES.values())),
                   work_dir=tmp_path, host_port_base=18080)
    backend.start()
    return backend


def _namespace(name: str, labels: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def snapshot(cluster: SimulatedCluster) -> dict[tuple[str, str, str], dict]:
    """Every object on the cluster, as a reader compares them (resourceVersion changes with any write)."""
    cluster.advance()  # pod and Deployment status as any read would see them now
    objects = {}
    for obj in cluster.store.all():
        obj = copy.deepcopy(obj)
        obj["metadata"].pop("resourceVersion", None)
        objects[(obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])] = obj
    return objects


def someones_cluster(cluster: SimulatedCluster, plan: MeshPlan) -> None:
    """What was there before the run: the stable control plane's namespace and the canary app namespace (both
    borrowed, with labels of their own), someone's injector webhook, and a CA ConfigMap someone's istiod wrote."""
    cluster.apply(_namespace(plan.plane("stable").plane.namespace, {"team": "mesh"}))
    cluster.apply(_namespace(plan.plane("canary").plane.app_namespaces[0],
                             {"team": "shop", facts.REV_LABEL: "their-tag"}))
    cluster.apply({"apiVersion": kinds.MUTATING_WEBHOOK.api_version, "kind": "MutatingWebhookConfiguration",
                   "metadata": {"name": "their-injector", "labels": {"app": "theirs"}}, "webhooks": []})
    cluster.apply(_namespace("theirs", {}))
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "istio-ca-root-cert", "namespace": "theirs", "labels": PUBLISHED_LABEL}, "data": {"root": "theirs"}})


def run_killed(plan: MeshPlan, backend: ForeignCluster, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run sets everything up, then is killed: no teardown runs (SIGKILL), and its heartbeat stops."""
    with monkeypatch.context() as patched:
        patched.setattr(mesh_fixtures, "remove_what_the_run_installed", lambda setup: None)
        with session_mesh(plan, backend, backend.cluster, work, {CLIENT}):
            pass


def killed_on_someones_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The current profile's run on someone's cluster (`someones_cluster`), killed after set-up; with the
    snapshot from before the run."""
    plan = MeshPlan(load_profile("current"), RUN)
    backend = _backend(tmp_path)
    cluster = backend.cluster
    someones_cluster(cluster, plan)
    before = snapshot(cluster)
    run_killed(plan, backend, tmp_path, monkeypatch)
    return plan, backend, cluster, before


def silence(cluster: SimulatedCluster, run_id: str = RUN) -> None:
    """The killed run's last beat, longer ago than DEAD_AFTER."""
    cluster.label(kinds.NAMESPACE, record_namespace(run_id), {HEARTBEAT_LABEL: str(int(time.time() - DEAD_AFTER - 5))})


def run_leftovers(cluster: SimulatedCluster, plan: MeshPlan) -> list[str]:
    revisions = {p.plane.revision for p in plan.planes}
    return [f"{o['kind']} {o['metadata']['name']}" for o in cluster.store.all()
            if labels_of(o).get(RUN_ID_LABEL) == plan.run_id or labels_of(o).get(facts.REV_LABEL) in revisions]


def test_a_killed_run_is_removed_and_the_cluster_is_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything the killed run made is gone (revisions, tags, the default tag and validator, CRDs, its CA
    ConfigMaps, workloads, namespaces, the record), every label it borrowed is back, nothing else changed; and
    the order keeps the cluster usable: webhooks first, the record last."""
    plan, backend, cluster, before = killed_on_someones_cluster(tmp_path, monkeypatch)
    assert run_leftovers(cluster, plan), "the killed run should have left its objects"
    silence(cluster)

    [record] = dead_runs(cluster)
    lines = remove_run(cluster, record)

    assert snapshot(cluster) == before
    stable = plan.plane("stable").plane
    app = plan.plane("canary").plane.app_namespaces[0]
    assert f"deleted ValidatingWebhookConfiguration {facts.DEFAULT_VALIDATOR}" in lines
    assert f"deleted Service {stable.namespace}/{facts.tag_service_name(stable.tag)}" in lines
    assert f"gave back labels of Namespace {app}" in lines and f"gave back labels of Namespace {stable.namespace}" \
        in lines
    assert lines[-1] == f"deleted Namespace {record_namespace(RUN)}"

    def first(prefix: str) -> int:
        return next(i for i, line in enumerate(lines) if line.startswith(prefix))

    def last(prefix: str) -> int:
        return max(i for i, line in enumerate(lines) if line.startswith(prefix))

    assert last("deleted MutatingWebhookConfiguration") < first("deleted Deployment")
    assert last("deleted ValidatingWebhookConfiguration") < first("deleted Deployment")
    published = f"deleted ConfigMap {stable.namespace}/istio-ca-root-cert"  # its istiod wrote it there
    assert published in lines
    assert last(f"deleted Deployment {stable.namespace}/") < first(published)  # its istiod gone first
    assert last("deleted CustomResourceDefinition") < first("gave back") < first("deleted Namespace")


def test_crds_that_existed_are_kept_with_their_spec_and_labels(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The cluster had Istio CRDs (of another version: --allow-destructive): each install relabelled them as its
    own and the newer one rewrote their schema; cleanup keeps them and gives spec and labels back (the spec from
    the record's ConfigMap)."""
    plan = MeshPlan(load_profile("current"), RUN)
    backend = _backend(tmp_path)
    cluster = backend.cluster
    name = "virtualservices.networking.istio.io"
    theirs = {"group": "networking.istio.io", "versions": [{"name": "v1", "schema": {"fields": ["theirs"]}}]}
    cluster.apply({"apiVersion": kinds.CRD.api_version, "kind": "CustomResourceDefinition",
                   "metadata": {"name": name, "labels": {facts.CRD_VERSION_LABEL: "1.99.0", "owner": "them"}},
                   "spec": theirs})
    run_killed(plan, backend, tmp_path, monkeypatch)
    assert labels_of(cluster.get(kinds.CRD, name)).get(facts.REV_LABEL), "the installs should have relabelled it"
    cluster.replace_spec(kinds.CRD, name, {**theirs, "versions": [{"name": "v1", "schema": {"fields": ["new"]}}]})
    silence(cluster)
    lines = remove_run(cluster, dead_runs(cluster)[0])
    assert labels_of(cluster.get(kinds.CRD, name)) == {facts.CRD_VERSION_LABEL: "1.99.0", "owner": "them"}
    assert cluster.get(kinds.CRD, name)["spec"] == theirs
    assert f"gave back the spec of CustomResourceDefinition {name}" in lines
    assert f"gave back labels of CustomResourceDefinition {name}" in lines
    assert not any(line.startswith("deleted CustomResourceDefinition") for line in lines)


def test_istio_crds_installed_since_the_run_are_not_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cluster had no Istio CRDs when the run started; one installed after it (another revision's) stays."""
    plan = MeshPlan(load_profile("current"), RUN)
    backend = _backend(tmp_path)
    cluster = backend.cluster
    run_killed(plan, backend, tmp_path, monkeypatch)
    theirs = "wasmplugins.extensions.istio.io"
    cluster.apply({"apiVersion": kinds.CRD.api_version, "kind": "CustomResourceDefinition",
                   "metadata": {"name": theirs, "labels": {facts.REV_LABEL: "their-rev"}}})
    silence(cluster)
    lines = remove_run(cluster, dead_runs(cluster)[0])
    assert "deleted CustomResourceDefinition virtualservices.networking.istio.io" in lines
    assert [c["metadata"]["name"] for c in cluster.list(kinds.CRD)] == [theirs]


def test_a_run_whose_heartbeat_is_fresh_is_not_cleaned_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = MeshPlan(load_profile("current"), RUN)
    backend = _backend(tmp_path)
    run_killed(plan, backend, tmp_path, monkeypatch)
    left = snapshot(backend.cluster)
    with pytest.raises(UsageError, match=rf"^run {RUN} \(started .*; last heartbeat \d+ s ago\) is alive") as refused:
        chosen_records(backend.cluster, RUN, time.time())
    assert "\n" not in str(refused.value)
    assert chosen_records(backend.cluster, None, time.time()) == []  # --all-dead takes none
    with pytest.raises(UsageError, match="^no run record for run id other-run on this cluster"):
        chosen_records(backend.cluster, "other-run", time.time())
    assert snapshot(backend.cluster) == left


def test_a_record_from_this_host_whose_process_is_gone_is_dead_at_once(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A CI step after a cancelled run need not wait out DEAD_AFTER: same host, no such process."""
    plan = MeshPlan(load_profile("current"), RUN)
    backend = _backend(tmp_path)
    run_killed(plan, backend, tmp_path, monkeypatch)
    [record] = find(backend.cluster)
    assert not record.dead(time.time())
    gone = subprocess.Popen(["true"])
    gone.wait()
    record.pid = gone.pid
    assert record.dead(time.time())
    record.host = "another-host"
    assert not record.dead(time.time()), "another host's process cannot be looked at: only the heartbeat counts"


def _existing(cluster: SimulatedCluster, tmp_path: Path, *, allow_destructive: bool) -> ExistingBackend:
    """The existing backend, its cluster the model (as if preflight had connected to it)."""
    runner = RecordingRunner(SubprocessRunner(), Transcript(tmp_path / "existing.jsonl"), "existing")
    backend = ExistingBackend(runner, cluster.clock, ExistingOptions(
        kubeconfig="/home/me/.kube/shared", context="ci", run_id="run2", allow_destructive=allow_destructive,
        cache=tmp_path, istio_mirror=str(tmp_path), gateway_host=None, gateway_endpoints={}, gateway_services={}))
    backend._cluster = cluster  # type: ignore[assignment] - the model speaks the Cluster protocol
    return backend


def test_the_next_run_names_the_dead_run_and_the_command_or_cleans_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    plan, backend, cluster, before = killed_on_someones_cluster(tmp_path, monkeypatch)
    silence(cluster)
    left = snapshot(cluster)
    next_plan = MeshPlan(load_profile("current"), "run2")
    capsys.readouterr()  # the killed run's progress lines

    with pytest.raises(UsageError) as refused:
        _existing(cluster, tmp_path, allow_destructive=False).refuse_plan(next_plan)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"run {RUN} (started 20")
    assert "was killed and left its objects on this cluster" in message
    assert "`./run cleanup --kubeconfig /home/me/.kube/shared --context ci --run-id run1`" in message
    assert snapshot(cluster) == left, "refusing changes nothing"

    _existing(cluster, tmp_path, allow_destructive=True).refuse_plan(next_plan)  # cleans up, then goes on
    assert snapshot(cluster) == before
    said = capsys.readouterr().err.splitlines()
    assert said[0].startswith(f"[multirev] removing what run {RUN} (started")
    assert f"[multirev]   deleted Namespace {record_namespace(RUN)}" in said


def test_a_dry_run_lists_what_it_would_remove_and_changes_nothing(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    plan = MeshPlan(load_profile("current", layout="shared"), RUN)
    backend = _backend(tmp_path)
    someones_cluster(backend.cluster, plan)
    run_killed(plan, backend, tmp_path, monkeypatch)
    silence(backend.cluster)
    left = snapshot(backend.cluster)
    record = dead_runs(backend.cluster)[0]

    listed = remove_run(backend.cluster, record, dry_run=True)
    assert snapshot(backend.cluster) == left
    assert listed and all(line.startswith(("would delete ", "would give back labels of ")) for line in listed)
    done = remove_run(backend.cluster, record)
    assert [line.replace("would delete", "deleted").replace("would give back", "gave back") for line in listed] \
        == done


def test_the_record_is_the_first_thing_the_run_creates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The model numbers objects as they are created (uid): the record comes before every object of the run, and
    it carries what the run found (the borrowed namespace's labels, someone's webhook and CA ConfigMap)."""
    plan = MeshPlan(load_profile("current"), RUN)
    backend = _backend(tmp_path)
    cluster = backend.cluster
    someones_cluster(cluster, plan)
    existed = {obj["metadata"]["uid"] for obj in cluster.store.all()}
    run_killed(plan, backend, tmp_path, monkeypatch)
    created = sorted((int(obj["metadata"]["uid"].removeprefix("uid-")), obj["kind"], obj["metadata"]["name"])
                     for obj in cluster.store.all() if obj["metadata"]["uid"] not in existed)
    assert len(created) > 20
    assert created[0][1:] == ("Namespace", record_namespace(RUN))
    [record] = find(cluster)
    app = plan.plane("canary").plane.app_namespaces[0]
    assert record.namespaces_before[app] == {"team": "shop", facts.REV_LABEL: "their-tag",
                                             "kubernetes.io/metadata.name": app}
    assert ("MutatingWebhookConfiguration", "their-injector") in record.webhooks_before
    assert record.published_before == [("theirs", "istio-ca-root-cert")]
    assert record.crds_before == {} and [p.revision for p in record.planes] == ["1-29-6", "1-30-3"]


def test_a_refused_run_writes_no_record(tmp_path: Path) -> None:
    plan = MeshPlan(load_profile("current"), RUN)
    backend = _backend(tmp_path, ForeignCluster)
    canary = plan.plane("canary").plane.revision
    backend.cluster.apply({"apiVersion": kinds.MUTATING_WEBHOOK.api_version, "kind": "MutatingWebhookConfiguration",
                           "metadata": {"name": f"istio-sidecar-injector-{canary}",
                                        "labels": {facts.REV_LABEL: canary}}, "webhooks": []})
    with pytest.raises(UsageError, match=f"revision {canary} already exists"), \
            session_mesh(plan, backend, backend.cluster, tmp_path, {CLIENT}):
        pytest.fail("set-up should have been refused")
    assert find(backend.cluster) == []
    assert backend.cluster.get(kinds.NAMESPACE, record_namespace(RUN)) is None


def test_a_run_id_that_has_a_record_already_is_refused_before_anything_is_created(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = MeshPlan(load_profile("current"), RUN)
    backend = _backend(tmp_path)
    run_killed(plan, backend, tmp_path, monkeypatch)
    silence(backend.cluster)
    left = snapshot(backend.cluster)
    with pytest.raises(UsageError, match=rf"Namespace {record_namespace(RUN)} already exists: .*`./run cleanup "
                                         rf"--run-id {RUN}`"), \
            session_mesh(plan, backend, backend.cluster, tmp_path, {CLIENT}):
        pytest.fail("set-up should have been refused")
    assert snapshot(backend.cluster) == left


def test_the_heartbeat_beats_until_stopped_and_never_makes_a_deleted_record_again(tmp_path: Path) -> None:
    cluster = _backend(tmp_path).cluster
    name = record_namespace(RUN)
    cluster.apply(_namespace(name, {RUN_ID_LABEL: RUN, HEARTBEAT_LABEL: "1"}))
    ticks = iter(range(1000, 10**6))
    heartbeat = Heartbeat(cluster, RUN, interval=0.01, now=lambda: next(ticks)).start()
    deadline = time.monotonic() + 5
    while labels_of(cluster.store.get(kinds.NAMESPACE, name))[HEARTBEAT_LABEL] in ("1", "1000") \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    heartbeat.stop()
    assert int(labels_of(cluster.store.get(kinds.NAMESPACE, name))[HEARTBEAT_LABEL]) > 1000
    assert heartbeat._thread is not None and not heartbeat._thread.is_alive()
    cluster.delete(kinds.NAMESPACE, name)
    with pytest.raises(KeyError):
        heartbeat.beat()  # a merge patch: the record is not made again
    assert cluster.get(kinds.NAMESPACE, name) is None


def test_a_record_of_a_cluster_with_many_namespaces_stays_within_the_annotation_limit() -> None:
    plan = MeshPlan(load_profile("current"), RUN)
    many = {(f"team-{n:05d}-namespace", "istio-ca-root-cert") for n in range(20000)}
    record = RunRecord.of(plan, Footprint(RUN, {}, set(), published_before=many), now=1_767_225_600.0)
    namespace = record.as_namespace()
    stored = namespace["metadata"]["annotations"][RECORD_ANNOTATION]
    assert len(stored) <= RECORD_BUDGET < len(record.to_json())
    assert read(namespace) == record


@pytest.mark.parametrize("run_id", ["run1", "Nightly_42", "x" * 70])
def test_every_run_id_gets_a_record_name_kubernetes_accepts(run_id: str) -> None:
    name = record_namespace(run_id)
    assert len(name) <= 63 and name.startswith("multirev-run-")
    assert all(c.islower() or c.isdigit() or c == "-" for c in name) and name[-1] != "-"
    assert record_namespace("nightly-42") != record_namespace("Nightly_42")


def _helm_made(kind: str, name: str, release: str, namespace: str | None, api: str = "v1") -> dict:
    """An object as `helm upgrade --install` leaves it: annotated with its release (helm@v4.3.0 validate.go)."""
    meta = {"name": name, "annotations": {"meta.helm.sh/release-name": release,
                                          "meta.helm.sh/release-namespace": namespace or "istio-system"}}
    if namespace:
        meta["namespace"] = namespace
    obj: dict = {"apiVersion": api, "kind": kind, "metadata": meta}
    if kind == "Deployment":  # the model's controllers need a pod template
        labels = {"app": name}
        obj["spec"] = {"replicas": 0, "selector": {"matchLabels": labels},
                       "template": {"metadata": {"labels": labels}, "spec": {"containers": []}}}
    return obj


def test_a_killed_helm_run_leaves_nothing_its_releases_or_istiods_made(tmp_path: Path) -> None:
    """--installer helm: the gateway objects and the CRDs of the run's releases carry no revision label; the record
    lists the releases, and cleanup removes what Helm annotated with them, in a borrowed istio-system too, and
    leaves someone's release of the same name in another namespace alone."""
    plan = MeshPlan(load_profile("local-dev", layout="shared", installer="helm"), RUN)
    cluster = _backend(tmp_path).cluster
    cluster.apply(_namespace("istio-system", {"team": "mesh"}))
    cluster.apply(_namespace("theirs", {}))
    footprint = Footprint.survey(cluster, plan)
    write(cluster, RunRecord.of(plan, footprint, now=time.time() - DEAD_AFTER - 60))
    silence(cluster)
    gateway = plan.plane("stable").gateway_name
    left = [_helm_made("Deployment", gateway, gateway, "istio-system", "apps/v1"),
            _helm_made("Service", gateway, gateway, "istio-system"),
            _helm_made("CustomResourceDefinition", "gateways.networking.istio.io", "istio-base", None,
                       "apiextensions.k8s.io/v1")]
    theirs = _helm_made("Deployment", gateway, gateway, "theirs", "apps/v1")
    # What the run's istiods wrote into the borrowed istio-system while they ran (facts.istiod_runtime_names),
    # and an election ConfigMap of the same name in someone's namespace.
    def plain(kind: str, name: str, namespace: str) -> dict:
        return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": namespace}}

    left += [plain("ConfigMap", "istio-leader", "istio-system"), plain("Secret", "istio-ca-secret", "istio-system")]
    their_lock = plain("ConfigMap", "istio-leader", "theirs")
    for obj in (*left, theirs, their_lock):
        cluster.apply(obj)
    [record] = find(cluster)
    assert ("istio-system", gateway) in record.helm_releases and ("istio-system", "istio-base") in record.helm_releases
    lines = remove_run(cluster, record)
    for obj in left:
        kind = next(k for k in kinds.ALL if k.kind == obj["kind"])
        assert cluster.get(kind, obj["metadata"]["name"], obj["metadata"].get("namespace")) is None, lines
    assert cluster.get(kinds.DEPLOYMENT, gateway, "theirs") is not None
    assert cluster.get(kinds.CONFIGMAP, "istio-leader", "theirs") is not None
    assert labels_of(cluster.get(kinds.NAMESPACE, "istio-system")) == {"team": "mesh",
                                                                      "kubernetes.io/metadata.name": "istio-system"}
