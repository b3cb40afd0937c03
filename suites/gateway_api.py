"""Steps of the Gateway API scenario (issue 28) that its tests and the local self-tests share (not a test module):
what is judged of a revision's Gateway, where its gateway is reached, and moving the Gateway to another revision
under traffic. docs/gateway-api.md says what is certified."""

from __future__ import annotations

from collections.abc import Callable

from fixtures.mesh import MeshSetup
from multirev.backends.base import Endpoint
from multirev.checks.gateway_api import (
    check_deployed_by,
    check_gateway_status,
    check_route_status,
    deployment_summary,
    status_summary,
)
from multirev.checks.upgrade import Tally, check_tally
from multirev.istio import facts
from multirev.istio.gateway_api import deployment_name
from multirev.kube import kinds
from multirev.progress import step
from multirev.traffic import gateway_get
from multirev.waits import Observation, wait_problem
from suites.scenario import rollout_state

GATEWAY = "bookinfo-gateway-api"  # manifests/gateway-api/bookinfo.yaml
ROLES = ("stable", "canary")
ROUTES = ("bookinfo", "reviews-weighted")
READY_TIMEOUT = 300.0
STEADY_FOR, STEADY_EVERY = 12.0, 2.0  # the window in which nothing may change while both revisions run
MOVE_TIMEOUT = 300.0
MIN_REQUESTS = 200


def deployed_problems(mesh: MeshSetup, role: str, owner: str) -> list[str]:
    """The role's Gateway deployed by `owner`'s istiod alone (its pod rendered by that revision, its proxy version)."""
    plane, theirs = mesh.plan.plane(role), mesh.plan.plane(owner).plane
    app, cluster = plane.gateway_namespace, mesh.cluster
    gateway = cluster.get(kinds.K8S_GATEWAY, GATEWAY, app)
    if gateway is None:
        return [f"Gateway {app}/{GATEWAY} is not there"]
    return check_deployed_by(gateway, cluster.list(kinds.DEPLOYMENT, app), theirs.revision, str(theirs.version))


def status_problems(mesh: MeshSetup, role: str, *, routes: bool = True) -> list[str]:
    """The role's Gateway Accepted and Programmed with an address; its routes accepted by Istio's controller."""
    app, cluster = mesh.plan.plane(role).gateway_namespace, mesh.cluster
    gateway = cluster.get(kinds.K8S_GATEWAY, GATEWAY, app)
    if gateway is None:
        return [f"Gateway {app}/{GATEWAY} is not there"]
    problems = check_gateway_status(gateway)
    for name in ROUTES if routes else ():
        route = cluster.get(kinds.HTTP_ROUTE, name, app)
        problems += check_route_status(route, GATEWAY) if route else [f"HTTPRoute {app}/{name} is not there"]
    return problems


def await_problems(mesh: MeshSetup, what: str, problems: Callable[[], list[str]], timeout: float = READY_TIMEOUT
           ) -> list[str]:
    """Set-up does not wait for istiod's deployment controller: wait (bounded) for the checks to hold; the last
    problems seen are the verdict."""
    last: list[list[str]] = [[]]

    def settled() -> Observation[None]:
        last[0] = problems()
        return Observation(not last[0], None, "; ".join(last[0]) or "as expected")

    wait_problem(what, settled, clock=mesh.cluster.clock, timeout=timeout, interval=2)
    return last[0]


def moved_problems(mesh: MeshSetup, owner: str) -> list[str]:
    """The stable Gateway deployed by `owner` and programmed (what a move must reach and keep)."""
    return deployed_problems(mesh, "stable", owner) + status_problems(mesh, "stable", routes=False)


def await_programmed(mesh: MeshSetup, role: str) -> list[str]:
    return await_problems(mesh, f"the {role} Gateway API gateway to be programmed",
                  lambda: status_problems(mesh, role, routes=False))


def gateway_endpoint(mesh: MeshSetup, role: str) -> Endpoint:
    """The gateway's Service has no fixed host port: a port-forward to it (the local backend: a forwarder into its
    network namespace)."""
    return mesh.backend.service_endpoint(mesh.plan.plane(role).gateway_namespace, deployment_name(GATEWAY), "http")


