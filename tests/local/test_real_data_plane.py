"""On real proxies: every proxy takes istiod's config, and data-plane checks fail through real misuse.

One mesh (local-dev, separate layout) with Bookinfo behind each revision's gateway and the in-mesh client runs
on the local backend's data plane (real pilot-agent and Envoy per pod). Each fault test misuses it as an
operator could (a VirtualService's weights, a DestinationRule subset, a missing ServiceEntry), runs the check
the conformance suite runs, asserts it fails, and undoes the misuse.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
from collections.abc import Iterator

import pytest

from fixtures.mesh import MeshSetup, build_mesh
from multirev import budget
from multirev.backends.local.backend import LocalBackend
from multirev.backends.local.pins import KUBERNETES
from multirev.backends.local.pods.envoy import ENVOY_FOR_ISTIO_MINOR, istio_minor
from multirev.backends.simulated.backend import SimulatedBackend
from multirev.checks.gateway import check_productpage, check_unrouted
from multirev.commands import Transcript
from multirev.istio import facts, operator
from multirev.istio.gateway_api import deployment_name
from multirev.istio.trust import CACERTS_SECRET, MeshTrust
from multirev.istio.versions import KubeVersion
from multirev.kind.images import NODE_IMAGES
from multirev.kube import kinds
from multirev.paths import PROJECT_ROOT
from multirev.plan import EGRESS_EXTERNAL_NAMESPACE, MeshPlan
from multirev.profile import load_profile
from multirev.stats import judge_weights
from multirev.traffic import gateway_get, mesh_get, reviews_version
from multirev.waits import Observation, wait_for, wait_problem
from suites import gateway_api as suite_gateway_api
from suites import moves as canary_upgrade
from suites.conftest import BOOKINFO, CLIENT, GATEWAY_API
from suites.scenario import (
    apply_and_await_push,
    wait_namespace_rolled_out,
    wait_rolled_out,
    wait_until_served,
)
from tests.gateway_api_scenario import observe
from tests.local.conftest import PROFILE, local_backend, local_versions, nothing_left, require
from tests.local.test_real_cluster import _restart_istiod_with

REVIEWS_PATH = "/api/v1/products/0/reviews"
EXTERNAL_HOST = "external.multirev.invalid"  # only the ServiceEntry knows it (manifests/egress)
RUN_ID = "dataplane"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSetup]:
    require(local_versions())
    work = tmp_path_factory.mktemp("real-data-plane")
    plan = MeshPlan(load_profile(PROFILE), RUN_ID)
    backend = local_backend(work, RUN_ID, plan)
    backend.preflight()
    if backend.data_plane_missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the local data plane, but: {backend.data_plane_missing}", pytrace=False)
        pytest.skip(backend.data_plane_missing)
    try:
        cluster = backend.start()
        setup = build_mesh(plan, backend, cluster, work, full_run_manifests())
        for role in ("stable", "canary"):
            assert wait_namespace_rolled_out(setup, setup.plan.plane(role).plane.app_namespaces[0]) is None
        yield setup
    finally:
        backend.stop()
    assert nothing_left(RUN_ID) == {}


def full_run_manifests() -> set[str]:
    """What set-up applies in a full conformance run: every manifest a conformance test declares."""
    declared: set[str] = set()
    for path in sorted((PROJECT_ROOT / "suites").glob("test_*.py")):
        module = importlib.import_module(f"suites.{path.stem}")
        for function in vars(module).values():
            info = getattr(function, "__conformance__", None)
            if info is not None:
                declared.update(info.manifests)
    return declared


def test_a_full_run_fits_the_resource_budget(mesh: MeshSetup) -> None:
    """With the requests the real istioctl and the real injector give (the suite's IstioOperator sets them),
    everything a full run creates fits the budget the README states (issue 16, finding 2): kind's control plane,
    both istiods and their four gateways, every pod set-up makes, what the tests add (the egress service), and the
    canary upgrade's surge (every Deployment of an app namespace restarts at once; maxSurge 25% rounds up to
    one new pod each: kubernetes@v1.35.4:pkg/controller/deployment/util/deployment_util.go ResolveFenceposts)."""
    mesh.apply("egress/external-service.yaml", "stable", EGRESS_EXTERNAL_NAMESPACE)
    pods = [p for p in mesh.cluster.list(kinds.POD) if "deletionTimestamp" not in p["metadata"]]
    surge = max((budget.total([p for p in pods if p["metadata"]["namespace"] == app])
                 for plane in mesh.plan.planes for app in plane.plane.app_namespaces), key=lambda r: r.cpu)
    whole = budget.KIND_CONTROL_PLANE + budget.total(pods) + surge
    heaviest = sorted(pods, key=lambda p: budget.pod_requests(p).cpu, reverse=True)[:3]
    assert whole.cpu <= budget.BUDGET.cpu and whole.memory <= budget.BUDGET.memory, (
        f"a full run asks for {whole} ({len(pods)} pods, upgrade surge {surge}, kind {budget.KIND_CONTROL_PLANE}); "
        f"the budget is {budget.BUDGET}; heaviest: " + ", ".join(
            f"{p['metadata']['namespace']}/{p['metadata']['name']} {budget.pod_requests(p)}" for p in heaviest))


def _draw(mesh: MeshSetup, role: str):
    def draw(n: int):
        for _ in range(n):
            yield reviews_version(gateway_get(mesh.cluster, mesh.endpoint(role), REVIEWS_PATH, "bookinfo.example"))
    return draw


def test_every_proxy_accepted_every_resource(mesh: MeshSetup) -> None:
    """istiod's config for upstream Envoy (pods/envoy.py) is taken whole: no proxy counts a rejected update.
    A rejection fails with the proxy and the xDS type named."""
    assert wait_until_served(mesh, "stable", "/productpage", "bookinfo.example") is None
    backend = mesh.backend
    assert isinstance(backend, LocalBackend) and backend.data_plane is not None
    rejected = backend.data_plane.rejections()
    problems = [f"proxy {pod} rejected {counter} x{count}" for pod, counters in rejected.items()
                for counter, count in counters.items()]
    assert not problems, "; ".join(problems)
    proxies = [p for p in backend.data_plane.pods.values() if p.has_proxy]
    assert len(proxies) >= 2 * 8  # two gateways and six Bookinfo pods and the client per revision, at least


def test_each_revisions_proxies_run_their_own_minors_envoy(mesh: MeshSetup) -> None:
    """1.30-dev's proxies run Envoy 1.38 and 1.31-dev's Envoy 1.39, as istio/proxy's release branches build them
    (pods/envoy.py): read from each running Envoy's admin /server_info, not from what was configured."""
    assert wait_until_served(mesh, "canary", "/productpage", "bookinfo.example") is None
    backend = mesh.backend
    assert isinstance(backend, LocalBackend) and backend.data_plane is not None
    seen: dict[str, set[str]] = {}
    for running in list(backend.data_plane.pods.values()):
        istio = next((p.istio_version for p in running.programs.values() if p.proxy), None)
        if istio is None or not running.ready:
            continue
        answer = backend.data_plane.admin_get(running.namespace, running.name, "/server_info")
        assert answer.returncode == 0, f"{running.namespace}/{running.name}: {answer.stderr}"
        envoy = json.loads(answer.stdout)["version"].split("/")[1]
        seen.setdefault(istio, set()).add(envoy)
    wanted = {istio: {ENVOY_FOR_ISTIO_MINOR[istio_minor(istio)].version} for istio in backend.options.istio_versions}
    assert seen == wanted
    assert backend.info().extra["envoy_by_istio"] == {istio: envoys.pop() for istio, envoys in wanted.items()}


