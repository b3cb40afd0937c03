"""Judging weighted routing: paired one-sided sequential tests with exactly computed error rates.

Method (docs/weighted-routing.md). Requests are drawn in batches and looked at after each of LOOKS
requests (the first look at 300, then every 25, the last at 2000). Every subset with weight w > 0 asks
two one-sided questions ("sides"), each a truncated group-sequential probability-ratio test on a
binomial count y with null share p0 and alternative p1 = p0 + tolerance:

- "too high?": y = the subset's own count, p0 = w;
- "too low?":  y = every other request, p0 = 1 - w (that is, the subset's share is w - tolerance).

A side is skipped when its alternative lies outside [0, 1]. At look n the log-likelihood ratio is
LLR = y·log(p1/p0) + (n - y)·log((1 - p1)/(1 - p0)); a side REJECTS when LLR >= A and ACCEPTS when
LLR <= B (at the last look: whenever it does not reject), and once decided it stays decided. The
verdict FAILS as soon as a side rejects, a zero-weight subset answers even once, or a response cannot
be classified; it PASSES at the first look at which every side has accepted. Both thresholds are
turned into count boundaries per look (`Side.accept`, `Side.reject`), which the judge applies and the
analysis below sums over, so the numbers proved are the numbers of the rule that runs.

Thresholds. A = log(m / FALSE_FAILURE_TARGET), m the number of sides on the independent counts (a
two-way split has one count: x_b = n - x_a). B <= 0 is calibrated per side, by bisection on the exact
computation, to the largest value (within 0.002) whose exact false-pass probability is <= FALSE_PASS_TARGET.
SubsetResult.low/high is a descriptive 99% Wilson interval for the share at the last look, for charts.

Proof (exact, by dynamic programming over the binomial, `characteristic`):

- Every side's decisions are a function of its own count path, whatever the other sides do, and the
  judge only stops early. So on a correct mesh the verdict fails only if some count's pair of sides,
  run on its own, rejects: P(false failure) <= sum over counts of that exact probability (Bonferroni),
  and, independently, each side rejects with probability <= e^-A <= target/m (Wald's likelihood-ratio
  identity, since rejecting needs LLR >= A).
- A pass needs the "too high?" side of a subset whose share is w + 10 points to accept. Its
  probability is computed exactly at share w + 10 points, and is the largest over shares >= w + 10
  points: couple the count paths; a higher path that accepts (y <= accept_j, having stayed below
  reject_i before) forces the lower path to accept no later. Likewise for "too low?". A zero-weight
  subset with share 10 points passes only if silent for LOOKS[0] requests: 0.9^300 < 1e-13.
- The verdict passes iff no count's sides reject (every side decides by the last look), so
  1 - sum_i P(count i fails) <= P(pass) <= min_i P(count i passes).
- Requests: the verdict is in once every count has settled (T <= max_i T_i) or as soon as one fails,
  so P(T > n) <= min(sum_i P(T_i > n), min_i P(count i has not failed by n)), each term exact; this
  bounds the mean and the 99th percentile. With a single count (all-to-one, two-way splits) every
  figure is exact, not a bound.

tests/unit/test_stats.py checks the bounds for 50/10/40, all-to-one and every two-way split from
10/90 to 90/10, the mean cost of a healthy 50/10/40 (<= 500), and simulates the whole procedure.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from statistics import NormalDist

import numpy as np

FALSE_FAILURE_TARGET = 1e-4  # what the suite promises on a correct mesh
FALSE_PASS_TARGET = 0.01  # P(pass) when a share is TOLERANCE off (power 0.99)
TOLERANCE = 0.10
# At least 300 requests: a zero-weight subset that gets even 1% of the traffic is caught with
# probability 0.95, and the many looks after it let a healthy split stop soon after.
LOOKS = (300, *range(325, 2001, 25))
INTERVAL_LEVEL = 0.99  # of the descriptive Wilson interval reported per subset
_DIGITS = 12  # shares are rounded so that a subset's "too low?" equals its partner's "too high?"


@dataclass
class SubsetResult:
    expected: float
    observed: int
    low: float  # INTERVAL_LEVEL Wilson interval for the share where the verdict stopped (descriptive)
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


@dataclass(frozen=True)
class Side:
    """One one-sided question about a subset's share, as count boundaries per look."""

    subset: str
    upper: bool  # True: "too high?" on the subset's count; False: "too low?" on the other requests
    null: float  # share of the counted requests on a correct mesh
    alternative: float  # ... when the subset's share is off by the tolerance
    accept: tuple[int, ...]  # accept at look j when the count <= accept[j]
    reject: tuple[int, ...]  # reject at look j when the count >= reject[j]

    def count(self, subset_count: int, n: int) -> int:
        return subset_count if self.upper else n - subset_count

    def counts(self, subset_counts: np.ndarray, n: int) -> np.ndarray:
        return subset_counts if self.upper else n - subset_counts


