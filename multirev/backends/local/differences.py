"""Where the simulated model and the real control plane differ on purpose.

Each entry matches differences found by the model-vs-real self-test (tests/local/test_real_cluster.py)
and says why the model keeps it: either the checks never read that part, or modelling it would copy
upstream's charts wholesale. docs/model-vs-real.md lists the same entries for readers; a difference that
matches no entry fails the self-test, and so does an entry that no longer matches anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from multirev.backends.local.compare import Difference


@dataclass(frozen=True)
class Simplification:
    id: str
    area: str
    subject: str  # regular expression over Difference.subject
    detail: str  # regular expression over Difference.detail
    why: str

    def matches(self, difference: Difference) -> bool:
        return (difference.area == self.area and re.search(self.subject, difference.subject) is not None
                and re.search(self.detail, difference.detail) is not None)


KNOWN: tuple[Simplification, ...] = ()


def explain(difference: Difference) -> Simplification | None:
    return next((s for s in KNOWN if s.matches(difference)), None)


def unused(differences: list[Difference]) -> list[str]:
    return [s.id for s in KNOWN if not any(s.matches(d) for d in differences)]
