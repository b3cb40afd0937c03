"""When each upstream pin was last checked against upstream, and what was newer then.

Pins age: kind, node images and Istio patches move on. Each row says what the suite pins, the day someone
last compared it with upstream, and what upstream had that the suite did not adopt (and why). The
self-tests (tests/unit/test_pin_freshness.py) warn once a row is older than STALE_AFTER, without needing
the network: the date is the evidence.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

STALE_AFTER = datetime.timedelta(days=90)


@dataclass(frozen=True)
class CheckedPin:
    what: str
    pinned: str
    checked: datetime.date
    source: str
    not_adopted: str = ""  # newer upstream releases seen on that day, and why the pin stays


CHECKED_PINS = (
    CheckedPin("kind", "v0.33.0", datetime.date(2026, 11, 30),
               "https://github.com/kubernetes-sigs/kind/releases/tag/v0.33.0"),
    CheckedPin("kindest/node for `current` (Kubernetes 1.32-1.35)", "v1.35.8 (kind v0.33.0, by digest)",
               datetime.date(2026, 11, 30), "kind v0.33.0 release notes, Images pre-built for this release"),
    CheckedPin("Istio 1.30 (current canary)", "1.30.3", datetime.date(2026, 11, 30),
               "https://istio.io/latest/news/releases/1.30.x/",
               "1.30.4 (2026-08-27): the istio mirror here ends at 1.30.3 and the Go proxy refuses release tags, so "
               "the suite's facts cannot be re-checked in its source"),
    CheckedPin("Istio 1.29 (current stable)", "1.29.6", datetime.date(2026, 11, 30),
               "https://istio.io/latest/news/releases/1.29.x/",
               "1.29.9, the last 1.29 (end of life 2026-10-15): same reason; a 1.30 + 1.31 `current` waits for "
               "1.31 source to check facts against (the mirror has 1.31.0-rc.0 only)"),
)


def stale(pins: tuple[CheckedPin, ...] = CHECKED_PINS, today: datetime.date | None = None) -> list[str]:
    """One line per pin whose last check is older than STALE_AFTER."""
    today = today or datetime.date.today()
    return [f"{pin.what}: pinned {pin.pinned}, last checked {pin.checked.isoformat()} "
            f"({(today - pin.checked).days} days ago); compare with {pin.source} and update multirev/pins.py"
            for pin in pins if today - pin.checked > STALE_AFTER]
