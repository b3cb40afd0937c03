"""The Gateway API CRDs on someone's cluster (issue 28): the `gateway-api` feature borrows the CRDs a cluster has and
never changes or deletes them; where it has none, the run is refused in one line before anything is made, or with
--allow-destructive installs them (from the release manifest, sha256-pinned) and removes them at its end.

The bed (tests/local/existing_bed.py) is the local backend's real API server, istiod and KWOK run as `--backend
existing`; it runs no proxies, so the feature's traffic tests are skipped there and its ownership and status tests
run on the real istiods' deployment controllers.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from multirev.istio.gateway_api import await_established
from multirev.kube import kinds
from tests.local.existing_bed import (
    ExistingBed,
    assert_left_as_it_was,
    await_quiet,
    cleanup_dead_runs,
    existing_cluster,
    kill_outright,
    read_until,
    run_suite_on,
    start_suite_on,
)

SELECTED = "test_gateway_api_gateway_is_deployed_by_its_owner_alone or test_gateway_api_status_is_written_by_its_owner"
GATEWAY_API_SUFFIX = ".gateway.networking.k8s.io"


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExistingBed]:
    with existing_cluster(tmp_path_factory.mktemp("gateway-api"), run_id="gatewayapi") as started:
        assert started.gateway_api_mirror is not None, "no Gateway API release manifest is pinned for these minors"
        yield started


def _bundle(bed: ExistingBed) -> list[dict]:
    assert bed.gateway_api_mirror is not None
    (manifest,) = bed.gateway_api_mirror.glob("*/standard-install.yaml")
    return [doc for doc in yaml.safe_load_all(manifest.read_text()) if doc]


def _gateway_api_crds(bed: ExistingBed) -> dict[str, dict]:
    return {crd["metadata"]["name"]: crd for crd in bed.cluster.list(kinds.CRD)
            if crd["metadata"]["name"].endswith(GATEWAY_API_SUFFIX)}


def _versions(bed: ExistingBed) -> dict[str, tuple[str, dict]]:
    return {name: (crd["metadata"]["resourceVersion"], crd["spec"]) for name, crd in _gateway_api_crds(bed).items()}


def test_a_cluster_without_the_crds_is_refused_in_one_line(bed: ExistingBed, tmp_path: Path) -> None:
    before = await_quiet(bed.cluster, timeout=120)
    run = run_suite_on(bed, tmp_path / "reports", "-q", "-k", SELECTED)
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR:")]
    assert run.returncode == 4 and len(errors) == 1, run.output[-3000:]
    assert "lacks the Gateway API" in errors[0] and "--allow-destructive" in errors[0] \
        and "-k 'not gateway_api'" in errors[0], errors[0]
    assert _gateway_api_crds(bed) == {}
    assert_left_as_it_was(bed, before, "a refused run")


def test_with_allow_destructive_the_run_installs_the_crds_and_removes_them(bed: ExistingBed, tmp_path: Path) -> None:
    before = await_quiet(bed.cluster, timeout=120)
    run = run_suite_on(bed, tmp_path / "reports", "-q", "--allow-destructive", "-k", SELECTED)
    outcomes = {node: t["outcome"] for node, t in run.outcomes.items()}
    assert run.returncode == 0 and outcomes and set(outcomes.values()) == {"passed"}, run.output[-4000:]
    assert bed.gateway_api_mirror is not None
    assert run.report["gateway_api"]["version"] == next(bed.gateway_api_mirror.iterdir()).name
    left = [f"{obj['kind']} {obj['metadata']['name']}" for obj in _bundle(bed)
            if bed.cluster.get(kinds.of(obj), obj["metadata"]["name"]) is not None]
    assert left == [], f"what the run installed of the Gateway API bundle is still there: {left}"
    assert_left_as_it_was(bed, before, "a run that installed the Gateway API CRDs")


def test_a_run_killed_after_installing_the_crds_is_removed_by_cleanup(bed: ExistingBed, tmp_path: Path) -> None:
    """SIGKILL once the run has installed the CRDs (--allow-destructive) and set-up goes on: no teardown runs, and
    `./run cleanup --all-dead` removes the CRDs with everything else the run made (they carry its run id)."""
    before = await_quiet(bed.cluster, timeout=120)
    proc = start_suite_on(bed, tmp_path / "reports", "-s", "-q", "--allow-destructive", "-k", SELECTED)
    line = "install the Gateway API"
    seen = read_until(proc, f"{line}")
    assert seen and line in seen[-1], "\n".join(seen[-20:])
    seen = read_until(proc, "apply ")  # the CRDs are in: set-up applies the manifests next
    assert seen and "apply " in seen[-1], "\n".join(seen[-20:])
    assert kill_outright(proc) == -signal.SIGKILL
    assert _gateway_api_crds(bed), "the killed run should have left the CRDs it installed"
    cleanup = cleanup_dead_runs(bed)
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    assert _gateway_api_crds(bed) == {}, cleanup.stdout
    assert_left_as_it_was(bed, before, "a run killed after installing the Gateway API CRDs, after ./run cleanup")


def test_crds_the_cluster_has_are_borrowed_and_left_as_they_were(bed: ExistingBed, tmp_path: Path) -> None:
    bundle = _bundle(bed)
    for obj in bundle:  # the owner's, applied as any owner would
        bed.cluster.apply(obj)
    await_established(bed.cluster, bundle, timeout=120)
    try:
        crds = _versions(bed)
        before = await_quiet(bed.cluster, timeout=120)
        run = run_suite_on(bed, tmp_path / "reports", "-q", "-k", SELECTED)
        outcomes = {node: t["outcome"] for node, t in run.outcomes.items()}
        assert run.returncode == 0 and outcomes and set(outcomes.values()) == {"passed"}, run.output[-4000:]
        assert _versions(bed) == crds, "the cluster's Gateway API CRDs were changed"
        assert_left_as_it_was(bed, before, "a run that borrowed the Gateway API CRDs")
    finally:
        for obj in reversed(bundle):
            bed.cluster.delete(kinds.of(obj), obj["metadata"]["name"])
