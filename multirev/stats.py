"""Judging weighted routing: a group-sequential test with a stated false-failure rate and power.

Method (docs/weighted-routing.md). Requests are drawn in batches and looked at after LOOKS requests.
At each look, every subset with a positive weight w gets a Wilson score interval for its share at
level alpha / (k * L) (k subsets, L looks: Bonferroni over both), and

- the test FAILS as soon as some interval excludes w (the share is significantly off), or a
  zero-weight subset answered even once, or a request could not be classified;
- the test PASSES as soon as every interval lies strictly inside (w - tolerance, w + tolerance);
- after the last look without either, it FAILS as inconclusive.

False failure on a correct mesh <= (misses of any interval at any look) + (inconclusive at the last
look), and a pass on a mesh where some share is off by >= tolerance requires an interval that
excludes the true share. With the budget below, the first is < 1e-4 and the second < 1e-4 (power
> 0.9999, far above the 0.99 asked for). `exact_error_bounds` computes both bounds exactly from the binomial
distribution; tests/unit/test_stats.py checks them and simulates the whole procedure.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from statistics import NormalDist

FALSE_FAILURE_TARGET = 1e-4  # what the suite promises on a correct mesh
# Per-run interval budget, split over subsets and looks. Wilson intervals miss slightly more often than
# nominal at these extreme levels, so the budget sits below the target; exact_error_bounds shows the
# resulting rate stays under the target for every split with weights in [0.1, 0.9] and for all-to-one.
ALPHA = 0.4e-4
TOLERANCE = 0.10
LOOKS = (300, 600, 1200, 2400)


@dataclass
class SubsetResult:
    expected: float
    observed: int
    low: float
    high: float

    def share(self, n: int) -> float:
        return self.observed / n if n else 0.0


@dataclass
class WeightVerdict:
    passed: bool
    requests: int
    reason: str
    subsets: dict[str, SubsetResult] = field(default_factory=dict)
    unclassified: int = 0

    def table(self) -> str:
        rows = [f"{name}: expected {r.expected:.0%}, observed {r.share(self.requests):.1%} "
                f"({r.observed}/{self.requests}), interval [{r.low:.3f}, {r.high:.3f}]"
                for name, r in self.subsets.items()]
        return "; ".join(rows)


def z_for(alpha: float, subsets: int, looks: int) -> float:
    return NormalDist().inv_cdf(1 - alpha / (2 * subsets * looks))


def wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def judge_weights(
    draw: Callable[[int], Iterable[str | None]],
    expected: dict[str, float],
    *,
    alpha: float = ALPHA,
    tolerance: float = TOLERANCE,
    looks: tuple[int, ...] = LOOKS,
) -> WeightVerdict:
    """`draw(n)` sends n requests and yields the subset each one reached (None: not classifiable)."""
    positive = {name: w for name, w in expected.items() if w > 0}
    z = z_for(alpha, max(1, len(positive)), len(looks))
    counts: Counter[str | None] = Counter()
    n = 0
    verdict = WeightVerdict(False, 0, "no requests sent")
    for look in looks:
        counts.update(draw(look - n))
        n = look
        subsets = {}
        for name, weight in expected.items():
            low, high = wilson(counts[name], n, z)
            subsets[name] = SubsetResult(weight, counts[name], low, high)
        unknown = counts[None] + sum(c for k, c in counts.items() if k is not None and k not in expected)
        verdict = WeightVerdict(False, n, "", subsets, unknown)
        if unknown:
            return _done(verdict, False, f"{unknown} of {n} responses came from no expected subset")
        zero_hits = [name for name, w in expected.items() if w == 0 and counts[name]]
        if zero_hits:
            return _done(verdict, False, f"zero-weight subset(s) {', '.join(zero_hits)} answered")
        off = [name for name in positive if not subsets[name].low <= positive[name] <= subsets[name].high]
        if off:
            return _done(verdict, False, f"share of {', '.join(off)} is significantly off its weight")
        if all(positive[k] - tolerance < subsets[k].low and subsets[k].high < positive[k] + tolerance
               for k in positive):
            return _done(verdict, True, "every share is within tolerance of its weight")
    return _done(verdict, False, f"inconclusive after {n} requests")


def _done(verdict: WeightVerdict, passed: bool, reason: str) -> WeightVerdict:
    verdict.passed, verdict.reason = passed, reason
    return verdict


def _binomial_pmf(n: int, p: float) -> list[float]:
    if p <= 0 or p >= 1:
        return [1.0 if (k == 0 and p <= 0) or (k == n and p >= 1) else 0.0 for k in range(n + 1)]
    logs = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p)
            + (n - k) * math.log(1 - p) for k in range(n + 1)]
    return [math.exp(v) for v in logs]


def exact_error_bounds(expected: dict[str, float], *, alpha: float = ALPHA, tolerance: float = TOLERANCE,
                       looks: tuple[int, ...] = LOOKS) -> tuple[float, float]:
    """(upper bound on the false-failure rate, upper bound on P(pass) when a share is off by tolerance).

    Union bounds over subsets and looks, each term an exact binomial sum: the chance an interval misses
    the true share, plus the chance a subset is still undecided at the last look; and, for each subset
    and direction of a tolerance-sized error, the chance its interval fits inside the pass band."""
    positive = {k: w for k, w in expected.items() if w > 0}
    z = z_for(alpha, len(positive), len(looks))
    false_failure = 0.0
    false_pass = 0.0
    for weight in positive.values():
        for n in looks:
            pmf = _binomial_pmf(n, weight)
            for x, prob in enumerate(pmf):
                low, high = wilson(x, n, z)
                inside_band = weight - tolerance < low and high < weight + tolerance
                if not low <= weight <= high or n == looks[-1] and not inside_band:
                    false_failure += prob
        worst = 0.0
        for shifted in (weight - tolerance, weight + tolerance):
            if not 0 <= shifted <= 1:
                continue
            chance = 0.0
            for n in looks:
                for x, prob in enumerate(_binomial_pmf(n, shifted)):
                    low, high = wilson(x, n, z)
                    if weight - tolerance < low and high < weight + tolerance:
                        chance += prob
            worst = max(worst, chance)
        false_pass = max(false_pass, worst)
    return false_failure, false_pass
