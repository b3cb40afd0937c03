"""Weighted routing between reviews versions, judged statistically (docs/weighted-routing.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fixtures.mesh import MeshSetup
from multirev import attach
from multirev.conformance import conformance
from multirev.progress import step
from multirev.report.chart import share_chart
from multirev.stats import LOOKS, judge_weights
from multirev.traffic import gateway_get, reviews_version
from suites.conftest import BOOKINFO, assert_no_problems
from suites.scenario import apply_and_await_push, wait_until_served

REVIEWS_PATH = "/api/v1/products/0/reviews"  # productpage passes the reviews JSON through
SPLITS = {
    "all-v1": ("routing/reviews-v1.yaml", {"v1": 1.0, "v2": 0.0, "v3": 0.0}),
    "50-10-40": ("routing/reviews-50-10-40.yaml", {"v1": 0.5, "v2": 0.1, "v3": 0.4}),
}


@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("role", ["stable", "canary"])
@conformance(feature="weighted-routing", manifests=BOOKINFO, canary=True, needs_envoy=True)
def test_reviews_weighted_split(mesh: MeshSetup, role: str, split: str,
                                record_property: pytest.RecordProperty) -> None:
    """Certifies that the reviews VirtualService's weights hold through the revision's gateway: all-to-v1
    gives only v1, and 50/10/40 over v1/v2/v3 matches. Versions are told apart from the reviews JSON. The
    verdict is a group-sequential test (false failure <= 1e-4, detection >= 0.99 for a 10-point error,
    zero-weight subsets must get exactly zero, no retries); the requests it used are recorded."""
    manifest, expected = SPLITS[split]
    wait_until_served(mesh, role, REVIEWS_PATH, "bookinfo.example")
    apply_and_await_push(mesh, role, manifest)
    problems: list[str] = []

    def draw(n: int) -> Iterator[str | None]:
        for _ in range(n):
            yield reviews_version(gateway_get(mesh.cluster, mesh.endpoint(role), REVIEWS_PATH, "bookinfo.example"))

    with step(f"traffic burst through the {role} gateway (sequential test, up to {LOOKS[-1]} requests)"):
        verdict = judge_weights(draw, expected)
    record_property("requests", verdict.requests)
    record_property("shares", verdict.table())
    attach.text("routing tallies", f"{verdict.reason}\nrequests used: {verdict.requests}\n"
                                   + verdict.table().replace("; ", "\n"))
    weights = "/".join(str(round(w * 100)) for w in expected.values())
    attach.png("observed vs expected share",
               share_chart(verdict, title=f"reviews {'/'.join(expected)} at {weights} % via the {role} gateway"))
    if not verdict.passed:
        problems.append(f"reviews split {split} through the {role} gateway: {verdict.reason} after "
                        f"{verdict.requests} requests; {verdict.table()}")
    assert_no_problems(problems, f"weighted routing {split} ({role}), {verdict.requests} requests")
