"""The weighted-routing verdict keeps its promises, computed exactly: false failures <= 1e-4, P(pass) <= 0.01
when a share is 10 points off, and a healthy 50/10/40 costs at most 500 requests on average."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator

import pytest

from multirev.stats import (
    FALSE_FAILURE_TARGET,
    FALSE_PASS_TARGET,
    LOOKS,
    TOLERANCE,
    _sweep,
    characteristic,
    exact_error_bounds,
    judge_weights,
    plan,
)

FIFTY_TEN_FORTY = {"v1": 0.5, "v2": 0.1, "v3": 0.4}
ALL_TO_ONE = {"v1": 1.0, "v2": 0.0, "v3": 0.0}
TWO_WAY = [{"a": w / 100, "b": 1 - w / 100} for w in range(10, 91, 10)]
SPLITS = [FIFTY_TEN_FORTY, ALL_TO_ONE, *TWO_WAY]


def split_id(expected: dict[str, float]) -> str:
    return "/".join(f"{v:.0%}" for v in expected.values())


@pytest.mark.parametrize("expected", SPLITS, ids=split_id)
def test_exact_error_bounds(expected: dict[str, float]) -> None:
    """Exact DP over the binomial (Bonferroni over counts): false failure <= 1e-4; a share 10 points off
    (either way) passes with probability <= 0.01."""
    false_failure, false_pass = exact_error_bounds(expected)
    assert false_failure <= FALSE_FAILURE_TARGET
    assert false_pass <= FALSE_PASS_TARGET


def test_healthy_50_10_40_costs_at_most_500_requests_on_average() -> None:
    healthy = characteristic(FIFTY_TEN_FORTY)
    assert healthy.mean_requests <= 500  # an exact upper bound (union over the three counts)
    assert healthy.p99_requests <= 1000
    assert healthy.pass_low >= 1 - FALSE_FAILURE_TARGET


@pytest.mark.parametrize("expected", [ALL_TO_ONE, *TWO_WAY], ids=split_id)
def test_single_count_splits_are_exact_and_cheap(expected: dict[str, float]) -> None:
    """One count decides all-to-one and two-way splits, so these figures are exact values."""
    healthy = characteristic(expected)
    assert healthy.exact and healthy.pass_low == pytest.approx(healthy.pass_high, abs=1e-12)
    assert healthy.mean_requests <= 500


@pytest.mark.parametrize("expected", SPLITS, ids=split_id)
def test_each_side_rejects_a_correct_share_at_most_e_to_the_minus_a(expected: dict[str, float]) -> None:
    """Wald's likelihood-ratio identity, independent of the calibration: P(reject) <= e^-A = target / m."""
    rules = plan(expected)
    sides = [side for group in rules.groups for side in group]
    assert math.exp(-rules.threshold) * len(sides) == pytest.approx(FALSE_FAILURE_TARGET)
    for side in sides:
        assert _sweep((side,), expected[side.subset], rules.looks).failed <= math.exp(-rules.threshold)


def test_false_pass_only_shrinks_past_the_tolerance() -> None:
    """Spot check of the coupling argument: the bound at 10 points covers larger errors."""
    rules = plan(FIFTY_TEN_FORTY)
    for side in rules.sides:
        sign = 1 if side.upper else -1
        chances = [_sweep((side,), FIFTY_TEN_FORTY[side.subset] + sign * off, rules.looks).passed
                   for off in (TOLERANCE, 0.11, 0.12, 0.15) if 0 <= FIFTY_TEN_FORTY[side.subset] + sign * off <= 1]
        assert chances == sorted(chances, reverse=True)


def test_the_suites_skewed_mesh_passes_at_most_one_run_in_a_hundred() -> None:
    skewed = characteristic(FIFTY_TEN_FORTY, {"v1": 0.4, "v2": 0.2, "v3": 0.4})
    assert skewed.pass_high <= FALSE_PASS_TARGET


@pytest.mark.parametrize("expected", TWO_WAY, ids=split_id)
def test_two_way_partner_sides_are_the_same_test(expected: dict[str, float]) -> None:
    """b's "too low?" is a's "too high?" on the same count, so counting a's sides once is exact."""
    sides = {(s.subset, s.upper): s for s in plan(expected).sides}
    for upper in (True, False):
        a, b = sides[("a", upper)], sides[("b", not upper)]
        assert (a.null, a.alternative, a.accept, a.reject) == (b.null, b.alternative, b.accept, b.reject)


