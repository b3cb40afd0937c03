"""Gateway API gateways under two revisions (issue 28): each revision's Gateway (class istio, labelled with the
revision's tag) is deployed and given status by its owner alone, serves its routes, holds an HTTPRoute's weights, and
follows its tag when the tag moves. Which istiod owns a Gateway is multirev/istio/gateway_api.py `claims`, cited per
minor; docs/gateway-api.md says what a user sees when it fails."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from fixtures.mesh import MeshSetup
from multirev import attach
from multirev.checks.gateway import check_productpage, check_unrouted
from multirev.checks.gateway_api import check_deployed_by, check_gateway_status, check_steady
from multirev.checks.xds import QUIET_BEFORE_PROBE, check_push_isolation, http_route_probe, push_lines
from multirev.conformance import conformance
from multirev.istio import facts
from multirev.kube import kinds
from multirev.observe import istiod_logs, istiod_ref
from multirev.progress import step
from multirev.stats import LOOKS, judge_weights
from multirev.traffic import gateway_get, reviews_version
from multirev.waits import Observation, wait_problem
from suites.conftest import BOOKINFO, GATEWAY_API, assert_no_problems
from suites.gateway_api import (
    GATEWAY,
    READY_TIMEOUT,
    ROLES,
    await_problems,
    await_programmed,
    deployed_problems,
    gateway_endpoint,
    move_under_traffic,
    moved_problems,
    status_problems,
    window,
)
from suites.scenario import default_tag_now

SPLIT = {"v1": 0.5, "v2": 0.1, "v3": 0.4}  # the reviews-weighted HTTPRoute's backendRefs
REVIEWS_PATH = "/reviews/0"


@pytest.fixture(scope="module")
def steady_window(mesh: MeshSetup) -> dict[str, dict[str, list[tuple[float, object]]]]:
    """Once both Gateways are deployed and programmed (or the wait for it has ended: the tests name what is not), what
    is seen of their Deployments and statuses over one window with both revisions running."""
    for role in ROLES:
        await_problems(mesh, f"the {role} Gateway API gateway to be deployed and programmed", lambda role=role:
                       deployed_problems(mesh, role, role) + status_problems(mesh, role))
    return window(mesh)


@pytest.mark.parametrize("role", ["stable", "canary"])
@conformance(feature="gateway-api", manifests=BOOKINFO + GATEWAY_API, canary=True)
def test_gateway_api_gateway_is_deployed_by_its_owner_alone(mesh: MeshSetup, role: str,
                                                            steady_window: dict[str, dict[str, list]]) -> None:
    """Certifies that the Gateway (class istio) labelled with the revision's tag is deployed by that revision's istiod
    alone: exactly one Deployment for it, its pod template rendered by the owning revision and running its proxy
    version, and over a window of seconds with both revisions running, that Deployment does not change (two istiods
    taking the Gateway would render it in turn)."""
    problems = await_problems(mesh, f"the {role} Gateway API gateway to be deployed by revision "
                                    f"{mesh.plan.plane(role).plane.revision}",
                              lambda: deployed_problems(mesh, role, role))
    if not problems:
        for what, seen in steady_window[role].items():
            if what.startswith("Deployment"):
                problems += check_steady(what, seen)
    assert_no_problems(problems, f"Gateway API gateway ownership ({role})")


@pytest.mark.parametrize("role", ["stable", "canary"])
@conformance(feature="gateway-api", manifests=BOOKINFO + GATEWAY_API, canary=True)
def test_gateway_api_status_is_written_by_its_owner(mesh: MeshSetup, role: str,
                                                    steady_window: dict[str, dict[str, list]]) -> None:
    """Certifies the status the owning istiod writes, and that no other writes it: the Gateway Accepted and
    Programmed with an address, each HTTPRoute with exactly one parent entry for it, by Istio's controller, Accepted
    and ResolvedRefs; over a window of seconds with both revisions running, none of these statuses changes (another
    revision writing its own view would overwrite them in turn)."""
    problems = await_problems(mesh, f"the {role} Gateway API gateway and routes to be accepted and programmed",
                              lambda: status_problems(mesh, role))
    if not problems:
        for what, seen in steady_window[role].items():
            if what.startswith("the status"):
                problems += check_steady(what, seen)
    assert_no_problems(problems, f"Gateway API status ({role})")


@pytest.mark.parametrize("role", ["stable", "canary"])
@conformance(feature="gateway-api", manifests=BOOKINFO + GATEWAY_API, needs_envoy=True)
def test_gateway_api_gateway_serves_its_own_routes(mesh: MeshSetup, role: str) -> None:
    """Certifies that the deployed gateway serves its HTTPRoutes: `/productpage` with the revision's Gateway API host
    returns 200 from Envoy with the Bookinfo page, and the page carries what details and reviews returned (not the
    error productpage renders when it cannot reach them); the other revision's host, which only the other Gateway's
    routes name, gets Envoy's 404 here."""
    plane, other = mesh.plan.plane(role), mesh.plan.plane("canary" if role == "stable" else "stable")
    assert_no_problems(await_programmed(mesh, role), f"Gateway API gateway ({role})")
    endpoint = gateway_endpoint(mesh, role)
    where = f"the {role} Gateway API gateway ({plane.gateway_namespace}/{GATEWAY})"
    last: list[list[str]] = [[]]

    def served() -> Observation[None]:
        last[0] = check_productpage(where, gateway_get(mesh.cluster, endpoint, "/productpage", plane.gateway_api_host))
        return Observation(not last[0], None, "; ".join(last[0]) or "served")

    wait_problem(f"{where} to serve /productpage for {plane.gateway_api_host}", served, clock=mesh.cluster.clock,
                 timeout=READY_TIMEOUT, interval=3)
    problems = list(last[0])
    response = gateway_get(mesh.cluster, endpoint, "/productpage", other.gateway_api_host)
    problems += check_unrouted(where, "/productpage", other.gateway_api_host,
                               f"the {other.role} Gateway API gateway", response)
    assert_no_problems(problems, f"Gateway API gateway traffic ({role})")