def window(mesh: MeshSetup, roles: tuple[str, ...] = ROLES) -> dict[str, dict[str, list[tuple[float, object]]]]:
    """What is seen of each role's gateway Deployment, Gateway and routes every STEADY_EVERY s for STEADY_FOR s (one
    window for all roles: the verdict is the same, the wait is paid once)."""
    cluster = mesh.cluster
    seen: dict[str, dict[str, list[tuple[float, object]]]] = {role: {} for role in roles}
    start = cluster.clock.now()
    while True:
        now = cluster.clock.now() - start
        for role in roles:
            app, found = mesh.plan.plane(role).gateway_namespace, seen[role]
            found.setdefault(f"Deployment {app}/{deployment_name(GATEWAY)}", []).append(
                (now, deployment_summary(cluster.get(kinds.DEPLOYMENT, deployment_name(GATEWAY), app))))
            found.setdefault(f"the status of Gateway {app}/{GATEWAY}", []).append(
                (now, status_summary(cluster.get(kinds.K8S_GATEWAY, GATEWAY, app))))
            for name in ROUTES:
                found.setdefault(f"the status of HTTPRoute {app}/{name}", []).append(
                    (now, status_summary(cluster.get(kinds.HTTP_ROUTE, name, app))))
        if now >= STEADY_FOR:
            return seen
        cluster.clock.sleep(STEADY_EVERY)


def move_tag(mesh: MeshSetup, tag: str, source_role: str, target_role: str) -> list[str]:
    """Point `tag` at the target revision. In the separate layout a tag's webhook is named for, and calls the istiod
    of, its `-i` namespace, so it is removed from the source's first (set beside it, two webhooks of the tag would make
    both istiods claim the Gateway: suites/moves.py move_default_tag); in the shared layout `--overwrite` moves it."""
    source, target = mesh.plan.plane(source_role), mesh.plan.plane(target_role)
    steps = []
    if source.plane.namespace != target.plane.namespace:
        steps.append((mesh.installer.describe("untag", source, tag), lambda: mesh.installer.remove_tag(source, tag)))
    steps.append((mesh.installer.describe("retag", target, tag),
                  lambda: mesh.installer.set_tag(target, tag, overwrite=True)))
    for command, run in steps:
        with step(command):
            result = run()
        if result.returncode != 0:
            return [f"`{command}` failed: {(result.stderr or result.stdout).strip()}"]
    return []


def relabel_gateway(mesh: MeshSetup, tag: str) -> list[str]:
    app = mesh.plan.plane("stable").gateway_namespace
    with step(f"label Gateway {app}/{GATEWAY} {facts.REV_LABEL}={tag}"):
        mesh.cluster.label(kinds.K8S_GATEWAY, GATEWAY, {facts.REV_LABEL: tag}, app)
    return []


def move_under_traffic(mesh: MeshSetup, tag: str, source_role: str, target_role: str, *,
                       relabel: bool = False, tallies: dict[str, str] | None = None) -> list[str]:
    """Move the stable Gateway to the target revision while requests flow through it: its tag (or, `relabel`, its
    label, to the target's tag); afterwards it is deployed and programmed by the target, its pods rolled onto the
    target's proxy; >= 99.5 % of requests succeed; it is Programmed throughout."""
    cluster, stable = mesh.cluster, mesh.plan.plane("stable")
    app, target = stable.gateway_namespace, mesh.plan.plane(target_role).plane
    endpoint, tally, gaps = gateway_endpoint(mesh, "stable"), Tally(), []

    def tick() -> None:
        for _ in range(5):
            response = gateway_get(cluster, endpoint, "/productpage", stable.gateway_api_host)
            tally.add(response.status, response.body)
        gateway = cluster.get(kinds.K8S_GATEWAY, GATEWAY, app) or {}
        programmed = next((c for c in (gateway.get("status") or {}).get("conditions") or []
                           if c.get("type") == "Programmed"), None)
        if programmed is None or programmed.get("status") != "True":
            gaps.append(f"at {cluster.clock.now():.0f}s: {status_summary(gateway or None)}")

    tick()
    if failed := (relabel_gateway(mesh, tag) if relabel else move_tag(mesh, tag, source_role, target_role)):
        return failed
    last: list[list[str]] = [[]]

    def moved() -> Observation[None]:
        tick()
        last[0] = moved_problems(mesh, target_role)
        deployment = cluster.get(kinds.DEPLOYMENT, deployment_name(GATEWAY), app)
        done, _, state = rollout_state(deployment) if deployment else (False, None, "no Deployment")
        last[0] += [] if done else [state]
        return Observation(not last[0], None, "; ".join(last[0]) or "moved")

    wait_problem(f"Gateway {app}/{GATEWAY} to move to revision {target.revision}", moved, clock=cluster.clock,
                 timeout=MOVE_TIMEOUT, interval=1)
    while tally.total < MIN_REQUESTS:
        tick()
    how = f"labelled {tag}" if relabel else f"tag {tag}"
    where = f"moving Gateway {app}/{GATEWAY} ({how}) to revision {target.revision}"
    problems = [f"{where}: {p}" for p in last[0]] + check_tally(where, tally, "requests through the gateway")
    if tallies is not None:
        tallies[f"to {target.revision}"] = f"{tally.ok} of {tally.total} requests succeeded, {len(gaps)} moments " \
                                           "not Programmed"
    if gaps:
        problems.append(f"{where}: the Gateway was not Programmed {len(gaps)} times: {'; '.join(gaps[:3])}")
    return problems
