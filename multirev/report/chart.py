"""The weighted-routing chart for reports: expected vs observed share per subset, with the test's verdict.

Drawn with matplotlib's object-oriented API on an Agg canvas: no pyplot, so no global figure state shared
between tests or threads, and no GUI backend is ever selected (safe under pytest-xdist and headless CI).
"""

from __future__ import annotations

import textwrap
from io import BytesIO

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from multirev.stats import WeightVerdict

SIZE_IN, DPI = (6.4, 4.0), 100
EXPECTED_COLOR, OBSERVED_COLOR, INTERVAL_COLOR = "#9e9e9e", "#2f6fd0", "#222222"
PASS_COLOR, FAIL_COLOR = "#1a7f37", "#c62828"
BAR_WIDTH = 0.38
VERDICT_WRAP = 72  # characters of the bold 9.5 pt verdict line that fit the figure's width


def verdict_line(verdict: WeightVerdict) -> str:
    """'PASS — 612 requests — every share is within tolerance of its weight', as printed on the chart."""
    requests = f"{verdict.requests} request" + ("" if verdict.requests == 1 else "s")
    if verdict.unclassified:
        requests += f" ({verdict.unclassified} unclassified)"
    return f"{'PASS' if verdict.passed else 'FAIL'} — {requests} — {verdict.reason}"


def share_chart(verdict: WeightVerdict, *, title: str) -> bytes:
    """PNG bytes: grouped bars per subset (expected weight, observed share with its interval), the verdict
    line in green or red under `title` (what was tested, e.g. "reviews v1/v2/v3 at 50/10/40 % via canary")."""
    names = list(verdict.subsets)
    results = list(verdict.subsets.values())
    expected = [r.expected for r in results]
    observed = [r.share(verdict.requests) for r in results]
    # Wilson intervals contain the observed share; the clamp only guards against rounding.
    below = [max(0.0, share - r.low) for share, r in zip(observed, results, strict=True)]
    above = [max(0.0, r.high - share) for share, r in zip(observed, results, strict=True)]

    fig = Figure(figsize=SIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = range(len(names))
    left = ax.bar([x - BAR_WIDTH / 2 for x in xs], expected, BAR_WIDTH, color=EXPECTED_COLOR,
                  label="expected (route weight)")
    right = ax.bar([x + BAR_WIDTH / 2 for x in xs], observed, BAR_WIDTH, color=OBSERVED_COLOR,
                   label="observed share", yerr=[below, above], capsize=6,
                   error_kw={"ecolor": INTERVAL_COLOR, "elinewidth": 1.5})
    ax.bar_label(left, labels=[f"{v:.0%}" for v in expected], padding=2, fontsize=8, color="#555555")
    # On the observed bar the label sits above the interval's whisker (bar_label follows error bars).
    ax.bar_label(right, labels=[f"{v:.1%}" if verdict.requests else "no data" for v in observed], padding=2,
                 fontsize=8, color=OBSERVED_COLOR)

    # Smaller subset labels past four subsets, so "378 of 1200" under neighbouring groups cannot touch.
    ax.set_xticks(list(xs), [f"{name}\n{r.observed} of {verdict.requests}" for name, r in zip(names, results,
                                                                                              strict=True)],
                  fontsize=10 if len(names) <= 4 else 8)
    ax.set_xlim(-0.6, max(len(names), 1) - 0.4)
    # Headroom above 100 % keeps the labels of a full-share bar inside the axes; ticks stop at 100 %.
    ax.set_ylim(0, 1.12)
    ax.set_yticks([i / 5 for i in range(6)])
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylabel("share of requests")
    ax.grid(axis="y", color="#e0e0e0", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)

    fig.suptitle(title, fontsize=11, fontweight="bold")
    ax.set_title(textwrap.fill(verdict_line(verdict), VERDICT_WRAP), fontsize=9.5, fontweight="bold",
                 color=PASS_COLOR if verdict.passed else FAIL_COLOR)
    # Outside the axes, below the subset names, so it can never cover a bar.
    fig.legend([left, right, right.errorbar], ["expected (route weight)", "observed share",
                                               "99% interval of the observed share"],
               loc="outside lower center", ncol=3, frameon=False, fontsize=8.5)

    out = BytesIO()
    fig.savefig(out, format="png", dpi=DPI, metadata={"Software": None})
    return out.getvalue()