@pytest.mark.parametrize("role", ["stable", "canary"])
@conformance(feature="gateway-api", manifests=BOOKINFO + GATEWAY_API, needs_envoy=True)
def test_gateway_api_weighted_backend_refs(mesh: MeshSetup, role: str, record_property: pytest.RecordProperty) -> None:
    """Certifies that an HTTPRoute's weighted backendRefs hold through the revision's Gateway API gateway: 50/10/40
    over the reviews-v1/-v2/-v3 Services, versions told apart from the reviews JSON, judged by the same
    group-sequential test as the VirtualService split (docs/weighted-routing.md: false failure <= 1e-4, detection
    >= 0.99 for a 10-point error)."""
    plane = mesh.plan.plane(role)
    assert_no_problems(await_programmed(mesh, role), f"Gateway API gateway ({role})")
    endpoint = gateway_endpoint(mesh, role)

    def answered() -> Observation[None]:
        response = gateway_get(mesh.cluster, endpoint, REVIEWS_PATH, plane.gateway_api_host)
        return Observation(reviews_version(response) is not None, None, f"HTTP {response.status} {response.body[:80]}")

    if waited := wait_problem(f"GET {REVIEWS_PATH} through the {role} Gateway API gateway to reach reviews", answered,
                              clock=mesh.cluster.clock, timeout=READY_TIMEOUT, interval=3):
        assert_no_problems([waited], f"Gateway API weighted routing ({role})")

    def draw(n: int) -> Iterator[str | None]:
        for _ in range(n):
            yield reviews_version(gateway_get(mesh.cluster, endpoint, REVIEWS_PATH, plane.gateway_api_host))

    with step(f"traffic burst through the {role} Gateway API gateway (sequential test, up to {LOOKS[-1]} requests)"):
        verdict = judge_weights(draw, SPLIT)
    record_property("requests", verdict.requests)
    record_property("shares", verdict.table())
    attach.text("routing tallies", f"{verdict.reason}\nrequests used: {verdict.requests}\n"
                                   + verdict.table().replace("; ", "\n"))
    problems = [] if verdict.passed else [
        f"HTTPRoute {plane.gateway_namespace}/reviews-weighted 50/10/40 through the {role} Gateway API gateway: "
        f"{verdict.reason} after {verdict.requests} requests; {verdict.table()}"]
    assert_no_problems(problems, f"Gateway API weighted routing ({role}), {verdict.requests} requests")


