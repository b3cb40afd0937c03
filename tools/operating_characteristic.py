"""The weighted-routing verdict's operating characteristic: tables for docs/weighted-routing.md and its plot.

    .venv/bin/python tools/operating_characteristic.py [--runs 4000] [--png docs/img/weighted-routing-oc.png]

For 50/10/40 with one share skewed by 0..12 points, prints P(pass), mean and 99th-percentile requests, each
as the exact figure from multirev.stats.characteristic (bounds: three counts) next to a simulation of
judge_weights itself; then the healthy figures for all-to-one and every two-way split (exact). Writes the
plot with matplotlib's Agg backend. The simulation is seeded, so the output is reproducible.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from multirev.stats import (
    FALSE_PASS_TARGET,
    LOOKS,
    TOLERANCE,
    Characteristic,
    characteristic,
    exact_error_bounds,
    judge_weights,
)

WEIGHTS = {"v1": 0.5, "v2": 0.1, "v3": 0.4}
SKEWS = range(13)  # points
# (label, subset losing the points, subset gaining them, colour)
SCENARIOS = [
    ("v2 +s (from v1)", "v1", "v2", "#d62728"),
    ("v2 −s (to v1)", "v2", "v1", "#2ca02c"),
    ("v1 +s (from v3)", "v3", "v1", "#1f77b4"),
]
DEFAULT_PNG = Path(__file__).resolve().parents[1] / "docs" / "img" / "weighted-routing-oc.png"


@dataclass
class Point:
    skew: int
    exact: Characteristic
    passed: float  # simulated
    mean: float
    p99: float


def shifted(loser: str, gainer: str, points: int) -> dict[str, float] | None:
    shares = dict(WEIGHTS)
    shares[loser] = round(shares[loser] - points / 100, 12)
    shares[gainer] = round(shares[gainer] + points / 100, 12)
    return shares if min(shares.values()) >= 0 else None


def simulate(true_shares: dict[str, float], runs: int, rng: np.random.Generator) -> tuple[float, float, float]:
    names, shares = list(true_shares), list(true_shares.values())

    def draw(n: int) -> dict[str, int]:
        return dict(zip(names, rng.multinomial(n, shares).tolist(), strict=True))

    verdicts = [judge_weights(draw, WEIGHTS) for _ in range(runs)]
    requests = np.array([v.requests for v in verdicts])
    return (float(np.mean([v.passed for v in verdicts])), float(requests.mean()),
            float(np.quantile(requests, 0.99, method="inverted_cdf")))


def sweep(loser: str, gainer: str, runs: int, rng: np.random.Generator) -> list[Point]:
    points = []
    for skew in SKEWS:
        shares = shifted(loser, gainer, skew)
        if shares is not None:
            points.append(Point(skew, characteristic(WEIGHTS, shares), *simulate(shares, runs, rng)))
    return points


def probability(value: float) -> str:
    if 0.999 < value < 1:
        return f"1 − {1 - value:.1e}"
    if value in (0, 1):
        return f"{value:.0f}"
    return f"{value:.1e}" if value < 1e-3 else f"{value:.4f}"


def band(low: float, high: float) -> str:
    """One figure when the bounds agree (one count decides), else "low … high"."""
    if high - low < 1e-9:
        return probability(high)
    return f"{probability(low)} … {probability(high)}"


def oc_table(points: list[Point], runs: int) -> str:
    rows = ["| skew (points) | P(pass), exact bounds | P(pass), simulated | mean requests, exact bound "
            "(simulated) | p99 requests, exact bound (simulated) |", "|---:|---:|---:|---:|---:|"]
    for p in points:
        simulated = f"{p.passed:.4f}" if p.passed else f"0 of {runs}"
        rows.append(f"| {p.skew} | {band(p.exact.pass_low, p.exact.pass_high)} | {simulated} | "
                    f"{p.exact.mean_requests:.0f} ({p.mean:.0f}) | {p.exact.p99_requests} ({p.p99:.0f}) |")
    return "\n".join(rows)


def splits_table() -> str:
    splits = [{"v1": 1.0, "v2": 0.0, "v3": 0.0}, *({"a": w / 100, "b": 1 - w / 100} for w in range(10, 91, 10))]
    rows = ["| split | false failure (exact) | P(pass) 10 points off (exact bound) | mean requests | p99 requests |",
            "|---|---:|---:|---:|---:|"]
    for split in splits:
        false_failure, false_pass = exact_error_bounds(split)
        healthy = characteristic(split)
        name = "/".join(f"{w * 100:.0f}" for w in split.values())
        rows.append(f"| {name} | {false_failure:.2e} | {false_pass:.4f} | {healthy.mean_requests:.1f} | "
                    f"{healthy.p99_requests} |")
    return "\n".join(rows)


def plot(curves: list[tuple[str, str, list[Point]]], path: Path) -> None:
    fig = Figure(figsize=(15, 5), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg backend: files only, no display
    chance, mean, p99 = fig.subplots(1, 3)
    for label, colour, points in curves:
        skews = [p.skew for p in points]
        chance.fill_between(skews, [p.exact.pass_low for p in points], [p.exact.pass_high for p in points],
                            color=colour, alpha=0.15, linewidth=0)
        chance.plot(skews, [p.exact.pass_high for p in points], color=colour, label=label)
        chance.plot(skews, [p.passed for p in points], "o", color=colour, markersize=4)
        mean.plot(skews, [p.exact.mean_requests for p in points], color=colour)
        mean.plot(skews, [p.mean for p in points], "o", color=colour, markersize=4)
        p99.plot(skews, [p.exact.p99_requests for p in points], color=colour)
        p99.plot(skews, [p.p99 for p in points], "o", color=colour, markersize=4)
    tolerance = TOLERANCE * 100
    chance.axvline(tolerance, color="grey", linestyle=":", linewidth=1)
    chance.axhline(FALSE_PASS_TARGET, color="grey", linestyle=":", linewidth=1)
    chance.annotate("promise: P(pass) ≤ 0.01\nat ≥ 10 points off", (tolerance, FALSE_PASS_TARGET),
                    xytext=(9.2, 0.32), fontsize=8.5, color="#444444",
                    arrowprops={"arrowstyle": "->", "color": "#888888"})
    chance.set(ylabel="P(pass)", ylim=(-0.02, 1.02), title="Probability of passing")
    mean.set(ylabel="requests", ylim=(0, LOOKS[-1] * 1.05), title="Mean requests")
    p99.set(ylabel="requests", ylim=(0, LOOKS[-1] * 1.05), title="99th-percentile requests")
    for ax in (chance, mean, p99):
        ax.set_xlabel("skew of one share (percentage points)")
        ax.set_xticks(list(SKEWS))
        ax.grid(color="#e0e0e0", linewidth=0.8)
    mean.axhline(500, color="grey", linestyle=":", linewidth=1)
    mean.text(0.2, 120, "dotted: 500, the budget for a healthy split", fontsize=8.5, color="#444444")
    handles = [line for line in chance.get_lines() if not line.get_label().startswith("_")]
    style = [Line2D([], [], color="black", label="exact (P(pass): upper bound, band down to the lower bound; "
                    "requests: upper bound)"),
             Line2D([], [], color="black", marker="o", linestyle="none", markersize=4,
                    label="simulated judge_weights")]
    fig.legend(handles=[*handles, *style], loc="outside lower center", ncol=5, frameon=False, fontsize=9)
    fig.suptitle(f"Weighted-routing verdict for 50/10/40 (v1/v2/v3) with one share moved by s points; "
                 f"looks at {LOOKS[0]}, {LOOKS[1]}, … {LOOKS[-1]} requests", fontsize=12, fontweight="bold")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata={"Software": None})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4000, help="simulated verdicts per point (default 4000)")
    parser.add_argument("--png", type=Path, default=DEFAULT_PNG, help=f"plot file (default {DEFAULT_PNG})")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(20240601)
    curves = [(label, colour, sweep(loser, gainer, args.runs, rng)) for label, loser, gainer, colour in SCENARIOS]
    for label, _, points in curves:
        print(f"### 50/10/40, {label}\n\n{oc_table(points, args.runs)}\n")
    print(f"### Healthy splits\n\n{splits_table()}\n")
    plot(curves, args.png)
    print(f"plot written to {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
