"""Each revision's istiod pushes its own namespaces' config, and the other istiod does not."""

from __future__ import annotations

import pytest

from fixtures.mesh import MeshSetup
from multirev import attach
from multirev.checks.xds import check_push_isolation, push_lines
from multirev.conformance import conformance
from multirev.istio import facts
from multirev.kube import kinds
from multirev.observe import istiod_logs, istiod_ref
from multirev.waits import Observation, wait_problem
from suites.conftest import assert_no_problems

PUSH_TIMEOUT = 60.0
# After the own istiod pushed, how long the other one gets to (wrongly) push too.
GRACE = 15.0


@pytest.mark.parametrize("role", ["stable", "canary"])
@conformance(feature="xds-isolation", canary=True)
def test_config_pushed_only_by_own_istiod(mesh: MeshSetup, role: str) -> None:
    """Certifies that after a VirtualService is applied in an app namespace, the istiod of that namespace's
    revision logs `Push debounce stable[...] ... for config VirtualService/<ns>/<name>` within a bounded time,
    and the other istiod logs no push for it. The push line names only the first config of a batch, so the
    probe is a uniquely named object applied alone. In the separate layout isolation comes from
    discoverySelectors; in the shared layout the probe carries istio.io/rev=<revision>, which only that
    revision reads (pkg/config/model.go)."""
    plan = mesh.plan
    own, other = plan.plane(role), plan.plane("canary" if role == "stable" else "stable")
    namespace = own.plane.app_namespaces[0]
    name = f"xds-probe-{plan.run_id}-{role}"
    labels = {**plan.run_labels}
    if not own.uses_discovery_selectors:
        labels[facts.REV_LABEL] = own.plane.revision
    probe = {"apiVersion": kinds.VIRTUAL_SERVICE.api_version, "kind": "VirtualService",
             "metadata": {"name": name, "namespace": namespace, "labels": labels},
             "spec": {"hosts": [f"{name}.{namespace}.svc.cluster.local"],
                      "http": [{"route": [{"destination": {"host": "productpage"}}]}]}}
    key = f"VirtualService/{namespace}/{name}"
    cluster = mesh.cluster
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
        cluster.delete(kinds.VIRTUAL_SERVICE, name, namespace)
    assert_no_problems(problems, f"xDS push isolation for {role}")
