"""Run the conformance suites in a child pytest and read back the outcomes it recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from multirev.paths import PROJECT_ROOT


@dataclass
class SuiteRun:
    returncode: int
    output: str
    outcomes: dict[str, dict]
    report: dict

    def failed(self) -> set[str]:
        return {node for node, entry in self.outcomes.items() if entry["outcome"] in ("failed", "error")}

    def message(self, node: str) -> str:
        return self.outcomes[node]["message"]


def run_suites(reports: Path, *args: str, timeout: float = 120) -> SuiteRun:
    argv = [sys.executable, "-m", "pytest", "suites", "-q", "-p", "no:cacheprovider", "--reports-dir", str(reports),
            *args]
    proc = subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    report_file = reports / "conformance.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else {"features": {}}
    outcomes = {t["nodeid"]: {**t, "feature": name, "message": t.get("message", "")}
                for name, feature in report["features"].items() for t in feature["tests"]}
    return SuiteRun(proc.returncode, proc.stdout + proc.stderr, outcomes, report)


def catalog(*args: str) -> list[dict]:
    proc = subprocess.run([sys.executable, "-m", "pytest", "--sim-list-faults", *args],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(proc.stdout)