def _observe_traffic(mesh: MeshSetup) -> dict[str, object]:
    """The requests the gateway, routing and egress tests send, each reduced to its status and which workload
    answered: the same on the model and on real proxies, or a listed simplification."""
    seen: dict[str, object] = {}
    for role in ("stable", "canary"):
        assert wait_until_served(mesh, role, "/productpage", "bookinfo.example") is None
        page = gateway_get(mesh.cluster, mesh.endpoint(role), "/productpage", "bookinfo.example")
        seen[f"{role} gateway /productpage"] = (page.status, page.headers.get("server"),
                                                 "Simple Bookstore App" in page.body)
        seen[f"{role} gateway /productpage shows details and reviews"] = check_productpage(role, page) == []
        unrouted = gateway_get(mesh.cluster, mesh.endpoint(role), "/productpage", "unrouted.invalid")
        seen[f"{role} gateway unrouted host"] = unrouted.status
        app = mesh.plan.plane(role).plane.app_namespaces[0]
        apply_and_await_push(mesh, role, "routing/reviews-v1.yaml")
        versions = {reviews_version(gateway_get(mesh.cluster, mesh.endpoint(role), REVIEWS_PATH, "bookinfo.example"))
                    for _ in range(20)}
        seen[f"{role} gateway reviews with all-to-v1"] = sorted(str(v) for v in versions)
        inside = mesh_get(mesh.cluster, app, "http://productpage:9080/productpage")
        seen[f"{role} client -> productpage"] = (inside.status, "Simple Bookstore App" in inside.body)
    app = mesh.plan.plane("stable").plane.app_namespaces[0]
    mesh.apply("egress/external-service.yaml", "stable", EGRESS_EXTERNAL_NAMESPACE)
    assert wait_namespace_rolled_out(mesh, EGRESS_EXTERNAL_NAMESPACE) is None
    apply_and_await_push(mesh, "stable", "egress/egress-via-gateway.yaml")

    def egress() -> Observation[int]:
        response = mesh_get(mesh.cluster, app, f"http://{EXTERNAL_HOST}/compare-probe")
        return Observation(response.status == 200, response.status, f"HTTP {response.status}")

    seen["stable client -> external host"] = wait_for("egress to answer", egress, clock=mesh.cluster.clock,
                                                      timeout=180, interval=3)
    return seen