@conformance(feature="gateway-api", manifests=BOOKINFO + GATEWAY_API, canary=True, mutates=True, needs_envoy=True)
def test_gateway_api_gateway_follows_its_tag_under_traffic(mesh: MeshSetup,
                                                           record_property: pytest.RecordProperty) -> None:
    """Certifies Istio's canary upgrade of a gateway: while requests flow through the stable revision's Gateway API
    gateway, the tag its Gateway follows is moved to the canary revision (the canary's istiod first given the
    namespace to watch where discoverySelectors apply); the canary's deployment controller takes the Gateway over, its
    pods roll onto the canary's proxy, its status comes from the canary and never lapses (Programmed throughout), and
    at least 99.5 % of the requests succeed. Then the tag is moved back the same way, with the same guarantees.
    Where the stable revision is the default revision, whose istiod counts `default` among its own tags whatever the
    tag webhooks say (pkg/revisions/tag_watcher.go@1.30.3 GetMyTags), moving the `default` tag cannot take a Gateway
    from it: the Gateway is moved by its label instead, to the canary's tag and back to `default`."""
    stable, canary = mesh.plan.plane("stable"), mesh.plan.plane("canary")
    if mesh.plan.installed:
        pytest.skip("--installed: the run never moves the cluster's own tags")
    app, tag = stable.gateway_namespace, stable.plane.tag
    relabel = stable.is_default_revision and tag == facts.DEFAULT_TAG
    before = await_problems(mesh, "the stable Gateway API gateway to be deployed and programmed before the move",
                    lambda: moved_problems(mesh, "stable"))
    assert_no_problems(before, "Gateway API gateway (stable) before the move")
    added = {k: v for k, v in canary.discovery_labels.items() if k not in stable.discovery_labels}
    problems: list[str] = []
    tallies: dict[str, str] = {}
    if added:
        mesh.cluster.label(kinds.NAMESPACE, app, dict(added))
    try:
        problems += [f"upgrade: {p}" for p in move_under_traffic(
            mesh, canary.plane.tag if relabel else tag, "stable", "canary", relabel=relabel, tallies=tallies)]
        problems += [f"rollback: {p}" for p in move_under_traffic(mesh, tag, "canary", "stable", relabel=relabel,
                                                                  tallies=tallies)]
    finally:
        if relabel:
            mesh.cluster.label(kinds.K8S_GATEWAY, GATEWAY, {facts.REV_LABEL: tag}, app)
        owners = {(h["metadata"].get("labels") or {}).get(facts.REV_LABEL)
                  for h in mesh.cluster.list(kinds.MUTATING_WEBHOOK, labels={facts.TAG_LABEL: tag})}
        if not relabel and owners != {stable.plane.revision}:  # a failed move: the tag goes back where it was
            for hook in mesh.cluster.list(kinds.MUTATING_WEBHOOK, labels={facts.TAG_LABEL: tag}):
                mesh.cluster.delete(kinds.MUTATING_WEBHOOK, hook["metadata"]["name"])
            mesh.installer.set_tag(stable, tag, overwrite=True)
        if added:
            mesh.cluster.label(kinds.NAMESPACE, app, dict.fromkeys(added))
    for moved_to, tally in tallies.items():
        record_property(f"requests while moving {moved_to}", tally)
    assert_no_problems(problems, f"Gateway API gateway following {'its label' if relabel else f'tag {tag}'}")


