"""The simulated model behaves as the upstream code it cites (driven through the real argv builders)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from multirev.backends.simulated.backend import SimulatedBackend
from multirev.checks.injection import proxy_container
from multirev.commands import Transcript
from multirev.errors import WaitTimeout
from multirev.istio import facts, operator
from multirev.istio.istioctl import parse_tag_table
from multirev.istio.versions import IstioVersion, KubeVersion
from multirev.kind.images import NODE_IMAGES
from multirev.kube import kinds
from multirev.plan import MeshPlan
from multirev.profile import load_profile
from multirev.waits import Observation, wait_for

K127 = KubeVersion(1, 27)


def make(tmp_path: Path, profile: str = "reference", kube: KubeVersion = K127) -> tuple:
    backend = SimulatedBackend(Transcript(tmp_path / "t.jsonl"), seed=7, faults=[], node_image=NODE_IMAGES[kube],
                               work_dir=tmp_path, host_port_base=18080)
    plan = MeshPlan(load_profile(profile), "run1")
    return backend, backend.start(), plan


def install(backend: SimulatedBackend, plan: MeshPlan, role: str, tmp_path: Path):
    plane = plan.plane(role)
    tool = backend.istioctl(plane.plane.version)
    assert tool.install(operator.write(plane, tmp_path)).returncode == 0
    return tool


def deploy_client(cluster, namespace: str, labels: dict[str, str]) -> dict:
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}})
    cluster.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "c", "namespace": namespace},
                   "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "c"}},
                                                        "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
    return cluster.get(kinds.DEPLOYMENT, "c", namespace)


def test_tag_without_i_points_at_istio_system_and_breaks_pod_creation(tmp_path: Path) -> None:
    """The real-world bug: the tag webhook's service namespace is -i (default istio-system)."""
    backend, cluster, plan = make(tmp_path)
    tool = install(backend, plan, "stable", tmp_path)
    result = backend.runner.run([tool.binary, "tag", "set", "prod-stable", "--revision", "1-18-5", "-y"], timeout=5)
    assert result.returncode == 0 and 'Revision tag "prod-stable" created' in result.stdout
    hook = cluster.get(kinds.MUTATING_WEBHOOK, "istio-revision-tag-prod-stable")
    assert hook["webhooks"][0]["clientConfig"]["service"] == {"name": "istiod-1-18-5", "namespace": "istio-system",
                                                              "path": "/inject", "port": 443}
    deploy = deploy_client(cluster, "apps", {facts.REV_LABEL: "prod-stable"})
    failure = deploy["status"]["conditions"][0]
    assert failure["type"] == "ReplicaFailure"
    assert failure["message"] == ('Internal error occurred: failed calling webhook "rev.namespace.sidecar-injector.'
                                  'istio.io": failed to call webhook: Post "https://istiod-1-18-5.istio-system.svc:443/'
                                  'inject?timeout=10s": service "istiod-1-18-5" not found')


def test_first_install_creates_default_tag_and_installed_state(tmp_path: Path) -> None:
    backend, cluster, plan = make(tmp_path)
    install(backend, plan, "stable", tmp_path)
    install(backend, plan, "canary", tmp_path)
    default = cluster.list(kinds.MUTATING_WEBHOOK, labels={facts.TAG_LABEL: "default"})
    assert [d["metadata"]["name"] for d in default] == ["istio-revision-tag-default-istio-prod"]
    assert default[0]["metadata"]["labels"][facts.REV_LABEL] == "1-18-5"
    # 1.18/1.19 still write an installed-state IstioOperator (dropped in 1.21), named after the file and revision
    saved = sorted(o["metadata"]["name"] for o in cluster.list(kinds.ISTIO_OPERATOR))
    assert saved == ["installed-state-canary-1-19-3-1-19-3", "installed-state-stable-1-18-5-1-18-5"]