# Differences between the model's traffic and real proxies' that the model keeps on purpose: none so far.
TRAFFIC_SIMPLIFICATIONS: dict[str, str] = {}


def test_model_traffic_matches_real_proxies(mesh: MeshSetup, tmp_path_factory: pytest.TempPathFactory,
                                            record_property: pytest.RecordProperty) -> None:
    """The model, given the same plan and manifests, answers the suite's requests as the real proxies do: the
    same status and the same workload, request by request."""
    work = tmp_path_factory.mktemp("model-traffic")
    image = NODE_IMAGES[KubeVersion.parse(KUBERNETES.version)]
    model_backend = SimulatedBackend(Transcript(work / "transcript.jsonl"), seed=1, faults=[], node_image=image,
                                     work_dir=work, host_port_base=18080)
    model = build_mesh(mesh.plan, model_backend, model_backend.start(), work, {*BOOKINFO, *CLIENT})
    real_seen, model_seen = _observe_traffic(mesh), _observe_traffic(model)
    differences = {key: (model_seen.get(key), real_seen.get(key)) for key in real_seen
                   if model_seen.get(key) != real_seen.get(key)}
    record_property("requests_compared", len(real_seen))
    record_property("traffic_differences", len(differences))
    unexplained = {k: v for k, v in differences.items() if k not in TRAFFIC_SIMPLIFICATIONS}
    assert not unexplained, "model vs real (model, real): " + "; ".join(f"{k}: {v}" for k, v in unexplained.items())


def _apply_modified(mesh: MeshSetup, role: str, manifest: str, change) -> list[dict]:
    """Apply the manifest with `change` made to its objects; returns the unmodified objects to restore."""
    app = mesh.plan.plane(role).plane.app_namespaces[0]
    originals = mesh.rendered(manifest, role, app, workloads=sorted(BOOKINFO))
    for obj in originals:
        changed = copy.deepcopy(obj)
        change(changed)
        mesh.cluster.apply(changed)
    return originals