UNLABELLED = "unlabelled"
UNOWNED_WAIT = 30.0  # how long a Gateway nobody should own is watched for a Deployment


def _unlabelled_gateway(namespace: str, run_labels: dict[str, str]) -> dict:
    return {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "Gateway",
            "metadata": {"name": UNLABELLED, "namespace": namespace, "labels": dict(run_labels),
                         "annotations": {"networking.istio.io/service-type": "ClusterIP"}},
            "spec": {"gatewayClassName": "istio", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}


def _default_owner(mesh: MeshSetup) -> tuple[str | None, str]:
    """The revision that should take a Gateway naming no revision, and why (multirev/istio/gateway_api.py `claims`,
    1.28 and later): the one the `default` tag names; without that tag, the default revision (the one
    `istiod-default-validator` is labelled for); else none."""
    if tagged := default_tag_now(mesh):
        return tagged, f"the `default` tag names revision {tagged}"
    validator = mesh.cluster.get(kinds.VALIDATING_WEBHOOK, facts.DEFAULT_VALIDATOR)
    if validator and (revision := (validator["metadata"].get("labels") or {}).get(facts.REV_LABEL)):
        return revision, f"there is no `default` tag, and {facts.DEFAULT_VALIDATOR} is revision {revision}'s"
    return None, f"there is no `default` tag and no {facts.DEFAULT_VALIDATOR}"


@conformance(feature="gateway-api", manifests=BOOKINFO + GATEWAY_API)
def test_gateway_api_unlabelled_gateway_follows_the_default_tag(mesh: MeshSetup) -> None:
    """Certifies who takes a Gateway that names no revision (no `istio.io/rev` on it or its namespace, a namespace
    both revisions watch): the revision the `default` tag names; without that tag, the default revision; otherwise
    none, which the test then certifies (no Deployment for it). Exactly that revision's istiod deploys it, rendered
    by that revision with its proxy version, and it is Programmed."""
    owner, why = _default_owner(mesh)
    planes = {p.plane.revision: p for p in mesh.plan.planes}
    if owner is not None and owner not in planes:
        pytest.skip(f"{why}, which this run does not certify (it certifies {', '.join(sorted(planes))})")
    namespace = f"gateway-api-unlabelled-{mesh.plan.run_id}"
    labels = {k: v for p in mesh.plan.planes for k, v in p.discovery_labels.items()}
    with step(f"create namespace {namespace} with a Gateway naming no revision ({why})"):
        mesh.use_namespace(namespace, labels)
        mesh.put(_unlabelled_gateway(namespace, mesh.plan.run_labels))
    what = f"the Gateway {namespace}/{UNLABELLED} naming no revision ({why})"
    if owner is None:
        mesh.cluster.clock.sleep(UNOWNED_WAIT)
        made = [d["metadata"]["name"] for d in mesh.cluster.list(kinds.DEPLOYMENT, namespace)]
        assert_no_problems([f"Deployment {namespace}/{name} was made, though no revision should take it"
                            for name in made], what)
        return
    plane = planes[owner].plane

    def owned() -> list[str]:
        gateway = mesh.cluster.get(kinds.K8S_GATEWAY, UNLABELLED, namespace)
        if gateway is None:
            return [f"Gateway {namespace}/{UNLABELLED} is not there"]
        return check_deployed_by(gateway, mesh.cluster.list(kinds.DEPLOYMENT, namespace), plane.revision,
                                 str(plane.version)) + check_gateway_status(gateway)

    assert_no_problems(await_problems(mesh, f"{what} to be deployed by revision {owner}", owned),
                       what)


PUSH_TIMEOUT = 60.0
PUSH_GRACE = 15.0  # as suites/test_xds_push.py GRACE: at most PILOT_DEBOUNCE_MAX (10 s) for the other istiod's push
NO_PUSH_PROMISE = ("no discoverySelectors: both istiods read an HTTPRoute that names no other revision and compute "
                   "config for every Gateway (controller.go buildClient; istio/istio#60158), so which istiod pushes it "
                   "is not a promise Istio makes here")


@dataclass
class RoutePush:
    key: str  # what the push line names: the VirtualService istiod derives from the route
    missing: str | None  # why the own istiod's push was not seen in time, if it was not


@pytest.fixture(scope="module")
def route_pushes(mesh: MeshSetup) -> Iterator[dict[str, RoutePush]]:
    """Where discoverySelectors apply: for each role, an HTTPRoute applied alone (after a quiet gap, so that it is the
    only key of its push) on its Gateway, and the wait for its own istiod's push; then one grace period in which the
    other istiod could (wrongly) push either; the probes go at the end."""
    cluster, probes, applied = mesh.cluster, {}, []
    try:
        for role in ROLES if all(p.uses_discovery_selectors for p in mesh.plan.planes) else ():
            own = mesh.plan.plane(role)
            name, namespace = f"xds-probe-{mesh.plan.run_id}-{role}-httproute", own.gateway_namespace
            target, probe, key = http_route_probe(name, namespace, GATEWAY, "http", mesh.plan.run_labels)
            cluster.clock.sleep(QUIET_BEFORE_PROBE)
            with step(f"apply HTTPRoute {namespace}/{name} alone and await its push"):
                mesh.put(probe)
            applied.append((target, name, namespace))

            def own_pushed(plane=own.plane, key=key) -> Observation[None]:
                lines = push_lines(istiod_logs(cluster, plane), key)
                return Observation(bool(lines), None, f"{len(lines)} push lines for {key}")

            probes[role] = RoutePush(key, wait_problem(f"{istiod_ref(own.plane)} to push {key}", own_pushed,
                                                       clock=cluster.clock, timeout=PUSH_TIMEOUT, interval=0.5))
        if probes:
            cluster.clock.sleep(PUSH_GRACE)  # expected to pass in silence: the other istiod never sees the routes
        yield probes
    finally:
        for target, name, namespace in applied:
            cluster.delete(target, name, namespace)


@pytest.mark.parametrize("role", ["stable", "canary"])
@conformance(feature="gateway-api", manifests=BOOKINFO + GATEWAY_API, canary=True)
def test_gateway_api_route_is_pushed_by_its_own_istiod_alone(mesh: MeshSetup, role: str,
                                                             route_pushes: dict[str, RoutePush]) -> None:
    """Certifies which istiod pushes an HTTPRoute, as far as the version promises it: with discoverySelectors, an
    HTTPRoute applied alone on the revision's Gateway is pushed by that revision's istiod (`Push debounce stable[...]
    for config VirtualService/<ns>/<gateway ns>~<gateway>~istio-autogenerated-k8s-gateway~<listener>~<host>`, the
    VirtualService istiod derives from it) and never by the other, which does not watch the namespace. Without them
    (the shared layout) Istio promises no such isolation, and the test says so instead of passing: istiod reads
    every HTTPRoute that names no other revision by its own `istio.io/rev` label (pilot/pkg/config/kube/gateway/
    controller.go@1.30.3 buildClient), and since istio/istio#60158 (1.31; 1.30.2 and 1.29.5 by backport) computes
    config for every Gateway, so both istiods push it."""
    if role not in route_pushes:
        pytest.skip(NO_PUSH_PROMISE)
    own, other = mesh.plan.plane(role), mesh.plan.plane("canary" if role == "stable" else "stable")
    push = route_pushes[role]
    problems = check_push_isolation(push.key, istiod_ref(own.plane), istiod_logs(mesh.cluster, own.plane),
                                    istiod_ref(other.plane), istiod_logs(mesh.cluster, other.plane))
    if push.missing and problems:
        problems.append(push.missing)
    assert_no_problems(problems, f"xDS push of an HTTPRoute for {role}")
