"""--installer helm on someone's cluster: a snapshot diff on a real API server, after a passing run and after a run
killed outright and `./run cleanup`.

The bed (tests/local/existing_bed.py) holds no Istio (a run with Helm refuses a cluster that has Istio's CRDs:
multirev/footprint.py), the owner's namespace with its workload, and an `istio-system` of the owner's with a
ConfigMap in it, which the shared layout borrows: Helm's releases for both revisions go there. The suite gets the
Helm the local backend built, with --helm-bin (the download's pinned sums are upstream's archives).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from multirev.backends.local import build
from multirev.kube import kinds
from tests.local.existing_bed import (
    ExistingBed,
    Key,
    assert_left_as_it_was,
    await_quiet,
    cleanup_dead_runs,
    existing_cluster,
    finish_listing_what_set_up_made,
    kill_outright,
    populate_foreign,
    read_until,
    start_suite_on,
)

SET_UP_TESTS = "test_control_plane_installed_and_ready or test_injector_webhooks or test_revision_tag"
TAGGED = "helm tag set canary -> 1-31-dev: done"
OWNERS_ISTIO_SYSTEM = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system", "labels": {"team": "mesh"}}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mesh-notes", "namespace": "istio-system"},
     "data": {"owner": "the mesh team"}},
]


@dataclass
class Bed:
    bed: ExistingBed
    before: dict[Key, dict]


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    tmp = tmp_path_factory.mktemp("existing-helm")
    with existing_cluster(tmp, run_id="helmbed") as existing:
        populate_foreign(existing)
        populate_foreign(existing, OWNERS_ISTIO_SYSTEM)
        yield Bed(existing, await_quiet(existing.cluster, timeout=120))


def _start(bed: Bed, reports: Path) -> object:
    helm = build.helm_recipe().folder(build.default_bin_cache()) / "helm"
    return start_suite_on(bed.bed, reports, "-s", "-q", "--installer", "helm", "--helm-bin", str(helm),
                          "--layout", "shared", "-k", SET_UP_TESTS)


def _assert_left_as_it_was(bed: Bed, what: str) -> None:
    assert_left_as_it_was(bed.bed, bed.before, what, leases_in=("istio-system",))


def test_a_passing_helm_run_gives_everything_back(bed: Bed, tmp_path: Path,
                                                  record_property: pytest.RecordProperty) -> None:
    """Both revisions, their gateways and base installed by Helm into the owner's istio-system, checked, then
    uninstalled: the owner's objects are as they were and nothing of the run is left, Helm's release records and
    the CRDs its base release keeps included."""
    reports = tmp_path / "reports"
    created, report, output = finish_listing_what_set_up_made(bed.bed, _start(bed, reports), reports, TAGGED,
                                                              bed.before)
    assert report["installer"] == "helm"
    outcomes = {t["nodeid"]: t["outcome"] for feature in report["features"].values() for t in feature["tests"]}
    # Helm makes no `default` tag, so the check of what it decides is skipped with that reason; every other passes.
    no_default_tag = {n for n in outcomes if "test_istio_injection_enabled_follows_the_default_tag" in n}
    assert outcomes and {o for n, o in outcomes.items() if n not in no_default_tag} == {"passed"} \
        and {outcomes[n] for n in no_default_tag} <= {"skipped"}, f"{outcomes}\n{output[-4000:]}"
    record_property("objects_created", len(created))
    assert any(key.kind == "Secret" and key.name.startswith("sh.helm.release.v1.") for key in created), created
    assert any(key.kind == "CustomResourceDefinition" for key in created), created
    _assert_left_as_it_was(bed, "a passing Helm run")


# Where a Helm run is killed outright: a line of its live output, and how long after it. The run's tests start
# right after set-up and take seconds on the bed, so "after set-up" kills at once.
KILL_POINTS = {"during the canary install": ("helm install revision 1-31-dev", 3.0), "after set-up": (TAGGED, 0.5)}


@pytest.mark.parametrize("kill_point", list(KILL_POINTS))
def test_a_killed_helm_run_is_removed_by_cleanup(bed: Bed, tmp_path: Path, kill_point: str) -> None:
    """SIGKILL: no teardown runs. `./run cleanup --all-dead` removes what the run's Helm releases made (found by
    Helm's release annotations: the CRDs the base release keeps carry no revision label), the releases' records (by
    the run label), what the run's istiods wrote into the owner's istio-system, and gives its labels back."""
    line, delay = KILL_POINTS[kill_point]
    proc = _start(bed, tmp_path / "reports")
    seen = read_until(proc, line)
    assert line in seen[-1], "\n".join(seen[-20:])
    time.sleep(delay)
    assert kill_outright(proc) == -signal.SIGKILL
    assert bed.bed.cluster.list(kinds.NAMESPACE, labels={"conformance.multirev.io/record": "true"})
    cleanup = cleanup_dead_runs(bed.bed)
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    assert "deleted CustomResourceDefinition " in cleanup.stdout, cleanup.stdout
    _assert_left_as_it_was(bed, f"a Helm run killed {kill_point}, after ./run cleanup")