@pytest.mark.parametrize(("profile", "tag_stays"), [("reference", False), ("current", True)])
def test_revision_uninstall_leaves_user_managed_tags_from_1_21(tmp_path: Path, profile: str, tag_stays: bool) -> None:
    """`tag set` strips operator labels from 1.21, so `uninstall --revision` (which selects by component) keeps
    the tag webhook; before that it goes with the revision. The installed-state copy of a named IstioOperator
    also stays (only `installed-state-<rev>` is pruned)."""
    backend, cluster, plan = make(tmp_path, profile, KubeVersion(1, 27) if profile == "reference" else
                                  KubeVersion(1, 35))
    install(backend, plan, "stable", tmp_path)
    canary = install(backend, plan, "canary", tmp_path)
    plane = plan.plane("canary").plane
    assert canary.tag_set(plane.tag, plane.revision, plane.namespace).returncode == 0
    iop = tmp_path / f"iop-{plane.revision}.yaml"  # as install() wrote it (multirev/istio/operator.py write)
    assert canary.uninstall_revision(plane.revision, iop).returncode == 0
    revision_label = {facts.REV_LABEL: plane.revision}
    left = [w["metadata"]["name"] for w in cluster.list(kinds.MUTATING_WEBHOOK, labels=revision_label)]
    assert left == ([facts.tag_webhook_name(plane.tag, plane.namespace)] if tag_stays else [])
    assert (canary.tag_remove(plane.tag, plane.namespace).returncode == 0) == tag_stays
    assert not cluster.list(kinds.MUTATING_WEBHOOK, labels={facts.REV_LABEL: plane.revision})
    operators = [o["metadata"]["name"] for o in cluster.list(kinds.ISTIO_OPERATOR)]
    assert (f"installed-state-canary-{plane.revision}-{plane.revision}" in operators) == (profile == "reference")


def test_install_output_follows_version(tmp_path: Path) -> None:
    for profile, kube, line in (("reference", K127, "✔ Istiod installed\n"), ("current", KubeVersion(1, 35),
                                                                               "✔ Istiod installed 🧠\n")):
        backend, _, plan = make(tmp_path / profile, profile, kube)
        plane = plan.plane("stable")
        result = backend.istioctl(plane.plane.version).install(operator.write(plane, tmp_path / profile))
        assert line in result.stdout and result.stdout.endswith("✔ Installation complete\n")


def test_injection_label_wins_over_rev(tmp_path: Path) -> None:
    backend, cluster, plan = make(tmp_path)
    install(backend, plan, "stable", tmp_path)
    canary = install(backend, plan, "canary", tmp_path)
    assert canary.tag_set("prod-canary", "1-19-3", "istio-canary").returncode == 0
    deploy_client(cluster, "both", {facts.REV_LABEL: "prod-canary", facts.INJECTION_LABEL: "enabled"})
    deploy_client(cluster, "rev-only", {facts.REV_LABEL: "prod-canary"})
    both = cluster.list(kinds.POD, "both")[0]
    rev_only = cluster.list(kinds.POD, "rev-only")[0]
    assert both["metadata"]["annotations"][facts.REV_ANNOTATION] == "1-18-5"  # the default revision
    assert rev_only["metadata"]["annotations"][facts.REV_ANNOTATION] == "1-19-3"


@pytest.mark.parametrize(("kube", "native"), [(KubeVersion(1, 35), True), (KubeVersion(1, 32), False)])
def test_native_sidecars_follow_version_and_kubelet(tmp_path: Path, kube: KubeVersion, native: bool) -> None:
    backend, cluster, plan = make(tmp_path, "current", kube)
    tool = install(backend, plan, "canary", tmp_path)  # 1.30.3: ENABLE_NATIVE_SIDECARS=auto
    tool.tag_set("canary", "1-30-3", "istio-canary")
    deploy_client(cluster, "apps", {facts.REV_LABEL: "canary"})
    pod = cluster.list(kinds.POD, "apps")[0]
    in_init = [c for c in pod["spec"]["initContainers"] if c["name"] == facts.PROXY_CONTAINER]
    assert bool(in_init) is native
    if native:
        assert in_init[0]["restartPolicy"] == "Always"
    image = (in_init or [c for c in pod["spec"]["containers"] if c["name"] == facts.PROXY_CONTAINER])[0]["image"]
    assert image == "registry.istio.io/release/proxyv2:1.30.3"


def test_tag_list_formats_differ_by_version(tmp_path: Path) -> None:
    backend, cluster, plan = make(tmp_path, "current", KubeVersion(1, 35))
    tool = install(backend, plan, "stable", tmp_path)
    result, rows = tool.tag_list("istio-stable")
    assert {(r.tag, r.revision) for r in rows} == {("default", "1-29-6")}
    v118 = backend.runner.run(["/simulated/istio-1.18.5/bin/istioctl", "tag", "list", "-o", "json"], timeout=5)
    assert v118.returncode == 1 and "unknown flag: -o" in v118.stderr
    table = "TAG     REVISION NAMESPACES\nstable  1-29-6   a,b\n        1-30-3   \n"
    assert [(r.tag, r.revision, r.namespaces) for r in parse_tag_table(table)] == [
        ("stable", "1-29-6", ("a", "b")), ("", "1-30-3", ())]


