"""Each revision's istiod pushes its own namespaces' config, and the other istiod does not."""

from __future__ import annotations

import pytest

from fixtures.mesh import MeshSetup
from multirev import attach
from multirev.checks.xds import PROBE_KINDS, QUIET_BEFORE_PROBE, check_push_isolation, probe_config, push_lines
from multirev.conformance import conformance
from multirev.istio import facts
from multirev.observe import istiod_logs, istiod_ref
from multirev.waits import Observation, wait_problem
from suites.conftest import assert_no_problems

PUSH_TIMEOUT = 60.0
# After the own istiod pushed, how long the other one gets to (wrongly) push too. Both receive the same watch
# event; a push waits at most PILOT_DEBOUNCE_MAX, 10 s by default (istio@1.30.3:pilot/pkg/features/tuning.go).
GRACE = 15.0


@pytest.mark.parametrize("kind", PROBE_KINDS)
@pytest.mark.parametrize("role", ["stable", "canary"])
@conformance(feature="xds-isolation", canary=True)
def test_config_pushed_only_by_own_istiod(mesh: MeshSetup, role: str, kind: str) -> None:
    """Certifies, for each config kind the suite applies (VirtualService, DestinationRule, Gateway, ServiceEntry),
    that after one uniquely named object of that kind is applied alone in an app namespace, the istiod of that
    namespace's revision logs `Push debounce stable[...] ... for config <Kind>/<ns>/<name>` within a bounded time
    (a ServiceEntry's key names its host), and the other istiod logs no push for it. The push line names only
    the first config of a batch, so each probe is applied alone. In the separate layout isolation comes from
    discoverySelectors; in the shared layout the probe carries istio.io/rev=<revision>, which only that revision
    reads (pkg/config/model.go)."""
    plan = mesh.plan
    own, other = plan.plane(role), plan.plane("canary" if role == "stable" else "stable")
    namespace = own.plane.app_namespaces[0]
    name = f"xds-probe-{plan.run_id}-{role}-{kind.lower()}"
    labels = {**plan.run_labels}
    if not own.uses_discovery_selectors:
        labels[facts.REV_LABEL] = own.plane.revision
    target, probe, key = probe_config(kind, name, namespace, labels)
    cluster = mesh.cluster
    cluster.clock.sleep(QUIET_BEFORE_PROBE)
    cluster.apply(probe)
    try:
        def own_pushed() -> Observation[None]:
            lines = push_lines(istiod_logs(cluster, own.plane), key)
            return Observation(bool(lines), None, f"{len(lines)} push lines for {key}")

        def other_pushed() -> Observation[None]:
            lines = push_lines(istiod_logs(cluster, other.plane), key)
            return Observation(bool(lines), None, lines[0] if lines else "no push")

        problems = []
        missing = wait_problem(f"{istiod_ref(own.plane)} to push {key}", own_pushed, clock=cluster.clock,
                               timeout=PUSH_TIMEOUT)
        # Expected to time out: the other istiod should never push the probe.
        wait_problem(f"{istiod_ref(other.plane)} to push {key}", other_pushed, clock=cluster.clock, timeout=GRACE)
        own_logs, other_logs = istiod_logs(cluster, own.plane), istiod_logs(cluster, other.plane)
        attach.text(f"push lines for {key}", f"{istiod_ref(own.plane)}:\n" + "\n".join(push_lines(own_logs, key))
                    + f"\n\n{istiod_ref(other.plane)}:\n" + "\n".join(push_lines(other_logs, key)))
        problems += check_push_isolation(key, istiod_ref(own.plane), own_logs, istiod_ref(other.plane), other_logs)
        if missing and problems:
            problems.append(missing)
    finally:
        cluster.delete(target, name, namespace)
    assert_no_problems(problems, f"xDS push isolation of a {kind} for {role}")