@dataclass(frozen=True)
class Plan:
    """The sides the judge asks, and how they group on independent counts for the analysis."""

    looks: tuple[int, ...]
    threshold: float  # A
    sides: tuple[Side, ...]
    groups: tuple[tuple[Side, ...], ...]  # the sides of one subset count each
    zero_weight: tuple[str, ...]


def plan(expected: Mapping[str, float], *, alpha: float = FALSE_FAILURE_TARGET, beta: float = FALSE_PASS_TARGET,
         tolerance: float = TOLERANCE, looks: Sequence[int] = LOOKS) -> Plan:
    """The sides for `expected`, with their calibrated boundaries (cached per share, so cheap to repeat)."""
    looks = tuple(looks)
    if not looks or looks[0] < 1 or any(b <= a for a, b in zip(looks, looks[1:], strict=False)):
        raise ValueError(f"looks must be increasing positive request counts, got {looks}")
    if any(w < 0 for w in expected.values()) or not math.isclose(sum(expected.values()), 1.0, abs_tol=1e-9):
        raise ValueError(f"weights must be non-negative and sum to 1, got {dict(expected)}")
    positive = [name for name, w in expected.items() if w > 0]
    pairs = {name: _side_shares(expected[name], tolerance) for name in positive}
    # Two subsets share one count (x_b = n - x_a on a correct mesh): b's sides repeat a's, counted once.
    counted = [name for name in (positive[:1] if len(positive) == 2 else positive) if pairs[name]]
    threshold = math.log(max(1, sum(len(pairs[name]) for name in counted)) / alpha)
    sides = {name: tuple(Side(name, upper, p0, p1, *_boundaries(p0, p1, looks, threshold, beta))
                         for upper, p0, p1 in pairs[name]) for name in positive}
    return Plan(looks, threshold, tuple(s for name in positive for s in sides[name]),
                tuple(sides[name] for name in counted), tuple(n for n, w in expected.items() if w == 0))


def _side_shares(weight: float, tolerance: float) -> list[tuple[bool, float, float]]:
    """(upper, p0, p1) of the sides whose alternative is a possible share."""
    out = []
    for upper, p0 in ((True, round(weight, _DIGITS)), (False, round(1 - weight, _DIGITS))):
        p1 = round(p0 + tolerance, _DIGITS)
        if p1 <= 1:
            out.append((upper, p0, p1))
    return out


def judge_weights(
    draw: Callable[[int], Iterable[str | None] | Mapping[str | None, int]],
    expected: dict[str, float],
    *,
    alpha: float = FALSE_FAILURE_TARGET,
    beta: float = FALSE_PASS_TARGET,
    tolerance: float = TOLERANCE,
    looks: tuple[int, ...] = LOOKS,
) -> WeightVerdict:
    """`draw(n)` sends n requests and yields the subset each one reached (None: not classifiable), or
    returns a mapping subset -> number of requests."""
    rules = plan(expected, alpha=alpha, beta=beta, tolerance=tolerance, looks=looks)
    z = NormalDist().inv_cdf(0.5 + INTERVAL_LEVEL / 2)
    counts: Counter[str | None] = Counter()
    settled: set[Side] = set()
    n = 0
    verdict = WeightVerdict(False, 0, "no requests sent")
    for j, look in enumerate(rules.looks):
        counts.update(draw(look - n))
        n = look
        subsets = {name: SubsetResult(w, counts[name], *wilson(counts[name], n, z)) for name, w in expected.items()}
        unknown = counts[None] + sum(c for k, c in counts.items() if k is not None and k not in expected)
        verdict = WeightVerdict(False, n, "", subsets, unknown)
        if unknown:
            return _done(verdict, False, f"{unknown} of {n} responses came from no expected subset")
        zero_hits = [name for name in rules.zero_weight if counts[name]]
        if zero_hits:
            return _done(verdict, False, f"zero-weight subset(s) {', '.join(zero_hits)} answered")
        off = [s for s in rules.sides if s not in settled and s.count(counts[s.subset], n) >= s.reject[j]]
        if off:
            named = ", ".join(f"{s.subset} (too {'high' if s.upper else 'low'})" for s in off)
            return _done(verdict, False, f"share of {named} is significantly off its weight")
        settled.update(s for s in rules.sides if s.count(counts[s.subset], n) <= s.accept[j])
        if len(settled) == len(rules.sides):
            return _done(verdict, True, "every share is within tolerance of its weight")
    return _done(verdict, False, f"inconclusive after {n} requests")  # unreachable: the last look decides


