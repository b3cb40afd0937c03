"""A run on a cluster whose mesh is a Helm-installed **default** revision (no `default` tag webhook) gives back the
default injector its first install deactivates and the default validator it takes over, exactly, at teardown, by
`./run cleanup` after a kill, and by `./run cleanup` after a teardown that could not finish (issue 26, item 1 and 4;
the model stands in for someone's cluster, as in test_cleanup.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import fixtures.mesh as mesh_fixtures
from fixtures.mesh import session_mesh
from multirev.cleanup import dead_runs, remove_run
from multirev.errors import TeardownIncomplete, WaitTimeout
from multirev.istio import facts
from multirev.kube import kinds
from multirev.plan import MeshPlan
from multirev.profile import load_profile
from multirev.runrecord import find, record_namespace
from tests.someones_model import install_helm_default_mesh, stop_like_existing
from tests.unit.test_cleanup import CLIENT, RUN, _backend, run_killed, silence, snapshot


def _owners_cluster(tmp_path: Path):
    backend = _backend(tmp_path)
    install_helm_default_mesh(backend.cluster)
    return backend, MeshPlan(load_profile("current"), RUN)


def _default_injector(cluster) -> dict:
    return cluster.get(kinds.MUTATING_WEBHOOK, "istio-sidecar-injector")


def _calls(hook: dict) -> set[str]:
    return {f"{w['clientConfig']['service']['namespace']}/{w['clientConfig']['service']['name']}"
            for w in hook["webhooks"]}


def test_the_default_injector_and_validator_are_given_back_exactly(tmp_path: Path) -> None:
    """During the run the owner's default injector selects nothing (its `istio-injection=enabled` namespace gets no
    sidecar) and the default validator calls the run's stable istiod; after teardown both are as they were, and so is
    every other object."""
    backend, plan = _owners_cluster(tmp_path)
    before = snapshot(backend.cluster)
    stable = plan.plane("stable").plane
    with session_mesh(plan, backend, backend.cluster, tmp_path, {CLIENT}):
        injector = _default_injector(backend.cluster)
        assert all(w["namespaceSelector"] == facts.NEVER_MATCH for w in injector["webhooks"]), \
            "the install should have deactivated the owner's default injector"
        validator = backend.cluster.get(kinds.VALIDATING_WEBHOOK, facts.DEFAULT_VALIDATOR)
        assert _calls(validator) == {f"{stable.namespace}/{facts.istiod_name(stable.revision)}"}
    stop_like_existing(backend.cluster, RUN)
    assert snapshot(backend.cluster) == before


def test_a_killed_run_beside_a_default_revision_is_given_back_by_cleanup(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL after set-up: `./run cleanup` puts the owner's default injector and validator back from the record's
    copies, and says so."""
    backend, plan = _owners_cluster(tmp_path)
    before = snapshot(backend.cluster)
    run_killed(plan, backend, tmp_path, monkeypatch)
    assert snapshot(backend.cluster) != before
    silence(backend.cluster)
    lines = remove_run(backend.cluster, dead_runs(backend.cluster)[0])
    assert "gave back MutatingWebhookConfiguration istio-sidecar-injector" in lines
    assert f"gave back ValidatingWebhookConfiguration {facts.DEFAULT_VALIDATOR}" in lines
    assert snapshot(backend.cluster) == before


