"""The existing-cluster test bed works: the suite's `--backend existing` runs against a real API server (the local
backend's), and snapshots taken before and after tell what the run changed (tests/local/existing_bed.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from multirev.kube import kinds
from tests.local.existing_bed import (
    FOREIGN_NAMESPACE,
    Key,
    added,
    create,
    diff,
    existing_cluster,
    populate_foreign,
    run_suite_on,
    snapshot,
)

CONTROL_PLANE_TESTS = ("suites/test_control_planes.py::test_control_plane_installed_and_ready[stable]",
                       "suites/test_control_planes.py::test_control_plane_installed_and_ready[canary]")


def test_suite_on_the_existing_bed_installs_both_revisions_and_leaves_foreign_objects_alone(
        tmp_path: Path, record_property: pytest.RecordProperty) -> None:
    """`pytest suites --backend existing -k test_control_plane_installed_and_ready` against the bed: istioctl from
    the bed's offline release mirror installs both revisions on the real API server, the IstiodRunner starts real
    istiods behind their KWOK pods, both control-plane tests pass, and after the run's teardown every object that
    was there before (the cluster's own and the foreign ones the test made) is unchanged. The diff itself is
    checked to see a change and a foreign object re-applied by another field manager."""
    with existing_cluster(tmp_path) as bed:
        made = populate_foreign(bed)
        before = snapshot(bed.cluster)
        assert set(made) <= set(before), "the snapshot holds the foreign objects"

        run = run_suite_on(bed, tmp_path / "reports", "-q", "-k", "test_control_plane_installed_and_ready")
        outcomes = {node: entry["outcome"] for node, entry in run.outcomes.items()}
        assert run.returncode == 0 and all(outcomes.get(t) == "passed" for t in CONTROL_PLANE_TESTS), (
            f"{outcomes}\n{run.output[-4000:]}")
        assert run.report["backend"] == "existing"

        after = snapshot(bed.cluster)
        assert diff(before, after, foreign_only=True) == []
        record_property("objects_compared", len(before))
        record_property("survivors", ", ".join(map(str, added(before, after))) or "none")
        # Including the CA ConfigMaps the run's istiods wrote into namespaces that had none (default, kube-system).
        assert added(before, after) == [], "the run left what it created"

        # The diff is not blind: a label and an unchanged re-apply by the suite's field manager both show.
        settings = Key("ConfigMap", FOREIGN_NAMESPACE, "foreign-settings")
        bed.cluster.label(kinds.CONFIGMAP, settings.name, {"touched": "yes"}, settings.namespace)
        bed.cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "data": {"setting": "keep me too"},
                           "metadata": {"name": "foreign-settings", "namespace": "default"}})
        create(bed.cluster, {"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": "new", "namespace": "default"}})
        changed = diff(before, snapshot(bed.cluster))
        assert any(line.startswith(f"changed: {settings}: metadata.labels.touched added") for line in changed), changed
        assert any(line.startswith("changed: ConfigMap default/foreign-settings: metadata.managers")
                   for line in changed), changed
        assert "added: ConfigMap default/new" in changed, changed
        assert not any("default/new" in line for line in diff(before, snapshot(bed.cluster), foreign_only=True))