def _done(verdict: WeightVerdict, passed: bool, reason: str) -> WeightVerdict:
    verdict.passed, verdict.reason = passed, reason
    return verdict


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


# --- Boundaries -------------------------------------------------------------------------------------

def _count_boundaries(p0: float, p1: float, looks: tuple[int, ...], a: float, b: float) -> tuple[tuple[int, ...],
                                                                                                 tuple[int, ...]]:
    """Per look, the largest count that accepts (LLR <= b) and the smallest that rejects (LLR >= a)."""
    accept, reject = [], []
    for n in looks:
        if p0 == 0:  # any counted request is impossible under the null
            acc, rej = (0 if n * math.log1p(-p1) <= b else -1), 1
        elif p1 == 1:  # any uncounted request is impossible under the alternative
            acc, rej = n - 1, (n if n * -math.log(p0) >= a else n + 1)
        else:
            slope = math.log(p1 / p0) - math.log((1 - p1) / (1 - p0))
            drift = math.log((1 - p0) / (1 - p1))
            acc = min(n, max(-1, math.floor((b + n * drift) / slope)))
            rej = min(n + 1, max(0, math.ceil((a + n * drift) / slope)))
        accept.append(min(acc, rej - 1))
        reject.append(rej)
    accept[-1] = reject[-1] - 1  # the last look decides
    return tuple(accept), tuple(reject)


@lru_cache(maxsize=256)
def _boundaries(p0: float, p1: float, looks: tuple[int, ...], a: float, beta: float) -> tuple[tuple[int, ...],
                                                                                            tuple[int, ...]]:
    """Boundaries with (nearly) the largest B <= 0 whose exact P(accept) at the alternative is <= beta."""

    def false_pass(b: float) -> float:
        side = Side("", True, p0, p1, *_count_boundaries(p0, p1, looks, a, b))
        return _sweep((side,), p1, looks).passed

    low, high = math.log(beta) - 1.0, 0.0
    if false_pass(high) <= beta:
        return _count_boundaries(p0, p1, looks, a, high)
    if false_pass(low) > beta:
        raise ValueError(f"no boundary gives P(pass) <= {beta} for share {p0} against {p1} within {looks[-1]} requests")
    for _ in range(12):  # B to within 0.002: about a 200th of a count
        mid = (low + high) / 2
        low, high = (mid, high) if false_pass(mid) <= beta else (low, mid)
    return _count_boundaries(p0, p1, looks, a, low)


# --- Exact analysis ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sweep:
    """One subset count's sides run on their own to the last look, under a given share."""

    failed: float  # P(some side rejects)
    passed: float  # P(every side accepts)
    running: tuple[float, ...]  # P(not yet settled after look j)
    unfailed: tuple[float, ...]  # P(no side has rejected by look j)


@lru_cache(maxsize=4096)
def _increment(requests: int, share: float) -> np.ndarray:
    """Binomial(requests, share) probabilities."""
    if share <= 0 or share >= 1:
        out = np.zeros(requests + 1)
        out[0 if share <= 0 else -1] = 1.0
        return out
    k = np.arange(requests + 1)
    log_choose = np.array([math.lgamma(requests + 1) - math.lgamma(i + 1) - math.lgamma(requests - i + 1)
                           for i in range(requests + 1)])
    return np.exp(log_choose + k * math.log(share) + (requests - k) * math.log1p(-share))


def _sweep(sides: tuple[Side, ...], share: float, looks: tuple[int, ...]) -> Sweep:
    """Exact DP over the subset's count (binomial with `share`): per set of settled sides, the distribution
    of the count over the paths still running, kept as (lowest count, probabilities) trimmed to its support."""
    settled_all = (1 << len(sides)) - 1
    states: dict[int, tuple[int, np.ndarray]] = {0: (0, np.ones(1))}
    failed = passed = 0.0
    running, unfailed = [], []
    previous = 0
    for j, n in enumerate(looks):
        step = _increment(n - previous, share)
        previous = n
        after: dict[int, list[tuple[int, np.ndarray]]] = {}
        for mask, (start, dist) in states.items():
            dist = np.convolve(dist, step)
            counts = np.arange(start, start + len(dist))
            open_sides = [i for i in range(len(sides)) if not mask >> i & 1]
            failing = np.logical_or.reduce([sides[i].counts(counts, n) >= sides[i].reject[j] for i in open_sides])
            failed += float(dist[failing].sum())
            dist = np.where(failing, 0.0, dist)
            masks = np.full(len(dist), mask)
            for i in open_sides:
                masks |= (sides[i].counts(counts, n) <= sides[i].accept[j]).astype(int) << i
            for new in np.unique(masks[dist > 0]):
                after.setdefault(int(new), []).append((start, np.where(masks == new, dist, 0.0)))
        passed += sum(float(d.sum()) for _, d in after.pop(settled_all, []))
        states = {mask: _trim(parts) for mask, parts in after.items()}
        running.append(sum(float(d.sum()) for _, d in states.values()))
        unfailed.append(1 - failed)
    return Sweep(failed, passed, tuple(running), tuple(unfailed))


