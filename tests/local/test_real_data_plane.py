"""On real proxies: every proxy takes istiod's config, and data-plane checks fail through real misuse.

One mesh (local-dev, separate layout) with Bookinfo behind each revision's gateway and the in-mesh client runs
on the local backend's data plane (real pilot-agent and Envoy per pod). Each fault test misuses it as an
operator could (a VirtualService's weights, a DestinationRule subset, a missing ServiceEntry), runs the check
the conformance suite runs, asserts it fails, and undoes the misuse.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator

import pytest

from fixtures.mesh import MeshSetup, build_mesh
from multirev.backends.local import build
from multirev.backends.local.backend import LocalBackend, LocalOptions
from multirev.clock import WallClock
from multirev.commands import RecordingRunner, SubprocessRunner, Transcript
from multirev.kube import kinds
from multirev.plan import EGRESS_EXTERNAL_NAMESPACE, MeshPlan
from multirev.profile import load_profile
from multirev.stats import judge_weights
from multirev.traffic import gateway_get, mesh_get, reviews_version
from multirev.waits import Observation, wait_problem
from suites.conftest import BOOKINFO, CLIENT
from suites.scenario import apply_and_await_push, wait_rolled_out, wait_until_served
from tests.local.conftest import PROFILE, local_versions, nothing_left, require

REVIEWS_PATH = "/api/v1/products/0/reviews"
EXTERNAL_HOST = "external.multirev.invalid"  # only the ServiceEntry knows it (manifests/egress)
RUN_ID = "dataplane"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSetup]:
    require(local_versions())
    work = tmp_path_factory.mktemp("real-data-plane")
    runner = RecordingRunner(SubprocessRunner(), Transcript(work / "transcript.jsonl"), "local")
    plan = MeshPlan(load_profile(PROFILE), RUN_ID)
    backend = LocalBackend(runner, WallClock(), LocalOptions(
        run_id=RUN_ID, worker=os.environ.get("PYTEST_XDIST_WORKER", "main"), istio_versions=local_versions(),
        bin_cache=build.default_bin_cache(), work_dir=work,
        gateway_services={p.role: (p.plane.namespace, p.gateway_name) for p in plan.planes}))
    backend.preflight()
    if backend.data_plane_missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the local data plane, but: {backend.data_plane_missing}", pytrace=False)
        pytest.skip(backend.data_plane_missing)
    try:
        cluster = backend.start()
        setup = build_mesh(plan, backend, cluster, work, {*BOOKINFO, *CLIENT})
        for role in ("stable", "canary"):
            app = setup.plan.plane(role).plane.app_namespaces[0]
            for deploy in cluster.list(kinds.DEPLOYMENT, app):
                assert wait_rolled_out(setup, app, deploy["metadata"]["name"]) is None
        yield setup
    finally:
        backend.stop()
    assert nothing_left(RUN_ID) == {}


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
    app = mesh.plan.plane(role).plane.app_namespaces[0]
    assert wait_until_served(mesh, role, REVIEWS_PATH, "bookinfo.example") is None
    apply_and_await_push(mesh, role, "routing/reviews-50-10-40.yaml", f"VirtualService/{app}/reviews")

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
    apply_and_await_push(mesh, role, "routing/reviews-v1.yaml", f"VirtualService/{app}/reviews")
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
    apply_and_await_push(mesh, role, "egress/egress-via-gateway.yaml", f"VirtualService/{app}/external-via-egress")
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
