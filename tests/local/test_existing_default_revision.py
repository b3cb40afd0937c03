"""A run on a cluster whose mesh is a Helm-installed **default** revision, on the real API server: nothing of the
owner's may differ afterwards, for a passing run, a failing one, Ctrl-C, and SIGKILL followed by `./run cleanup`
(issue 26, item 1).

The owner's mesh is what Istio's Helm install page makes (istio@1.30-dev: manifests/charts/base with
`defaultRevision: default`, manifests/charts/istio-control/istio-discovery without a revision): istiod `istiod` in
istio-system, its injector `istio-sidecar-injector` (istio.io/rev=default) injecting the owner's
`istio-injection=enabled` namespace, `istio-validator-istio-system` and the base chart's `istiod-default-validator`,
and **no** `istio.io/tag=default` webhook. So the run's first `istioctl install` makes a `default` tag, and in doing so
deactivates the owner's injector and takes over the owner's default validator (istio@1.30.3:
operator/pkg/webhook/webhook.go, istioctl/pkg/tag/util.go DeactivateIstioInjectionWebhook); the run must give both
back exactly (multirev/webhook_record.py). The owner's istiod runs for real and selects only namespaces labelled
`mesh-team/discovery=enabled`, which none of the run's are (else the run refuses it: multirev/footprint.py).

The bed (tests/local/existing_bed.py) runs no proxies, so the runs select the tests that set up and observe through
the API server.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from multirev.istio import facts, helm
from multirev.istio.versions import IstioVersion
from multirev.kube import kinds
from multirev.waits import Observation, wait_for
from tests.local.existing_bed import (
    ExistingBed,
    Key,
    assert_left_as_it_was,
    await_quiet,
    cleanup_dead_runs,
    create,
    existing_cluster,
    interrupt,
    kill_outright,
    populate_foreign,
    read_until,
    run_suite_on,
    start_suite_on,
)

OWNER_NAMESPACE = "istio-system"
SHOP = "shop"  # the owner's app namespace, injected by the default revision
DISCOVERY = {"mesh-team/discovery": "enabled"}
SET_UP_TESTS = "test_control_plane_installed_and_ready or test_injector_webhooks or test_revision_tag"
TAGGED = "istioctl tag set canary -> 1-31-dev: done"
CANARY_INSTALL = "istioctl install revision 1-31-dev"


@dataclass
class Bed:
    bed: ExistingBed
    before: dict[Key, dict]


def _install_owners_default_revision(bed: ExistingBed, work: Path) -> None:
    """base (CRDs and the default validator, for revision `default`) and istiod without a revision, by Helm, as the
    owner did; then the owner's injected workload."""
    version = IstioVersion.parse(bed.versions[0])
    tool = bed.backend.helm(work)  # inside the bed's network namespace, where its API server listens
    charts, image = bed.backend.charts_dir(version), bed.backend.chart_image(version)
    create(bed.cluster, {"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": OWNER_NAMESPACE, "labels": {**DISCOVERY, "team": "mesh"}}})
    base = tool.upgrade_install(helm.BASE_RELEASE, charts / helm.BASE_CHART, OWNER_NAMESPACE,
                                helm.base_values(OWNER_NAMESPACE, "default"))
    assert base.returncode == 0, base.stderr
    istiod = tool.upgrade_install("istiod", charts / helm.ISTIOD_CHART, OWNER_NAMESPACE, {
        "revision": "", "global": {**image, "istioNamespace": OWNER_NAMESPACE},
        "meshConfig": {"discoverySelectors": [{"matchLabels": DISCOVERY}]}})
    assert istiod.returncode == 0, istiod.stderr
    assert bed.cluster.list(kinds.MUTATING_WEBHOOK, labels={facts.TAG_LABEL: facts.DEFAULT_TAG}) == [], \
        "a Helm-installed default revision has no default tag webhook"
    labels = {"app": "storefront"}
    populate_foreign(bed, [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": SHOP, "labels": {**DISCOVERY, facts.INJECTION_LABEL: "enabled", "team": "shop"}}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "storefront", "namespace": SHOP},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"containers": [{"name": "app", "image": "example.invalid/storefront:1"}]}}}},
    ], settle=180)
    [pod] = bed.cluster.list(kinds.POD, SHOP)
    assert (pod["metadata"].get("annotations") or {}).get(facts.REV_ANNOTATION) == "default", \
        "the owner's injector should have injected the owner's pod"


@pytest.fixture(scope="module")
def owned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    tmp = tmp_path_factory.mktemp("default-revision")
    with existing_cluster(tmp, run_id="defaultbed") as bed:
        populate_foreign(bed)
        _install_owners_default_revision(bed, tmp / "owner")
        yield Bed(bed, await_quiet(bed.cluster, timeout=180))


def _suite(*args: str) -> tuple[str, ...]:
    # Two Istio versions rewrite the owner's CRDs (given back at the end): --allow-destructive.
    return ("--allow-destructive", "-q", *args)


