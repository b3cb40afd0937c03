"""Every catalog fault fails exactly the conformance tests it names, and a healthy mesh fails none."""

from __future__ import annotations

from pathlib import Path

import pytest

from multirev.istio.capabilities import supports
from multirev.profile import load_profile
from tests.suite_runner import catalog, run_suites

CATALOG = catalog()


def matches(node: str, prefixes: list[str]) -> bool:
    return any(node == p or node.startswith(p) for p in prefixes)


@pytest.mark.parametrize(("profile", "layout"), [("reference", "separate"), ("current", "separate"),
                                                 ("current", "shared"), ("reference", "shared"),
                                                 ("local-dev-default", "separate"), ("local-dev-default", "shared")])
def test_healthy_mesh_passes_every_check(tmp_path: Path, profile: str, layout: str) -> None:
    """A mesh with no fault must never fail the suite."""
    run = run_suites(tmp_path, "--backend", "simulated", "--profile", profile, "--layout", layout)
    assert run.returncode == 0, run.output[-3000:]
    assert run.outcomes and not run.failed()


def test_a_distroless_mesh_passes_every_check(tmp_path: Path) -> None:
    """`--variant distroless`: istiod and every proxy run `<image>:<version>-distroless`, the same version, and no
    check takes the suffix for another version (issue 26, item 3)."""
    run = run_suites(tmp_path, "--backend", "simulated", "--profile", "current", "--variant", "distroless")
    assert run.returncode == 0, run.output[-3000:]
    assert run.outcomes and not run.failed()


def test_catalog_is_well_formed() -> None:
    """--sim-list-faults prints name, description and must_fail for at least the issue's faults."""
    names = {f["name"] for f in CATALOG}
    assert {"tag-webhook-wrong-namespace", "injection-label-conflict", "proxy-version-skew",
            "istiod-never-ready"} <= names
    for entry in CATALOG:
        assert {"name", "description", "must_fail"} <= set(entry) <= {"name", "description", "must_fail",
                                                                        "must_fail_when"}
        assert entry["description"] and (entry["must_fail"] or entry.get("must_fail_when"))


def _affects(entry: dict, profile: str) -> bool:
    """Whether the fault must fail anything on the profile's pair: a fault of a feature the pair skips (must_fail_when
    only, a capability its canary lacks) has nothing to fail there, and the healthy run of that pair already shows
    that nothing else does."""
    canary = load_profile(profile).plane("canary").version
    return bool(entry["must_fail"]) or any(supports(canary, cap) for cap in entry.get("must_fail_when", {}))


MATRIX = [(f["name"], profile) for f in CATALOG for profile in ("reference", "current") if _affects(f, profile)]


@pytest.mark.parametrize(("fault", "profile"), MATRIX)
def test_fault_fails_exactly_its_checks(tmp_path: Path, fault: str, profile: str) -> None:
    """With the fault injected, the failing tests are exactly those its must_fail names."""
    _fails_exactly(tmp_path, fault, profile, "separate")


# Faults whose must_fail holds in the shared layout too (both istiods in istio-system, where a webhook or a push that
# reaches the other revision still finds a Service in its namespace): checked there as well.
BOTH_LAYOUTS = ["validator-calls-other-istiod", "tag-webhook-object-entry-calls-other-istiod",
                "stable-istiod-pushes-canary-destinationrules", "stable-istiod-pushes-canary-gateways",
                "stable-istiod-pushes-canary-serviceentries", "uninstall-prunes-base",
                "uninstall-removes-other-configmaps", "uninstall-removes-other-service", "uninstall-removes-other-tags",
                "uninstall-unlabels-other-namespaces", "canary-samples-leak-into-stable-gateway"]


@pytest.mark.parametrize("profile", ["reference", "current"])
@pytest.mark.parametrize("fault", BOTH_LAYOUTS)
def test_fault_fails_exactly_its_checks_in_the_shared_layout(tmp_path: Path, fault: str, profile: str) -> None:
    """The same in the shared layout, for the faults listed there."""
    _fails_exactly(tmp_path, fault, profile, "shared")


def _fails_exactly(tmp_path: Path, fault: str, profile: str, layout: str) -> None:
    entry = next(f for f in CATALOG if f["name"] == fault)
    canary = load_profile(profile).plane("canary").version
    must_fail = [*entry["must_fail"], *(test for capability, tests in entry.get("must_fail_when", {}).items()
                                       if supports(canary, capability) for test in tests)]
    run = run_suites(tmp_path, "--backend", "simulated", "--profile", profile, "--layout", layout,
                     "--sim-fault", fault)
    assert run.returncode == 1, run.output[-3000:]
    unexpected = {n for n in run.failed() if not matches(n, must_fail)}
    missing = [p for p in must_fail if not any(matches(n, [p]) for n in run.failed())]
    assert not unexpected, f"{fault} also failed {sorted(unexpected)}"
    assert not missing, f"{fault} did not fail {missing}"


def test_every_conformance_test_can_fail(tmp_path: Path) -> None:
    """Each collected conformance test is named by at least one fault's must_fail."""
    run = run_suites(tmp_path, "--backend", "simulated")
    prefixes = [p for f in CATALOG for p in [*f["must_fail"], *(t for tests in f.get("must_fail_when", {}).values()
                                                                 for t in tests)]]
    uncovered = sorted(node for node in run.outcomes if not matches(node, prefixes))
    assert not uncovered, f"no fault proves these can fail: {uncovered}"