def test_weights_ten_points_off_fail_the_routing_check(mesh: MeshSetup) -> None:
    """The reviews VirtualService routes 60/10/30 where 50/10/40 is certified: the sequential test fails."""
    role = "stable"
    assert wait_until_served(mesh, role, REVIEWS_PATH, "bookinfo.example") is None
    apply_and_await_push(mesh, role, "routing/reviews-50-10-40.yaml")

    def skew(obj: dict) -> None:
        weights = [60, 10, 30]
        for route, weight in zip(obj["spec"]["http"][0]["route"], weights, strict=True):
            route["weight"] = weight

    _apply_modified(mesh, role, "routing/reviews-50-10-40.yaml", skew)
    mesh.cluster.clock.sleep(5)
    verdict = judge_weights(_draw(mesh, role), {"v1": 0.5, "v2": 0.1, "v3": 0.4})
    assert not verdict.passed, verdict.table()
    assert "v3" in verdict.reason or "v1" in verdict.reason, verdict.reason


def test_subset_selecting_the_wrong_version_fails_all_to_v1(mesh: MeshSetup) -> None:
    """The reviews DestinationRule's subset v1 selects version v3: all-to-v1 reaches v3 and the check fails."""
    role = "canary"
    app = mesh.plan.plane(role).plane.app_namespaces[0]
    assert wait_until_served(mesh, role, REVIEWS_PATH, "bookinfo.example") is None
    apply_and_await_push(mesh, role, "routing/reviews-v1.yaml")
    rule = mesh.cluster.get(kinds.DESTINATION_RULE, "reviews", app)
    assert rule is not None
    wrong = copy.deepcopy(rule)
    for subset in wrong["spec"]["subsets"]:
        if subset["name"] == "v1":
            subset["labels"] = {"version": "v3"}
    for key in ("resourceVersion", "uid", "managedFields", "creationTimestamp", "generation"):
        wrong["metadata"].pop(key, None)
    wrong.pop("status", None)
    mesh.cluster.apply(wrong)
    try:
        mesh.cluster.clock.sleep(5)
        verdict = judge_weights(_draw(mesh, role), {"v1": 1.0, "v2": 0.0, "v3": 0.0})
        assert not verdict.passed, verdict.table()
        assert "v3" in verdict.table()
    finally:
        mesh.apply("samples:bookinfo/networking/destination-rule-all.yaml", role, app, workloads=sorted(BOOKINFO))


def test_a_missing_service_entry_under_registry_only_fails_egress(mesh: MeshSetup) -> None:
    """With outboundTrafficPolicy REGISTRY_ONLY, the external host answers through the egress gateway while its
    ServiceEntry exists, and the client's own proxy refuses it once the ServiceEntry is gone."""
    role = "stable"
    app = mesh.plan.plane(role).plane.app_namespaces[0]
    mesh.apply("egress/external-service.yaml", role, EGRESS_EXTERNAL_NAMESPACE)
    assert wait_namespace_rolled_out(mesh, EGRESS_EXTERNAL_NAMESPACE) is None
    apply_and_await_push(mesh, role, "egress/egress-via-gateway.yaml")
    url = f"http://{EXTERNAL_HOST}/registry-only-probe"

    def answers(expect_ok: bool) -> Observation[str]:
        response = mesh_get(mesh.cluster, app, url)
        return Observation((response.status == 200) == expect_ok, f"HTTP {response.status}",
                           f"HTTP {response.status} {response.body[:120]}")

    assert wait_problem(f"GET {url} from {app} to answer 200", lambda: answers(True), clock=mesh.cluster.clock,
                        timeout=180, interval=3) is None
    assert mesh.cluster.delete(kinds.SERVICE_ENTRY, "external-http", app)
    try:
        assert wait_problem(f"GET {url} from {app} to be refused", lambda: answers(False),
                            clock=mesh.cluster.clock, timeout=60, interval=2) is None
    finally:
        mesh.apply("egress/egress-via-gateway.yaml", role, app)