def paths(true_shares: dict[str, float], looks: tuple[int, ...]) -> Iterator[tuple[float, list[dict[str, int]]]]:
    """Every sequence of per-look tallies, with its multinomial probability."""
    names = list(true_shares)
    steps = [b - a for a, b in zip((0, *looks[:-1]), looks, strict=True)]
    per_look = []
    for step in steps:
        tallies = [c for c in itertools.product(range(step + 1), repeat=len(names)) if sum(c) == step]
        per_look.append([(math.factorial(step) / math.prod(map(math.factorial, c))
                          * math.prod(true_shares[n] ** k for n, k in zip(names, c, strict=True)),
                          dict(zip(names, c, strict=True))) for c in tallies])
    for path in itertools.product(*per_look):
        yield math.prod(p for p, _ in path), [tally for _, tally in path]


@pytest.mark.parametrize(("expected", "true_shares", "looks"), [
    ({"a": 0.4, "b": 0.6}, {"a": 0.4, "b": 0.6}, (6, 12, 18, 24)),
    ({"a": 0.4, "b": 0.6}, {"a": 0.6, "b": 0.4}, (6, 12, 18, 24)),
    ({"a": 0.4, "b": 0.3, "c": 0.3}, {"a": 0.4, "b": 0.3, "c": 0.3}, (8, 16)),
    ({"a": 0.4, "b": 0.3, "c": 0.3}, {"a": 0.2, "b": 0.5, "c": 0.3}, (8, 16)),
])
def test_dp_agrees_with_every_path_through_the_judge(expected: dict[str, float], true_shares: dict[str, float],
                                                     looks: tuple[int, ...]) -> None:
    """On a small design, sum over every possible run of judge_weights itself: the DP's figures are the
    exact ones (one count) or bound them (three counts)."""
    design = {"alpha": 0.6, "beta": 0.35, "tolerance": 0.3, "looks": looks}
    passed = requests = 0.0
    for chance, tallies in paths(true_shares, looks):
        draws = iter(tallies)
        verdict = judge_weights(lambda _n, draws=draws: next(draws), expected, **design)
        passed += chance * verdict.passed
        requests += chance * verdict.requests
    oc = characteristic(expected, true_shares, **design)
    assert oc.pass_low - 1e-12 <= passed <= oc.pass_high + 1e-12
    assert requests <= oc.mean_requests + 1e-9
    if oc.exact:
        assert passed == pytest.approx(oc.pass_high, abs=1e-12)
        assert requests == pytest.approx(oc.mean_requests, abs=1e-9)


def sampler(true_shares: dict[str, float], rng: random.Random):
    names, weights = list(true_shares), list(true_shares.values())
    return lambda n: rng.choices(names, weights=weights, k=n)


def test_simulated_correct_mesh_passes_and_reports_requests() -> None:
    rng = random.Random(11)
    verdicts = [judge_weights(sampler(FIFTY_TEN_FORTY, rng), FIFTY_TEN_FORTY) for _ in range(300)]
    assert all(v.passed for v in verdicts)
    assert {v.requests for v in verdicts} <= set(LOOKS)
    assert sum(v.requests for v in verdicts) / len(verdicts) <= characteristic(FIFTY_TEN_FORTY).mean_requests


@pytest.mark.parametrize(("true_shares", "promise"), [
    ({"v1": 0.4, "v2": 0.2, "v3": 0.4}, FALSE_PASS_TARGET),  # v1 -10, v2 +10: P(pass) <= 0.01 (about 0.001)
    ({"v1": 0.6, "v2": 0.0, "v3": 0.4}, 0.0),  # v2 missing: fails at the first look
    ({"v1": 1 / 3, "v2": 1 / 3, "v3": 1 / 3}, 0.0),  # weights ignored
])
def test_simulated_wrong_mesh_fails(true_shares: dict[str, float], promise: float) -> None:
    rng = random.Random(5)
    verdicts = [judge_weights(sampler(true_shares, rng), FIFTY_TEN_FORTY) for _ in range(200)]
    assert sum(v.passed for v in verdicts) <= promise * len(verdicts)


def test_zero_weight_and_unclassified_fail_at_once() -> None:
    one_stray = judge_weights(lambda n: ["v1"] * (n - 1) + ["v3"], ALL_TO_ONE)
    assert not one_stray.passed and one_stray.requests == LOOKS[0] and "zero-weight" in one_stray.reason
    garbled = judge_weights(lambda n: ["v1"] * (n - 1) + [None], ALL_TO_ONE)
    assert not garbled.passed and "no expected subset" in garbled.reason
    clean = judge_weights(lambda n: ["v1"] * n, ALL_TO_ONE)
    assert clean.passed and clean.requests == LOOKS[0]
    assert clean.subsets["v1"].low <= 1.0 == clean.subsets["v1"].high
