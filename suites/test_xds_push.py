"""Each revision's istiod pushes its own namespaces' config, and the other istiod does not."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.mesh import MeshSetup
from multirev import attach
from multirev.checks.xds import PROBE_KINDS, QUIET_BEFORE_PROBE, check_push_isolation, probe_config, push_lines
from multirev.conformance import conformance
from multirev.istio import facts
from multirev.kube.kinds import Kind
from multirev.observe import istiod_logs, istiod_ref
from multirev.waits import Observation, wait_problem
from suites.conftest import assert_no_problems

PUSH_TIMEOUT = 60.0
# After the last probe's own push, how long the other istiod gets to (wrongly) push any probe. Both receive the
# same watch event; a push waits at most PILOT_DEBOUNCE_MAX, 10 s by default (istio@1.30.3:pilot/pkg/features/
# tuning.go). Earlier probes have had longer.
GRACE = 15.0
TEST_NAME = "test_config_pushed_only_by_own_istiod"


@dataclass
class Probe:
    role: str
    kind: str
    key: str
    missing: str | None  # why the own istiod's push was not seen in time, if it was not


def selected_probes(session: pytest.Session) -> list[tuple[str, str]]:
    """The (role, kind) pairs of this file's selected tests, in run order (`-k canary` probes only the canary)."""
    pairs = []
    for item in session.items:
        params = getattr(item, "callspec", None)
        if (getattr(item, "originalname", "") == TEST_NAME and params is not None
                and item.path == Path(__file__)):
            pairs.append((params.params["role"], params.params["kind"]))
    return pairs


@pytest.fixture(scope="module")
def push_probes(mesh: MeshSetup, request: pytest.FixtureRequest) -> Iterator[dict[tuple[str, str], Probe]]:
    """Apply each selected probe alone (a quiet gap before it, so that it is the only key of its push) and wait
    for its own istiod's push; then one grace period for the other istiod to push any of them. One window for
    all probes instead of one per probe: the verdict is the same, the wait is paid once."""
    plan, cluster = mesh.plan, mesh.cluster
    probes: dict[tuple[str, str], Probe] = {}
    applied: list[tuple[Kind, str, str]] = []
    try:
        for role, kind in selected_probes(request.session):
            own = plan.plane(role)
            namespace = own.plane.app_namespaces[0]
            name = f"xds-probe-{plan.run_id}-{role}-{kind.lower()}"
            labels = {**plan.run_labels}
            if not own.uses_discovery_selectors:
                labels[facts.REV_LABEL] = own.plane.revision
            target, probe, key = probe_config(kind, name, namespace, labels)
            cluster.clock.sleep(QUIET_BEFORE_PROBE)
            cluster.apply(probe)
            applied.append((target, name, namespace))

            def own_pushed(plane=own.plane, key=key) -> Observation[None]:
                lines = push_lines(istiod_logs(cluster, plane), key)
                return Observation(bool(lines), None, f"{len(lines)} push lines for {key}")

            missing = wait_problem(f"{istiod_ref(own.plane)} to push {key}", own_pushed, clock=cluster.clock,
                                   timeout=PUSH_TIMEOUT, interval=0.5)
            probes[(role, kind)] = Probe(role, kind, key, missing)
        if probes:
            # Expected to pass in silence: the other istiod should never push a probe.
            cluster.clock.sleep(GRACE)
        yield probes
    finally:
        for target, name, namespace in applied:
            cluster.delete(target, name, namespace)


@pytest.mark.parametrize("kind", PROBE_KINDS)
@pytest.mark.parametrize("role", ["stable", "canary"])
@conformance(feature="xds-isolation", canary=True)
def test_config_pushed_only_by_own_istiod(mesh: MeshSetup, push_probes: dict[tuple[str, str], Probe], role: str,
                                          kind: str) -> None:
    """Certifies, for each config kind the suite applies (VirtualService, DestinationRule, Gateway, ServiceEntry),
    that after one uniquely named object of that kind is applied alone in an app namespace, the istiod of that
    namespace's revision logs `Push debounce stable[...] ... for config <Kind>/<ns>/<name>` within a bounded time
    (a ServiceEntry's key names its host), and the other istiod logs no push for it within a grace period. The
    push line names only the first config of a batch, so each probe is applied alone. In the separate layout
    isolation comes from discoverySelectors; in the shared layout the probe carries istio.io/rev=<revision>, which
    only that revision reads (pkg/config/model.go)."""
    probe = push_probes[(role, kind)]
    own = mesh.plan.plane(role)
    other = mesh.plan.plane("canary" if role == "stable" else "stable")
    own_logs, other_logs = istiod_logs(mesh.cluster, own.plane), istiod_logs(mesh.cluster, other.plane)
    attach.text(f"push lines for {probe.key}", f"{istiod_ref(own.plane)}:\n"
                + "\n".join(push_lines(own_logs, probe.key)) + f"\n\n{istiod_ref(other.plane)}:\n"
                + "\n".join(push_lines(other_logs, probe.key)))
    problems = check_push_isolation(probe.key, istiod_ref(own.plane), own_logs, istiod_ref(other.plane), other_logs)
    if probe.missing and problems:
        problems.append(probe.missing)
    assert_no_problems(problems, f"xDS push isolation of a {kind} for {role}")