def test_a_gateway_selecting_the_other_revisions_gateway_pods_fails_the_gateway_check(mesh: MeshSetup) -> None:
    """Bookinfo's Gateway in the stable app namespace selects the canary revision's gateway pods: the stable
    gateway has no route for it, and the canary istiod does not watch that namespace, so no gateway serves it;
    the gateway check fails naming the stable gateway."""
    role = "stable"
    app = mesh.plan.plane(role).plane.app_namespaces[0]
    canary = mesh.plan.plane("canary").plane.revision
    assert wait_until_served(mesh, role, "/productpage", "bookinfo.example") is None
    manifest = "samples:bookinfo/networking/bookinfo-gateway.yaml"

    def other_revision(obj: dict) -> None:
        if obj["kind"] == "Gateway":
            obj["spec"]["selector"]["istio.io/rev"] = canary

    _apply_modified(mesh, role, manifest, other_revision)
    try:
        where = f"the {role} gateway"

        def broken() -> Observation[list[str]]:
            problems = check_productpage(where, gateway_get(mesh.cluster, mesh.endpoint(role), "/productpage",
                                                            "bookinfo.example"))
            return Observation(bool(problems), problems, "; ".join(problems) or "still served")

        problems = wait_for("the stable gateway to stop serving Bookinfo", broken, clock=mesh.cluster.clock,
                            timeout=60, interval=2)
        # With no Gateway selecting it, the stable gateway has no listener on 8080 left: the request is refused
        # (HTTP 0), where other Gateways keep the listener it is a 404; either way the check names the gateway.
        assert any(f"GET /productpage through {where} returned HTTP" in p and "expected 200" in p
                   for p in problems), problems
    finally:
        mesh.apply(manifest, role, app)
    assert wait_until_served(mesh, role, "/productpage", "bookinfo.example") is None