def test_install_namespace_follows_each_versions_field(tmp_path: Path) -> None:
    """1.18 reads spec.namespace, 1.30 metadata.namespace; values.global.istioNamespace wins in both."""
    from multirev.backends.simulated.mesh import MeshModel
    iop = {"metadata": {"namespace": "meta"}, "spec": {"namespace": "spec"}}
    assert MeshModel._install_namespace(iop, IstioVersion.parse("1.18.5")) == "spec"
    assert MeshModel._install_namespace(iop, IstioVersion.parse("1.30.3")) == "meta"
    iop["spec"]["values"] = {"global": {"istioNamespace": "glob"}}
    assert MeshModel._install_namespace(iop, IstioVersion.parse("1.30.3")) == "glob"


def test_waits_run_in_logical_time_and_name_what_they_awaited(tmp_path: Path) -> None:
    _, cluster, _ = make(tmp_path)
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as caught:
        wait_for("the moon to turn blue", lambda: Observation(False, None, "still grey"), clock=cluster.clock,
                 timeout=3600, interval=1)
    assert time.monotonic() - started < 2
    assert str(caught.value) == "timed out after 3600s waiting for the moon to turn blue; last seen: still grey"
    assert cluster.clock.now() >= 3600


def test_saved_istio_operator_keeps_the_run_label(tmp_path: Path) -> None:
    """The run id on the IstioOperator file reaches the installed-state copy (< 1.21), so teardown on an
    existing cluster can find the copy `uninstall --revision` leaves."""
    backend, cluster, plan = make(tmp_path)
    plane = plan.plane("stable")
    tool = backend.istioctl(plane.plane.version)
    assert tool.install(operator.write(plane, tmp_path, run_labels=plan.run_labels)).returncode == 0
    assert tool.uninstall_revision(plane.plane.revision, tmp_path / f"iop-{plane.plane.revision}.yaml").returncode == 0
    left = cluster.list(kinds.ISTIO_OPERATOR, labels=plan.run_labels)
    assert [o["metadata"]["name"] for o in left] == [facts.installed_state_name(f"stable-{plane.plane.revision}",
                                                                                plane.plane.revision)]


def test_revision_uninstall_from_1_24_prunes_only_what_the_given_istiooperator_owns(tmp_path: Path) -> None:
    """Real istioctl 1.31 against a real API server showed it (tests/local): without -f, `uninstall --revision`
    selects owning-resource-namespace=istio-system from the default profile, so a revision installed into its own
    namespace is left whole; with its IstioOperator file it is removed (istio@1.30.3:operator/pkg/uninstall/
    prune.go GetPrunedResources)."""
    backend, cluster, plan = make(tmp_path, "current", KubeVersion(1, 35))
    install(backend, plan, "stable", tmp_path)
    canary = install(backend, plan, "canary", tmp_path)
    plane = plan.plane("canary").plane
    istiod = (kinds.DEPLOYMENT, facts.istiod_name(plane.revision), plane.namespace)
    assert canary.uninstall_revision(plane.revision).returncode == 0
    assert cluster.get(*istiod) is not None
    assert canary.uninstall_revision(plane.revision, tmp_path / f"iop-{plane.revision}.yaml").returncode == 0
    assert cluster.get(*istiod) is None


def test_model_analyze_reports_what_real_analyze_reported_for_raw_bookinfo(tmp_path: Path) -> None:
    """Upstream's Bookinfo applied as is to both app namespaces: the real `istioctl analyze` (tests/local) reports
    IST0145 for the two `istio: ingressgateway` Gateways and IST0173 for ratings' v2-mysql subsets; so does the
    model. The suite's set-up avoids both (multirev.manifests own_gateway and backed_subsets)."""
    from multirev import manifests

    backend, cluster, plan = make(tmp_path, "current", KubeVersion(1, 35))
    samples = backend.samples_dir(plan.plane("stable").plane.version)
    for namespace in ("app-a", "app-b"):
        cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        for declared in ("samples:bookinfo/platform/kube/bookinfo.yaml",
                         "samples:bookinfo/networking/bookinfo-gateway.yaml",
                         "samples:bookinfo/networking/destination-rule-all.yaml"):
            for obj in manifests.render(declared, namespace, samples_dir=samples):
                cluster.apply(obj)
    findings = backend.mesh.analyze("app-b")
    assert any(f.startswith("Error [IST0145] (Gateway app-b/bookinfo-gateway) Conflict with gateways "
                            "app-a/bookinfo-gateway") for f in findings), findings
    assert any("[IST0173] (DestinationRule app-b/ratings) The Subset v2-mysql " in f for f in findings), findings


