"""On someone's cluster the run changes nothing it did not create: a snapshot diff on a real API server.

The bed (tests/local/existing_bed.py) is the local backend's real control plane, run as `--backend existing`.
It is populated with what a cluster's owner has: a namespace with a Deployment, ConfigMap, Secret and RBAC; an
Istio revision of their own with its `default` tag and CRDs; a namespace labelled `istio-injection=enabled`.
Each run below uses a profile whose stable app namespace is the owner's namespace. After each run every object
that was there before is compared with its "before" (ignoring only server-managed fields), and nothing the run
created may be left. The runs share the bed, in file order.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from multirev.kube import kinds
from multirev.paths import PROJECT_ROOT
from tests.local.conftest import PROFILE
from tests.local.existing_bed import (
    FOREIGN_NAMESPACE,
    ExistingBed,
    Key,
    assert_left_as_it_was,
    await_quiet,
    cleanup_dead_runs,
    create,
    existing_cluster,
    finish_listing_what_set_up_made,
    install_foreign_revision,
    interrupt,
    kill_outright,
    populate_foreign,
    read_until,
    run_suite_on,
    start_suite_on,
)

INJECTED_NAMESPACE = "legacy-injected"  # the owner's namespace with the classic injection label
SET_UP_TESTS = "test_control_plane_installed_and_ready or test_injector_webhooks or test_revision_tag"


@dataclass
class Owned:
    bed: ExistingBed
    before: dict[Key, dict]
    profile: Path


@pytest.fixture(scope="module")
def owned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Owned]:
    tmp = tmp_path_factory.mktemp("ownership")
    with existing_cluster(tmp, run_id="ownership") as bed:
        populate_foreign(bed)
        # Scoped to the owner's injected namespace: one that watched the run's namespaces too would write its own
        # root over the run's there, and the run refuses it (multirev/footprint.py foreign_istiod_refusals).
        result = install_foreign_revision(bed, tmp / "foreign",
                                          discovery_selectors=[{"matchLabels": {"istio-injection": "enabled"}}])
        assert result.returncode == 0, result.stderr
        create(bed.cluster, {"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": INJECTED_NAMESPACE, "labels": {"istio-injection": "enabled"}}})
        before = await_quiet(bed.cluster, timeout=120)
        assert bed.cluster.list(kinds.MUTATING_WEBHOOK, labels={"istio.io/tag": "default"}), \
            "the owner's revision is the cluster's default tag"
        yield Owned(bed, before, _profile_naming(FOREIGN_NAMESPACE, tmp / "profile.yaml"))


def _profile_naming(namespace: str, path: Path) -> Path:
    """The local-dev profile with the owner's namespace as the stable app namespace."""
    profile = yaml.safe_load((PROJECT_ROOT / "multirev" / "profiles" / f"{PROFILE}.yaml").read_text())
    profile["name"] = "names-an-existing-namespace"
    profile["stable"]["app_namespaces"] = [namespace]
    path.write_text(yaml.safe_dump(profile))
    return path


def _assert_left_as_it_was(owned: Owned, what: str) -> None:
    assert_left_as_it_was(owned.bed, owned.before, what)


def _suite(owned: Owned, reports: Path, *args: str):
    return run_suite_on(owned.bed, reports, "--profile-file", str(owned.profile), *args)


def test_a_profile_naming_an_existing_namespace_is_refused_in_one_line(owned: Owned, tmp_path: Path) -> None:
    run = _suite(owned, tmp_path / "reports", "-q", "-k", SET_UP_TESTS)
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR:")]
    assert run.returncode != 0 and len(errors) == 1, run.output[-3000:]
    assert f"namespace {FOREIGN_NAMESPACE} already exists" in errors[0] and "--allow-destructive" in errors[0]
    _assert_left_as_it_was(owned, "a refused run")