def test_dns_capture_off_fails_egress(mesh: MeshSetup) -> None:
    """Re-installing the stable revision without ISTIO_META_DNS_CAPTURE and restarting the client: its sidecar
    no longer answers for the ServiceEntry-only host, the cluster DNS knows no such name, and the egress request
    fails; the original install is put back afterwards."""
    role = "stable"
    plane = mesh.plan.plane(role)
    app = plane.plane.app_namespaces[0]
    mesh.apply("egress/external-service.yaml", role, EGRESS_EXTERNAL_NAMESPACE)
    assert wait_namespace_rolled_out(mesh, EGRESS_EXTERNAL_NAMESPACE) is None
    mesh.apply("egress/egress-via-gateway.yaml", role, app)
    url = f"http://{EXTERNAL_HOST}/dns-capture-probe"

    def egress(expect_ok: bool) -> Observation[str]:
        response = mesh_get(mesh.cluster, app, url)
        return Observation((response.status == 200) == expect_ok, response.body[:200],
                           f"HTTP {response.status} {response.body[:160]}")

    assert wait_problem(f"GET {url} to answer 200", lambda: egress(True), clock=mesh.cluster.clock, timeout=180,
                        interval=3) is None
    off = operator.write(plane, mesh.work_dir / "dns-off", run_labels=mesh.plan.run_labels,
                         backend_settings=mesh.backend.istio_settings(),
                         mesh_config={"defaultConfig": {"proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "false"}}})
    try:
        assert mesh.istioctl(role).install(off).returncode == 0
        mesh.cluster.rollout_restart(app, "mesh-client")
        assert wait_rolled_out(mesh, app, "mesh-client") is None
        seen = wait_for(f"GET {url} to fail without DNS capture", lambda: egress(False), clock=mesh.cluster.clock,
                        timeout=60, interval=2)
        assert "Could not resolve host" in seen, seen  # curl (6): no sidecar answer, and NXDOMAIN from cluster DNS
    finally:
        assert mesh.istioctl(role).install(mesh.iop_files[role]).returncode == 0
        mesh.cluster.rollout_restart(app, "mesh-client")
        assert wait_rolled_out(mesh, app, "mesh-client") is None


def test_a_canary_with_a_root_of_its_own_breaks_the_upgrade(mesh: MeshSetup, monkeypatch: pytest.MonkeyPatch) -> None:
    """The canary's `cacerts` from another root, its istiod restarted, then the upgrade of the stable app
    namespace. Real TLS fails: the namespace's `istio-ca-root-cert` is written by both istiods while both watch it,
    so re-injected pods that start with the stable root cannot verify the canary istiod (`x509: certificate
    signed by unknown authority`), their proxies never turn ready, and the rollout stalls; pods that do start
    on the new root cannot talk to the remaining stable pods. The upgrade check fails naming the namespace.
    Runs last: it restores the root and moves the namespace back."""
    monkeypatch.setattr(canary_upgrade, "ROLLOUT_TIMEOUT", 60.0)  # the stall is clear long before 300 s
    stable, canary = mesh.plan.plane("stable"), mesh.plan.plane("canary")
    app = stable.plane.app_namespaces[0]
    original = mesh.cluster.get(kinds.SECRET, CACERTS_SECRET, canary.plane.namespace)
    assert original is not None
    _restart_istiod_with(mesh, "canary", MeshTrust().cacerts(canary.plane.namespace, mesh.plan.run_labels))
    try:
        problems = canary_upgrade.move(mesh, app, stable.plane.tag, stable, canary)
        named = [p for p in problems if app in p and ("in-mesh requests failed" in p or "rollout of" in p)]
        assert named, problems
    finally:
        _restart_istiod_with(mesh, "canary", {
            "apiVersion": "v1", "kind": "Secret", "type": original.get("type", "Opaque"), "data": original["data"],
            "metadata": {k: original["metadata"][k] for k in ("name", "namespace", "labels")}})
        canary_upgrade.move(mesh, app, stable.plane.tag, canary, stable)


# -- Gateway API under two revisions (issue 28) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway_api(mesh: MeshSetup) -> MeshSetup:
    """The suite's Gateway API objects, which set-up applied with the CRDs (full_run_manifests declares them), deployed
    and programmed by their owners: the mesh, once they are."""
    for role in ("stable", "canary"):
        assert suite_gateway_api.await_problems(
            mesh, f"the {role} Gateway API gateway deployed and programmed by its owner",
            lambda role=role: suite_gateway_api.deployed_problems(mesh, role, role)
            + suite_gateway_api.status_problems(mesh, role)) == []
    return mesh


def test_gateway_api_gateways_are_deployed_by_their_owner_and_serve_their_own_routes(
        gateway_api: MeshSetup, tmp_path_factory: pytest.TempPathFactory) -> None:
    """On real istiods: the Gateway API CRDs (the standard channel these minors are built with, made from the
    verified module), then in each revision's gateway namespace the suite's Gateway labelled with the revision's tag
    and its HTTPRoutes. Each is deployed by its owner's deployment controller alone (pod template rendered by that
    revision, its proxy version), Accepted and Programmed, its routes Accepted by Istio's controller (the fixture
    awaits it); the model, given the same objects, shows the same owners, versions and conditions; each gateway
    serves its own host (200, with details and reviews on the page) and not the other's (404)."""
    mesh = gateway_api
    cluster = mesh.cluster
    work = tmp_path_factory.mktemp("model-gateway-api")
    model_backend = SimulatedBackend(Transcript(work / "transcript.jsonl"), seed=1, faults=[],
                                     node_image=NODE_IMAGES[KubeVersion.parse(KUBERNETES.version)],
                                     work_dir=work, host_port_base=18080)
    model = build_mesh(mesh.plan, model_backend, model_backend.start(), work, {*BOOKINFO, *GATEWAY_API})
    model.cluster.settle(30)
    model.cluster.settle(30)
    apps = {role: mesh.plan.plane(role).gateway_namespace for role in ("stable", "canary")}
    real_seen, model_seen = observe(cluster, apps), observe(model.cluster, apps)
    assert model_seen == real_seen, f"model vs real:\n{model_seen}\n{real_seen}"
    for role in ("stable", "canary"):
        other = mesh.plan.plane("canary" if role == "stable" else "stable")
        plane, endpoint = mesh.plan.plane(role), suite_gateway_api.gateway_endpoint(mesh, role)
        where = f"the {role} Gateway API gateway"

        def serves(endpoint=endpoint, host=plane.gateway_api_host, where=where) -> Observation[list[str]]:
            problems = check_productpage(where, gateway_get(cluster, endpoint, "/productpage", host))
            return Observation(not problems, problems, "; ".join(problems))

        assert wait_problem(f"{where} to serve {plane.gateway_api_host}", serves, clock=cluster.clock, timeout=120,
                            interval=2) is None
        response = gateway_get(cluster, endpoint, "/productpage", other.gateway_api_host)
        assert check_unrouted(where, "/productpage", other.gateway_api_host, f"the {other.role} gateway",
                              response) == []


def test_a_gateway_api_gateway_labelled_with_the_other_revisions_tag_is_named(gateway_api: MeshSetup) -> None:
    """Real misuse: the stable Gateway names the canary's tag, in a namespace the canary's istiod does not watch
    (discoverySelectors). The canary never sees it, the stable istiod no longer takes it (IsMine): its Deployment
    stays as the stable revision rendered it, owned by nobody. The ownership check, asked for the owner the label
    names, says so."""
    mesh = gateway_api
    cluster, app = mesh.cluster, mesh.plan.plane("stable").gateway_namespace
    stable, canary = mesh.plan.plane("stable").plane, mesh.plan.plane("canary").plane
    gateway = suite_gateway_api.GATEWAY
    cluster.label(kinds.K8S_GATEWAY, gateway, {facts.REV_LABEL: canary.tag}, app)
    try:
        cluster.clock.sleep(15)  # time for a takeover that a deployment controller watching it would make
        problems = suite_gateway_api.deployed_problems(mesh, "stable", "canary")
        assert any(f"Deployment {app}/{deployment_name(gateway)} for Gateway {app}/{gateway} was rendered by "
                   f"revision {stable.revision}, not by its owner {canary.revision}" in p for p in problems), problems
    finally:
        cluster.label(kinds.K8S_GATEWAY, gateway, {facts.REV_LABEL: stable.tag}, app)
    assert suite_gateway_api.await_problems(
        mesh, "the stable Gateway API gateway back with its owner",
        lambda: suite_gateway_api.moved_problems(mesh, "stable")) == []


def test_a_tag_moved_without_the_gateway_following_fails_the_move(gateway_api: MeshSetup) -> None:
    """Real misuse: the stable tag moved to the canary (`tag remove`, then `tag set` from the canary's namespace)
    while the canary's istiod does not watch the stable namespace (it was not given the discovery label first, as the
    upgrade does). The stable istiod lets the Gateway go and the canary never sees it, so the gateway does not follow
    its tag: the check the upgrade asks after the move names the Deployment still rendered by the stable revision."""
    mesh = gateway_api
    app = mesh.plan.plane("stable").gateway_namespace
    stable, canary = mesh.plan.plane("stable").plane, mesh.plan.plane("canary").plane
    gateway = suite_gateway_api.GATEWAY
    assert suite_gateway_api.move_tag(mesh, stable.tag, "stable", "canary") == []
    try:
        problems = suite_gateway_api.await_problems(
            mesh, "the stable Gateway to move to the canary", lambda: suite_gateway_api.moved_problems(mesh, "canary"),
            timeout=15)  # a deployment controller that sees it takes it over within seconds
        assert f"Deployment {app}/{deployment_name(gateway)} for Gateway {app}/{gateway} was rendered by revision " \
               f"{stable.revision}, not by its owner {canary.revision}" in problems, problems
    finally:
        assert suite_gateway_api.move_tag(mesh, stable.tag, "canary", "stable") == []
    assert suite_gateway_api.await_problems(
        mesh, "the stable Gateway API gateway back with its owner",
        lambda: suite_gateway_api.moved_problems(mesh, "stable")) == []