def _assert_left_as_it_was(owned: Bed, what: str) -> None:
    assert_left_as_it_was(owned.bed, owned.before, what)


def test_a_passing_run_gives_back_the_default_injector_and_validator(owned: Bed, tmp_path: Path) -> None:
    """Both revisions installed beside the owner's default revision, checked, removed: the owner's injector is
    active again, its default validator calls its own istiod, and nothing of the owner's differs."""
    run = run_suite_on(owned.bed, tmp_path / "reports", *_suite("-k", SET_UP_TESTS))
    outcomes = {n: o["outcome"] for n, o in run.outcomes.items()}
    assert run.returncode == 0 and outcomes and set(outcomes.values()) == {"passed"}, run.output[-4000:]
    _assert_left_as_it_was(owned, "a passing run beside the owner's default revision")


def test_a_failing_run_gives_back_the_default_injector_and_validator(owned: Bed, tmp_path: Path) -> None:
    """Real misuse on the owner's side, a namespace labelled for a tag that no longer exists: the run fails the
    namespace-label check naming it, and gives everything back all the same."""
    namespace = {"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": "left-on-a-retired-tag", "labels": {facts.REV_LABEL: "prod-retired"}}}
    create(owned.bed.cluster, namespace)
    try:
        run = run_suite_on(owned.bed, tmp_path / "reports", *_suite(
            "-k", f"{SET_UP_TESTS} or test_every_namespace_label_names_an_existing_tag_or_revision"))
        assert run.returncode == 1, run.output[-4000:]
        failed = {n: o["message"] for n, o in run.outcomes.items() if o["outcome"] == "failed"}
        [(nodeid, message)] = failed.items()
        assert "test_every_namespace_label_names_an_existing_tag_or_revision" in nodeid
        assert "Namespace left-on-a-retired-tag is labelled istio.io/rev=prod-retired" in message, message
    finally:
        _delete_namespace(owned.bed, "left-on-a-retired-tag")
    _assert_left_as_it_was(owned, "a failing run beside the owner's default revision")


def test_an_interrupted_run_gives_back_the_default_injector_and_validator(owned: Bed, tmp_path: Path) -> None:
    """Ctrl-C during the canary's install, the stable one having made the default tag (and so deactivated the owner's
    injector and taken over its default validator): pytest's teardown gives everything back."""
    proc = start_suite_on(owned.bed, tmp_path / "reports", "-s", *_suite("-k", SET_UP_TESTS))
    seen = read_until(proc, CANARY_INSTALL)
    assert seen and CANARY_INSTALL in seen[-1], "\n".join(seen[-20:])
    time.sleep(3.0)
    assert interrupt(proc) != 0, "an interrupted run must not report success"
    _assert_left_as_it_was(owned, "an interrupted run beside the owner's default revision")


def test_a_killed_run_is_given_back_by_cleanup(owned: Bed, tmp_path: Path) -> None:
    """SIGKILL during the canary's install, the stable one having made the default tag: no teardown. The owner's
    injector then selects nothing and its default validator calls the run's istiod; `./run cleanup --all-dead` gives
    both back from the record's copies, and removes the rest. (Killed later, the run may already be in its teardown,
    whose first step gives them back.)"""
    proc = start_suite_on(owned.bed, tmp_path / "reports", "-s", *_suite("-k", SET_UP_TESTS))
    seen = read_until(proc, CANARY_INSTALL)
    assert seen and CANARY_INSTALL in seen[-1], "\n".join(seen[-20:])
    time.sleep(3.0)
    assert kill_outright(proc) == -signal.SIGKILL
    cluster = owned.bed.cluster
    injector = cluster.get(kinds.MUTATING_WEBHOOK, "istio-sidecar-injector")
    assert all(w.get("namespaceSelector") == facts.NEVER_MATCH for w in injector["webhooks"]), \
        f"the run's install should have deactivated the owner's injector: {injector['webhooks']}"
    validator = cluster.get(kinds.VALIDATING_WEBHOOK, facts.DEFAULT_VALIDATOR)
    assert {w["clientConfig"]["service"]["name"] for w in validator["webhooks"]} == {"istiod-1-30-dev"}, validator
    cleanup = cleanup_dead_runs(owned.bed)
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    assert "gave back MutatingWebhookConfiguration istio-sidecar-injector" in cleanup.stdout, cleanup.stdout
    assert f"gave back ValidatingWebhookConfiguration {facts.DEFAULT_VALIDATOR}" in cleanup.stdout, cleanup.stdout
    _assert_left_as_it_was(owned, "a run killed beside the owner's default revision, after ./run cleanup")


def _delete_namespace(bed: ExistingBed, name: str) -> None:
    cluster = bed.cluster
    cluster.delete(kinds.NAMESPACE, name)

    def gone() -> Observation[None]:
        left = cluster.get(kinds.NAMESPACE, name)
        return Observation(left is None, None, "gone" if left is None else "still there")

    wait_for(f"Namespace {name} to be gone", gone, clock=cluster.clock, timeout=60)
