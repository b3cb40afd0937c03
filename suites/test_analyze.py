"""`istioctl analyze` finds no errors in the app namespaces."""

from __future__ import annotations

import pytest

from fixtures.mesh import MeshSetup
from multirev.checks.analyze import check_analyze
from multirev.conformance import conformance
from suites.conftest import BOOKINFO, SAMPLE_APPS, assert_no_problems


@pytest.mark.parametrize("role", ["stable", "canary"])
@conformance(feature="analyze", manifests=BOOKINFO + SAMPLE_APPS)
def test_analyze_reports_no_errors(mesh: MeshSetup, role: str) -> None:
    """Certifies that `istioctl analyze --namespace <ns> --revision <rev>` of the revision's own version (with the
    revision, so config labelled for it is analysed with its mesh config) reports no error-level
    finding for each of its app namespaces (errors exit 79; warnings are allowed)."""
    plane = mesh.plan.plane(role).plane
    problems = []
    for namespace in plane.app_namespaces:
        problems += check_analyze(namespace, mesh.istioctl(role).analyze(namespace, plane.revision, plane.namespace))
    assert_no_problems(problems, f"istioctl analyze ({role})")
