"""The weighted-routing verdict keeps its promises: false failures <= 1e-4, detection >= 0.99."""

from __future__ import annotations

import random

import pytest

from multirev.stats import FALSE_FAILURE_TARGET, exact_error_bounds, judge_weights

SPLITS = [
    {"v1": 0.5, "v2": 0.1, "v3": 0.4},
    {"v1": 1.0, "v2": 0.0, "v3": 0.0},
    *({"a": w / 100, "b": 1 - w / 100} for w in range(10, 91, 10)),
]


@pytest.mark.parametrize("expected", SPLITS, ids=lambda e: "/".join(f"{v:.0%}" for v in e.values()))
def test_exact_error_bounds(expected: dict[str, float]) -> None:
    """Exact binomial sums (union bounds): false failure <= 1e-4; a 10-point error passes with p <= 0.01."""
    false_failure, false_pass = exact_error_bounds(expected)
    assert false_failure <= FALSE_FAILURE_TARGET
    assert false_pass <= 0.01


def sampler(true_shares: dict[str, float], rng: random.Random):
    names, weights = list(true_shares), list(true_shares.values())
    return lambda n: rng.choices(names, weights=weights, k=n)


def test_simulated_correct_mesh_passes_and_reports_requests() -> None:
    rng = random.Random(11)
    expected = {"v1": 0.5, "v2": 0.1, "v3": 0.4}
    verdicts = [judge_weights(sampler(expected, rng), expected) for _ in range(300)]
    assert all(v.passed for v in verdicts)
    assert {v.requests for v in verdicts} <= {300, 600, 1200, 2400}


@pytest.mark.parametrize("true_shares", [
    {"v1": 0.4, "v2": 0.2, "v3": 0.4},     # v1 -10, v2 +10
    {"v1": 0.6, "v2": 0.0, "v3": 0.4},     # v2 missing
    {"v1": 1 / 3, "v2": 1 / 3, "v3": 1 / 3},  # weights ignored
])
def test_simulated_wrong_mesh_fails(true_shares: dict[str, float]) -> None:
    rng = random.Random(5)
    expected = {"v1": 0.5, "v2": 0.1, "v3": 0.4}
    verdicts = [judge_weights(sampler(true_shares, rng), expected) for _ in range(200)]
    assert not any(v.passed for v in verdicts)


def test_zero_weight_and_unclassified_fail_at_once() -> None:
    expected = {"v1": 1.0, "v2": 0.0, "v3": 0.0}
    one_stray = judge_weights(lambda n: ["v1"] * (n - 1) + ["v3"], expected)
    assert not one_stray.passed and one_stray.requests == 300 and "zero-weight" in one_stray.reason
    garbled = judge_weights(lambda n: ["v1"] * (n - 1) + [None], expected)
    assert not garbled.passed and "no expected subset" in garbled.reason
    clean = judge_weights(lambda n: ["v1"] * n, expected)
    assert clean.passed and clean.requests == 300
