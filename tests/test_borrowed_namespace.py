"""On an existing cluster with --allow-destructive, an app namespace that exists is borrowed, and what was in it is
the user's: its workloads are neither judged nor restarted (issue 16, finding 5). The run's workloads carry the
run-id label on their pod templates (multirev/manifests.py labels_pod_template), and every observation of workload
pods and every restart selects on it (multirev/observe.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from multirev import manifests
from multirev.istio import facts
from multirev.kube.objects import labels_of
from multirev.paths import MANIFESTS
from multirev.plan import RUN_ID_LABEL
from multirev.profile import load_profile
from tests.plugins.borrowed_app_namespace import USER_APP, user_deployment
from tests.suite_runner import run_suites

INJECTION = "suites/test_injection.py::test_workloads_injected_by_intended_revision"
UPGRADE = "suites/test_canary_upgrade.py::test_canary_upgrade_and_rollback"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"  # what `rollout restart` sets (multirev/backends/kube.py)


def _manifests() -> list[str]:
    """Every manifest set-up may apply from this project (the release samples' stand-ins included)."""
    return sorted(str(p.relative_to(MANIFESTS)) for p in MANIFESTS.rglob("*.yaml")
                  if p.relative_to(MANIFESTS).parts[0] != "istio")


@pytest.mark.parametrize("declared", _manifests())
def test_the_run_label_is_on_every_pod_template_and_selectors_still_match(declared: str) -> None:
    """The label goes on the template only: the selector is unchanged (it is immutable) and still matches the
    template's labels, which the API server requires of a Deployment."""
    run = {RUN_ID_LABEL: "run1"}
    variables = {"REVISION": "rev", "TAG": "tag", "HOST": "host.example"}
    originals = [d for d in yaml.safe_load_all((MANIFESTS / declared).read_text()) if d]
    for rendered, original in zip(manifests.render(declared, "ns", run, variables=variables), originals,
                                  strict=True):
        if rendered["kind"] not in manifests.POD_TEMPLATE_KINDS:
            continue
        template = rendered["spec"]["template"]["metadata"]["labels"]
        assert template[RUN_ID_LABEL] == "run1", rendered["metadata"]["name"]
        assert rendered["spec"].get("selector") == original["spec"].get("selector")
        selector = (rendered["spec"].get("selector") or {}).get("matchLabels") or {}
        assert selector.items() <= template.items(), rendered["metadata"]["name"]


@pytest.mark.parametrize("layout", ["separate", "shared"])
def test_a_users_own_deployment_in_a_borrowed_app_namespace_is_neither_judged_nor_restarted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str) -> None:
    """The stable app namespace exists and holds the user's Deployment, whose pod has no sidecar. Before the fix the
    injection test failed for stable on that pod ("has no sidecar"), and the canary upgrade restarted it (its
    template gained kubectl.kubernetes.io/restartedAt and its pod was re-injected)."""
    namespace = load_profile("current", layout=layout).stable.app_namespaces[0]
    dump = tmp_path / "borrowed.json"
    monkeypatch.setenv("BORROWED_NAMESPACE", namespace)
    monkeypatch.setenv("BORROWED_NAMESPACE_DUMP", str(dump))
    run = run_suites(tmp_path / "reports", "--backend", "simulated", "--layout", layout,
                     "-p", "tests.plugins.borrowed_app_namespace",
                     "-k", "test_workloads_injected_by_intended_revision or test_canary_upgrade_and_rollback")
    failed = {node: run.message(node) for node in sorted(run.failed())}
    assert run.returncode == 0 and not failed, failed or run.output[-3000:]
    assert {f"{INJECTION}[stable]", f"{INJECTION}[canary]", UPGRADE} <= set(run.outcomes)
    assert {entry["outcome"] for entry in run.outcomes.values()} == {"passed"}

    after = json.loads(dump.read_text())
    assert after["deployment"] is not None, "the user's Deployment is gone"
    template = after["deployment"]["spec"]["template"]
    assert RESTARTED_AT not in (template["metadata"].get("annotations") or {})
    assert template == user_deployment(namespace)["spec"]["template"], "the user's pod template was changed"
    assert len(after["pods"]) == 1, [p["metadata"]["name"] for p in after["pods"]]
    pod = after["pods"][0]
    assert facts.SIDECAR_STATUS_ANNOTATION not in (pod["metadata"].get("annotations") or {}), "re-injected"
    assert "deletionTimestamp" not in pod["metadata"]
    assert labels_of(pod)["app"] == USER_APP and RUN_ID_LABEL not in labels_of(pod)
    # Given back as it was (footprint.give_back), the name label the API server adds aside.
    assert labels_of(after["namespace"]) == {"team": "shop", "kubernetes.io/metadata.name": namespace}