def test_a_teardown_that_cannot_finish_keeps_the_record_and_cleanup_completes_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The wait for the run's istiods times out: every later give-back step still runs, teardown ends in one
    TeardownIncomplete naming the step, the record stays (the existing backend's stop keeps it), and
    `./run cleanup` finishes the job."""
    backend, plan = _owners_cluster(tmp_path)
    before = snapshot(backend.cluster)

    def times_out(setup: object) -> None:
        raise WaitTimeout("the run's istiod pods to go: not within 180 s; last seen: still running: istiod-x")

    monkeypatch.setattr(mesh_fixtures, "_await_istiods_gone", times_out)
    kept: list[str] = []
    monkeypatch.setattr(backend, "keep_record", kept.append, raising=False)
    with pytest.raises(TeardownIncomplete, match=r"^await the run's istiods gone: WaitTimeout: the run's istiod"), \
            session_mesh(plan, backend, backend.cluster, tmp_path, {CLIENT}):
        pass
    assert kept and kept[0].startswith("TeardownIncomplete: await the run's istiods gone")
    # The steps after the failed wait ran: the owner's webhooks are back, the borrowed labels too.
    injector = before[("MutatingWebhookConfiguration", "", "istio-sidecar-injector")]
    assert _default_injector(backend.cluster)["webhooks"] == injector["webhooks"]
    assert [r.run_id for r in find(backend.cluster)] == [RUN], "the record stays"
    silence(backend.cluster)
    remove_run(backend.cluster, dead_runs(backend.cluster)[0])
    assert backend.cluster.get(kinds.NAMESPACE, record_namespace(RUN)) is None
    assert snapshot(backend.cluster) == before


def test_cleanup_that_cannot_finish_keeps_the_record_for_the_next_try(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A cleanup step that fails (the API server refuses one deletion) does not stop the others, and the record
    stays so that the same command can be run again; the second try completes."""
    backend, plan = _owners_cluster(tmp_path)
    before = snapshot(backend.cluster)
    run_killed(plan, backend, tmp_path, monkeypatch)
    silence(backend.cluster)
    cluster = backend.cluster
    original = cluster.delete

    def refuses_tag_services(kind, name, namespace=None):  # type: ignore[no-untyped-def]
        if kind is kinds.SERVICE and name.startswith("istiod-revision-tag-"):
            raise ConnectionResetError("connection to the API server reset")
        return original(kind, name, namespace)

    monkeypatch.setattr(cluster, "delete", refuses_tag_services)
    with pytest.raises(TeardownIncomplete, match=rf"^the record of run {RUN} stays.*tag services: "
                                                 r"ConnectionResetError") as failed:
        remove_run(cluster, dead_runs(cluster)[0])
    assert "gave back MutatingWebhookConfiguration istio-sidecar-injector" in failed.value.lines  # type: ignore
    assert [r.run_id for r in find(cluster)] == [RUN]
    monkeypatch.setattr(cluster, "delete", original)
    remove_run(cluster, dead_runs(cluster)[0])
    assert snapshot(cluster) == before



def test_purging_a_cluster_that_had_istio_needs_its_own_flag(tmp_path: Path) -> None:
    """--allow-destructive lets the run borrow; it does not let the purge test delete the owner's Istio. Without
    --allow-purge the test is skipped, its reason saying what would be deleted; nothing of the owner's changes."""
    from suites.test_uninstall import test_purge_leaves_nothing

    backend, plan = _owners_cluster(tmp_path)  # the model as someone's cluster, with --allow-destructive
    before = snapshot(backend.cluster)
    assert backend.may_destroy_foreign() and not backend.may_purge_foreign()
    with session_mesh(plan, backend, backend.cluster, tmp_path, {CLIENT}) as setup, \
            pytest.raises(pytest.skip.Exception) as skipped:
        test_purge_leaves_nothing(setup)
    assert str(skipped.value.msg).startswith(
        "refused: the cluster had Istio before this run, and `istioctl uninstall --purge` would delete its Istio "
        "webhook configurations (istio-sidecar-injector, istio-validator-istio-system, istiod-default-validator)")
    assert str(skipped.value.msg).endswith("pass --allow-purge to permit it")
    stop_like_existing(backend.cluster, RUN)
    assert snapshot(backend.cluster) == before


def test_an_uninstall_that_fails_is_named_and_the_rest_is_still_given_back(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`istioctl uninstall --revision` exits non-zero (its exit code was once ignored): teardown names it, still
    gives back the owner's webhooks and labels, and keeps the record; `./run cleanup` finishes."""
    from multirev.commands import Completed
    from multirev.istio.istioctl import Istioctl

    backend, plan = _owners_cluster(tmp_path)
    before = snapshot(backend.cluster)
    canary = plan.plane("canary").plane.revision
    original = Istioctl.uninstall_revision

    def fails_for_canary(self: Istioctl, revision: str, iop_file: Path | None = None) -> Completed:
        if revision == canary:
            return Completed(["istioctl", "uninstall"], 1, "", "Error: could not find target revision\n")
        return original(self, revision, iop_file)

    monkeypatch.setattr(Istioctl, "uninstall_revision", fails_for_canary)
    with pytest.raises(TeardownIncomplete, match=rf"istioctl uninstall --revision {canary} exited 1: Error: could "
                                                 "not find target revision"), \
            session_mesh(plan, backend, backend.cluster, tmp_path, {CLIENT}):
        pass
    injector = before[("MutatingWebhookConfiguration", "", "istio-sidecar-injector")]
    assert _default_injector(backend.cluster)["webhooks"] == injector["webhooks"]
    assert [r.run_id for r in find(backend.cluster)] == [RUN], "the record stays"
    monkeypatch.setattr(Istioctl, "uninstall_revision", original)
    silence(backend.cluster)
    remove_run(backend.cluster, dead_runs(backend.cluster)[0])
    assert snapshot(backend.cluster) == before