@pytest.mark.parametrize("layout", ["separate", "shared"])
def test_a_passing_run_with_allow_destructive_gives_everything_back(owned: Owned, tmp_path: Path, layout: str,
                                                                    record_property: pytest.RecordProperty) -> None:
    """The owner's namespace is borrowed (labelled for the stable tag during the run) and given back; the owner's
    revision, default tag and CRDs are as they were; nothing the run made survives (in the shared layout that
    includes istio-system, which the run created, and what istiod wrote there)."""
    reports = tmp_path / "reports"
    proc = start_suite_on(owned.bed, reports, "-s", "-q", "--profile-file", str(owned.profile), "--allow-destructive",
                          "--layout", layout, "-k", SET_UP_TESTS)
    created, report, output = finish_listing_what_set_up_made(owned.bed, proc, reports,
                                                              "istioctl tag set canary -> 1-31-dev: done", owned.before)
    outcomes = {t["nodeid"]: t["outcome"] for feature in report["features"].values() for t in feature["tests"]}
    assert outcomes and set(outcomes.values()) == {"passed"}, f"{outcomes}\n{output[-4000:]}"
    record_property("objects_compared", len(owned.before))
    record_property("objects_created", len(created))
    assert any(key.kind == "Deployment" and key.name.startswith("istiod-") for key in created), created
    _assert_left_as_it_was(owned, "a passing run")
    still_there = set(created) & set(await_quiet(owned.bed.cluster, timeout=120))
    assert not still_there, f"created by the run and still there: {sorted(still_there)}"


def test_a_run_failing_half_way_through_set_up_gives_everything_back(owned: Owned, tmp_path: Path) -> None:
    """Both revisions and the stable tag are in when `tag set` of the canary's tag dies: the run errors, and its
    teardown still removes all of it and gives the borrowed namespace back."""
    run = _suite(owned, tmp_path / "reports", "-q", "--allow-destructive", "-k", SET_UP_TESTS,
                 "-p", "tests.plugins.canary_tag_set_fails")
    assert run.returncode != 0 and "connection reset during `istioctl tag set canary`" in run.output, \
        run.output[-3000:]
    _assert_left_as_it_was(owned, "a run that failed during set-up")


def test_an_interrupted_run_gives_everything_back(owned: Owned, tmp_path: Path) -> None:
    """Ctrl-C while the canary revision installs: pytest's teardown removes what the run had made."""
    proc = start_suite_on(owned.bed, tmp_path / "reports", "-s", "-q", "--profile-file", str(owned.profile),
                          "--allow-destructive", "-k", SET_UP_TESTS)
    seen = read_until(proc, "istioctl install revision 1-31-dev")
    assert seen and "istioctl install revision 1-31-dev" in seen[-1], "\n".join(seen[-20:])
    time.sleep(3)  # into the install itself
    assert interrupt(proc) != 0, "an interrupted run must not report success"
    _assert_left_as_it_was(owned, "an interrupted run")


# Where a run is killed outright: the tests it runs, a line of its live output, and how long after that line.
KILL_POINTS = {
    "during the canary install": (SET_UP_TESTS, "istioctl install revision 1-31-dev", 3.0),
    "after set-up": (SET_UP_TESTS, "istioctl tag set canary -> 1-31-dev: done", 5.0),
    # The upgrade moves the owner's namespace (the stable app namespace here): its labels are the canary's then.
    "during the upgrade": ("test_canary_upgrade", "[multirev] relabel namespace", 1.0),
}


@pytest.mark.parametrize("kill_point", list(KILL_POINTS))
def test_a_run_killed_outright_is_removed_by_cleanup(owned: Owned, tmp_path: Path, kill_point: str) -> None:
    """SIGKILL to the run and every process it started (istioctl among them): no teardown runs. `./run cleanup
    --all-dead` then finds the run by its record (same host, process gone), removes what it made and gives back
    what it borrowed, the owner's namespace labels and CRDs as they were included (the canary, 1.31, rewrites the
    CRDs the owner's 1.30 made)."""
    tests, line, delay = KILL_POINTS[kill_point]
    proc = start_suite_on(owned.bed, tmp_path / "reports", "-s", "-q", "--profile-file", str(owned.profile),
                          "--allow-destructive", "-k", tests)
    seen = read_until(proc, line)
    assert seen and line in seen[-1], "\n".join(seen[-20:])
    time.sleep(delay)
    assert kill_outright(proc) == -signal.SIGKILL
    assert owned.bed.cluster.list(kinds.NAMESPACE, labels={"conformance.multirev.io/record": "true"}), \
        "the killed run should have left its record"
    cleanup = cleanup_dead_runs(owned.bed)
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    assert "deleted Namespace multirev-run-" in cleanup.stdout, cleanup.stdout + cleanup.stderr
    _assert_left_as_it_was(owned, f"a run killed {kill_point}, after ./run cleanup")