def test_replaced_pods_linger_while_they_shut_down(tmp_path: Path) -> None:
    """As on a real cluster (issue 16, finding 1): after a restart the old pod stays listed, not ready and with a
    deletionTimestamp, for its grace period (30 s by default); the Deployment's counts leave it out at once, so
    its rollout looks done while the old pod is still there. Observations of workloads skip it."""
    from multirev.backends.simulated.cluster import SimulatedCluster
    from multirev.observe import workload_pods

    backend = SimulatedBackend(Transcript(tmp_path / "t.jsonl"), seed=1, faults=[],
                               node_image=next(iter(NODE_IMAGES.values())), work_dir=tmp_path, host_port_base=18080)
    cluster = backend.start()
    assert isinstance(cluster, SimulatedCluster)
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}})
    cluster.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "app"},
                   "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                            "template": {"metadata": {"labels": {"app": "web"}},
                                         "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})
    cluster.clock.sleep(10)
    (old,) = cluster.list(kinds.POD, "app")
    cluster.rollout_restart("app", "web")
    cluster.clock.sleep(10)
    pods = {p["metadata"]["name"]: p for p in cluster.list(kinds.POD, "app")}
    assert len(pods) == 2 and "deletionTimestamp" in pods[old["metadata"]["name"]]["metadata"]
    assert pods[old["metadata"]["name"]]["status"]["conditions"][0]["status"] == "False"
    status = cluster.get(kinds.DEPLOYMENT, "web", "app")["status"]
    assert status["replicas"] == status["readyReplicas"] == status["updatedReplicas"] == 1
    assert old["metadata"]["name"] not in [p["metadata"]["name"] for p in workload_pods(cluster, "app", {})]
    cluster.clock.sleep(30)
    assert old["metadata"]["name"] not in [p["metadata"]["name"] for p in cluster.list(kinds.POD, "app")]
    assert len(cluster.list(kinds.POD, "app")) == 1


def test_an_empty_tag_list_says_what_1_28_and_later_say(tmp_path: Path) -> None:
    """istioctl/pkg/tag/tag.go@1.28.0 to @1.30.3 print "No Istio revision tags found." (1.27 and older the old text)."""
    backend, _, _ = make(tmp_path, "current", KubeVersion(1, 35))
    listed = backend.runner.run(["/simulated/istio-1.29.6/bin/istioctl", "tag", "list"], timeout=5)
    assert listed.stdout == "No Istio revision tags found.\n"
    old = backend.runner.run(["/simulated/istio-1.18.5/bin/istioctl", "tag", "list"], timeout=5)
    assert old.stdout == "No Istio revision tag MutatingWebhookConfigurations to list\n"


def test_proxy_status_finds_a_revision_only_in_the_namespace_it_is_given(tmp_path: Path) -> None:
    """istioctl asks the revision's istiod pods in `-i` (istio-system when not given): the separate layout's revisions
    live elsewhere, so the diagnostics pass their namespace (istio@1.30.3: istioctl/pkg/multixds/gather.go)."""
    backend, cluster, plan = make(tmp_path, "current", KubeVersion(1, 35))
    tool = install(backend, plan, "stable", tmp_path)
    stable = plan.plane("stable").plane
    wait_for("istiod ready", lambda: Observation(any(cluster.mesh.cluster.is_ready(p) for p in cluster.list(
        kinds.POD, stable.namespace, labels={"app": "istiod"})), None, "not ready"), clock=cluster.clock, timeout=120)
    assert tool.proxy_status(stable.revision, stable.namespace).returncode == 0
    without = backend.runner.run(["/simulated/istio-1.29.6/bin/istioctl", "proxy-status", "--revision",
                                  stable.revision], timeout=5)
    assert without.returncode == 1 and without.stderr == 'Error: no running Istio pods in "istio-system"\n'


def test_a_distroless_install_runs_distroless_images_of_its_version(tmp_path: Path) -> None:
    """values.global.variant: istiod and the injected proxies run `<image>:<version>-distroless`, and every check that
    judges a proxy's version takes it as that version (facts.image_version)."""
    backend = SimulatedBackend(Transcript(tmp_path / "t.jsonl"), seed=7, faults=[],
                               node_image=NODE_IMAGES[KubeVersion(1, 35)], work_dir=tmp_path, host_port_base=18080)
    cluster = backend.start()
    plan = MeshPlan(load_profile("current", variant="distroless"), "run1")
    install(backend, plan, "stable", tmp_path)
    stable = plan.plane("stable").plane
    istiod = cluster.get(kinds.DEPLOYMENT, facts.istiod_name(stable.revision), stable.namespace)
    assert istiod["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.29.6-distroless")
    deploy_client(cluster, "apps", {facts.REV_LABEL: stable.revision})
    cluster.clock.sleep(30)
    [pod] = cluster.list(kinds.POD, "apps")
    proxy = proxy_container(pod)
    assert proxy is not None and proxy["image"].endswith("/proxyv2:1.29.6-distroless")
    assert facts.image_version(proxy["image"]) == "1.29.6"
