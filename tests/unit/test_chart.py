"""The weighted-routing chart renders as a PNG of the expected size, with its verdict in the verdict's colour."""

from __future__ import annotations

from io import BytesIO

import pytest
from matplotlib.colors import to_rgb
from PIL import Image

from multirev.report.chart import DPI, FAIL_COLOR, PASS_COLOR, SIZE_IN, share_chart, verdict_line
from multirev.stats import SubsetResult, WeightVerdict

WEIGHTS = {"v1": 0.5, "v2": 0.1, "v3": 0.4}


def verdict(passed: bool, requests: int, observed: dict[str, int], reason: str,
            weights: dict[str, float] = WEIGHTS) -> WeightVerdict:
    """A verdict with a +-5 point interval around each observed share ([0, 1] with no requests)."""
    subsets = {}
    for name, weight in weights.items():
        share = observed[name] / requests if requests else 0.0
        low, high = (max(0.0, share - 0.05), min(1.0, share + 0.05)) if requests else (0.0, 1.0)
        subsets[name] = SubsetResult(expected=weight, observed=observed[name], low=low, high=high)
    return WeightVerdict(passed=passed, requests=requests, reason=reason, subsets=subsets)


PASSING = verdict(True, 600, {"v1": 297, "v2": 63, "v3": 240}, "every share is within tolerance of its weight")
FAILING = verdict(False, 300, {"v1": 102, "v2": 99, "v3": 99}, "share of v1, v2 is significantly off its weight")


def pixels_of(png: bytes, color: str) -> int:
    """How many pixels have exactly `color` (solid text and bar interiors are not antialiased)."""
    image = Image.open(BytesIO(png)).convert("RGB")
    target = tuple(round(c * 255) for c in to_rgb(color))
    return sum(count for count, rgb in image.getcolors(maxcolors=1 << 20) if rgb == target)


@pytest.mark.parametrize("result, colour, other", [(PASSING, PASS_COLOR, FAIL_COLOR),
                                                   (FAILING, FAIL_COLOR, PASS_COLOR)], ids=["pass", "fail"])
def test_chart_is_a_png_with_the_verdict_in_its_colour(result: WeightVerdict, colour: str, other: str) -> None:
    png = share_chart(result, title="reviews v1/v2/v3 at 50/10/40 % via the canary gateway")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(BytesIO(png)) as image:
        image.verify()
    with Image.open(BytesIO(png)) as image:
        assert image.format == "PNG"
        assert image.size == (round(SIZE_IN[0] * DPI), round(SIZE_IN[1] * DPI))
    assert 5_000 < len(png) < 200_000
    assert pixels_of(png, colour) > 50, "the verdict line is drawn in the verdict's colour"
    assert pixels_of(png, other) == 0


def test_verdict_line_names_outcome_requests_and_reason() -> None:
    assert verdict_line(PASSING) == "PASS — 600 requests — every share is within tolerance of its weight"
    skewed = verdict(False, 1, {"v1": 1, "v2": 0, "v3": 0}, "x")
    skewed.unclassified = 2
    assert verdict_line(skewed) == "FAIL — 1 request (2 unclassified) — x"


@pytest.mark.parametrize("result", [
    verdict(True, 300, {"v1": 300, "v2": 0, "v3": 0}, "every share is within tolerance of its weight",
            weights={"v1": 1.0, "v2": 0.0, "v3": 0.0}),
    verdict(False, 0, {"v1": 0, "v2": 0, "v3": 0}, "no requests sent"),
    WeightVerdict(passed=False, requests=0, reason="no requests sent"),
], ids=["zero-weight-subsets", "no-requests", "no-subsets"])
def test_edge_cases_render(result: WeightVerdict) -> None:
    assert share_chart(result, title="edge case").startswith(b"\x89PNG")
