"""--installed, the whole suite on the model: someone's cluster already runs two revisions (tests/plugins/
someones_mesh.py) and a run certifies them. Every observing feature passes on the owner's revisions, traffic ones
included (the real API-server bed has no data plane: tests/local/test_existing_installed.py); the features that
would change or remove a revision are skipped with their reason; the owner's objects are as they were."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from multirev.report.conformance import schema
from tests.someones_model import owners_plan
from tests.suite_runner import run_suites

OBSERVING = ("install", "tags", "webhooks", "injection", "xds-isolation", "gateway", "weighted-routing",
             "discovery-address", "canary-upgrade", "egress", "analyze")
NOT_OURS = ("re-apply", "uninstall")


@pytest.mark.parametrize(("layout", "stable_revision"), [("separate", None), ("shared", None),
                                                         ("separate", "default")])
def test_the_owners_revisions_pass_every_observing_feature_and_stay_as_they_were(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str, stable_revision: str | None) -> None:
    """With `default`: the owner's stable control plane was installed without a revision (Istio's canary-upgrade
    page starts there), certified as `--installed stable=default,...` (issue 26, item 2)."""
    dump = tmp_path / "owner.json"
    monkeypatch.setenv("OWNERS_LAYOUT", layout)
    monkeypatch.setenv("OWNERS_DUMP", str(dump))
    if stable_revision:
        monkeypatch.setenv("OWNERS_STABLE_REVISION", stable_revision)
    owner = owners_plan(layout, stable_revision)  # as the plugin installs it
    installed = ",".join(f"{p.role}={p.plane.revision}" for p in owner.planes)
    run = run_suites(tmp_path / "reports", "--backend", "simulated", "-p", "tests.plugins.someones_mesh",
                     "--installed", installed, timeout=600)
    assert run.returncode == 0, run.output[-4000:]
    jsonschema.validate(run.report, schema())
    features = run.report["features"]
    for name in OBSERVING:
        assert features[name]["result"] == "passed", (name, features[name])
    for name in NOT_OURS:
        assert features[name]["result"] == "skipped", (name, features[name])
        assert all("--installed: the run never" in t["message"] for t in features[name]["tests"]), features[name]
    assert run.report["layout"] == layout and run.report["installer"] == "none"
    for plane in owner.planes:
        assert run.report[plane.role]["revision"] == plane.plane.revision
        assert plane.plane.tag in run.report[plane.role]["installed"]["tags"]
    owners = json.loads(dump.read_text())
    changed = sorted(key for key in owners["before"].keys() | owners["after"].keys()
                     if owners["before"].get(key) != owners["after"].get(key))
    assert changed == [], changed
