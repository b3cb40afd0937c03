"""Pins are dated: a stale one is visible in every self-test run, without the network."""

from __future__ import annotations

import datetime
import warnings

from multirev.kind.images import MODERN_KIND, NODE_IMAGES
from multirev.pins import CHECKED_PINS, STALE_AFTER, CheckedPin, stale
from multirev.profile import load_profile


class StalePinWarning(UserWarning):
    """A pin whose last upstream check is older than multirev.pins.STALE_AFTER."""


def test_pins_checked_recently_or_warn() -> None:
    """Warns (and the warning shows in the run's summary) for each pin last checked too long ago."""
    for line in stale():
        warnings.warn(StalePinWarning(line), stacklevel=1)


def test_a_pin_past_its_age_is_reported() -> None:
    pin = CheckedPin("kind", "v0.1.0", datetime.date(2026, 1, 1), "https://example.invalid/kind")
    assert stale((pin,), today=pin.checked + STALE_AFTER) == []
    [line] = stale((pin,), today=pin.checked + STALE_AFTER + datetime.timedelta(days=1))
    assert line.startswith("kind: pinned v0.1.0, last checked 2026-01-01 (91 days ago)")


def test_the_table_names_what_the_suite_pins() -> None:
    """The dated rows are the pins the code uses: kind release, the current node image, current Istio."""
    pinned = " ".join(p.pinned for p in CHECKED_PINS)
    assert MODERN_KIND in pinned
    current = load_profile("current")
    newest_node = max(NODE_IMAGES[v].image for v in NODE_IMAGES if v.minor == 35)
    assert newest_node.split(":")[1].split("@")[0] in pinned
    assert str(current.stable.version) in pinned and str(current.canary.version) in pinned