def _trim(parts: list[tuple[int, np.ndarray]]) -> tuple[int, np.ndarray]:
    """The sum of distributions given as (lowest count, probabilities), cut to where it is non-zero."""
    start = min(s for s, _ in parts)
    total = np.zeros(max(s + len(d) for s, d in parts) - start)
    for s, d in parts:
        total[s - start:s - start + len(d)] += d
    nonzero = np.flatnonzero(total)
    return start + int(nonzero[0]), total[nonzero[0]:nonzero[-1] + 1]


@dataclass(frozen=True)
class Characteristic:
    """What the verdict does under given true shares (exact values when `exact`, else exact bounds)."""

    pass_low: float  # P(pass) >= this
    pass_high: float  # P(pass) <= this
    mean_requests: float  # E[requests] <= this
    p99_requests: int  # the 99th percentile of requests is <= this
    exact: bool  # one subset count decides everything: the bounds are the values


def characteristic(expected: Mapping[str, float], true_shares: Mapping[str, float] | None = None, *,
                   alpha: float = FALSE_FAILURE_TARGET, beta: float = FALSE_PASS_TARGET,
                   tolerance: float = TOLERANCE, looks: Sequence[int] = LOOKS) -> Characteristic:
    """Exact operating characteristic when the shares are `true_shares` (default: the weights). The true
    shares must give nothing to zero-weight subsets (any such request fails the verdict at once)."""
    rules = plan(expected, alpha=alpha, beta=beta, tolerance=tolerance, looks=looks)
    shares = dict(expected if true_shares is None else true_shares)
    if any(shares.get(name, 0) > 0 for name in rules.zero_weight) or not math.isclose(sum(shares.values()), 1):
        raise ValueError("true shares must sum to 1 over the positive-weight subsets")
    sweeps = [_sweep(group, shares.get(group[0].subset, 0.0), rules.looks) for group in rules.groups]
    # The verdict is in once every count has settled, or as soon as one fails:
    # P(T > n) <= min(sum_i P(T_i > n), min_i P(count i has not failed by n)).
    running = [min(1.0, sum(s.running[j] for s in sweeps), *(s.unfailed[j] for s in sweeps))
               for j in range(len(rules.looks))]
    mean = rules.looks[0] + sum((b - a) * r for a, b, r in zip(rules.looks, rules.looks[1:], running, strict=False))
    p99 = next(n for n, r in zip(rules.looks, running, strict=True) if r <= 0.01)
    # It passes iff no count's sides reject: between 1 - (sum) and 1 - (max) of those probabilities.
    high = min((s.passed for s in sweeps), default=1.0)
    low = min(high, max(0.0, 1 - sum(s.failed for s in sweeps)))
    return Characteristic(low, high, mean, p99, len(sweeps) <= 1)


def false_pass_bound(expected: Mapping[str, float], *, alpha: float = FALSE_FAILURE_TARGET,
                     beta: float = FALSE_PASS_TARGET, tolerance: float = TOLERANCE,
                     looks: Sequence[int] = LOOKS) -> float:
    """Exact upper bound on P(pass) when some share is off its weight by >= tolerance (either way)."""
    rules = plan(expected, alpha=alpha, beta=beta, tolerance=tolerance, looks=looks)
    worst = (1 - tolerance) ** rules.looks[0] if rules.zero_weight else 0.0
    for side in rules.sides:
        share = expected[side.subset] + (tolerance if side.upper else -tolerance)
        worst = max(worst, _sweep((side,), share, rules.looks).passed)
    return worst


def exact_error_bounds(expected: dict[str, float], *, alpha: float = FALSE_FAILURE_TARGET,
                       beta: float = FALSE_PASS_TARGET, tolerance: float = TOLERANCE,
                       looks: tuple[int, ...] = LOOKS) -> tuple[float, float]:
    """(upper bound on the false-failure rate, upper bound on P(pass) when a share is off by tolerance)."""
    healthy = characteristic(expected, alpha=alpha, beta=beta, tolerance=tolerance, looks=looks)
    return 1 - healthy.pass_low, false_pass_bound(expected, alpha=alpha, beta=beta, tolerance=tolerance, looks=looks)