# For the faults of the uninstall test (one test, several checks): the problem each one must be named by.
UNINSTALL_MESSAGES = {
    "uninstall-prunes-base": ["CustomResourceDefinition virtualservices.networking.istio.io (an Istio CRD) existed "
                              "before the uninstall and is gone",
                              "VirtualService app-stable/bookinfo (Istio config in app-stable) existed before"],
    "uninstall-removes-other-configmaps": ["ConfigMap istio-stable/istio-1-29-6 (revision 1-29-6's istiod reads it) "
                                           "does not exist", "ConfigMap istio-stable/istio-sidecar-injector-1-29-6"],
    "uninstall-removes-other-service": ["Service istio-stable/istiod-1-29-6 (what revision 1-29-6's webhooks and "
                                        "proxies call) does not exist",
                                        "Deployment app-stable/injected-after-uninstall cannot create pods"],
    "uninstall-removes-other-tags": ["MutatingWebhookConfiguration istio-revision-tag-stable-istio-stable (revision "
                                     "1-29-6's tag object) existed before the uninstall and is gone"],
    "uninstall-unlabels-other-namespaces": ["Pod app-stable/injected-after-uninstall-", "has no sidecar"],
}


@pytest.mark.parametrize("fault", sorted(UNINSTALL_MESSAGES))
def test_uninstall_faults_are_named_by_their_own_check(tmp_path: Path, fault: str) -> None:
    """Each uninstall fault fails the uninstall test with the problem its check names, not only some problem."""
    run = run_suites(tmp_path, "--backend", "simulated", "--profile", "current", "--sim-fault", fault,
                     "-k", "uninstall_one_revision")
    message = run.message("suites/test_uninstall.py::test_uninstall_one_revision_keeps_the_other")
    missing = [text for text in UNINSTALL_MESSAGES[fault] if text not in message]
    assert not missing, f"{fault}: {missing} not in\n{message}"


def test_leaked_route_is_named_with_gateway_host_and_path(tmp_path: Path) -> None:
    """A route of the canary served by the stable gateway is reported with the gateway it leaked into, the canary's
    host and path, and the gateway that should be the only one to route them."""
    run = run_suites(tmp_path, "--backend", "simulated", "--profile", "current",
                     "--sim-fault", "canary-samples-leak-into-stable-gateway", "-k", "unrouted")
    assert run.failed() == {"suites/test_gateway_traffic.py::test_unrouted_host_gets_404[stable]"}
    message = run.message("suites/test_gateway_traffic.py::test_unrouted_host_gets_404[stable]")
    assert ("GET /echo with Host samples.canary.example, which only the canary gateway istio-ingressgateway "
            "(revision 1-30-3) routes, through the stable gateway (istio-ingressgateway, revision 1-29-6) returned "
            "HTTP 503") in message, message


def test_failure_messages_name_object_and_problem(tmp_path: Path) -> None:
    """The wrong-namespace tag webhook is reported with the webhook, the missing Service and the fix."""
    run = run_suites(tmp_path, "--backend", "simulated", "--profile", "reference",
                     "--sim-fault", "tag-webhook-wrong-namespace")
    message = run.message("suites/test_webhooks.py::test_injector_webhooks_point_at_existing_services")
    assert "istio-revision-tag-prod-canary-istio-canary" in message
    assert "istio-system/istiod-1-19-3, which does not exist" in message
    assert "istioctl tag set prod-canary --revision 1-19-3 -i istio-canary --overwrite" in message


PLUGIN = '''
from multirev.faults import fault

@fault("plugin-wrong-proxy", "a plugin fault: canary proxies run a custom build (a tag of no Istio version)",
       must_fail=["suites/test_injection.py::test_workloads_injected_by_intended_revision[canary]",
                  "suites/test_canary_upgrade.py::test_canary_upgrade_and_rollback"])
def install(hooks):
    hooks.add("proxy_image", lambda image, *, version, **ctx: image + "-custom" if version.minor == 19 else image)
'''


def test_fault_plugin_registers_and_fails_what_it_declares(tmp_path: Path) -> None:
    """A fault written in a user's file joins the catalog and behaves like a built-in one."""
    plugin = tmp_path / "my_faults.py"
    plugin.write_text(PLUGIN)
    names = {f["name"] for f in catalog(f"--sim-fault-plugin={plugin}")}
    assert "plugin-wrong-proxy" in names
    run = run_suites(tmp_path / "r", "--backend", "simulated", "--profile", "reference",
                     "--sim-fault-plugin", str(plugin), "--sim-fault", "plugin-wrong-proxy")
    assert run.failed() == {"suites/test_injection.py::test_workloads_injected_by_intended_revision[canary]",
                            "suites/test_canary_upgrade.py::test_canary_upgrade_and_rollback"}


def test_canary_selection_runs_alone_without_uninstall(tmp_path: Path) -> None:
    """`-k canary` is the pre-upgrade set: it passes on its own and never selects an uninstall test."""
    run = run_suites(tmp_path, "--backend", "simulated", "-k", "canary")
    assert run.returncode == 0, run.output[-3000:]
    assert not any("test_uninstall" in node for node in run.outcomes)
    for needed in ("test_control_planes", "test_revision_tags", "test_injection", "test_webhooks",
                   "test_gateway_traffic", "test_canary_upgrade"):
        assert any(needed in node for node in run.outcomes), needed


def test_docs_list_every_fault() -> None:
    """docs/faults.md keeps up with the catalog."""
    from multirev.paths import PROJECT_ROOT
    text = (PROJECT_ROOT / "docs" / "faults.md").read_text()
    assert [f["name"] for f in CATALOG if f"`{f['name']}`" not in text] == []
