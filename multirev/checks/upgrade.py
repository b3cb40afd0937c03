"""Did traffic keep flowing while a namespace moved between revisions?"""

from __future__ import annotations

from dataclasses import dataclass, field

MIN_SUCCESS = 0.995  # the share of in-mesh requests that must succeed during a move


@dataclass
class Tally:
    ok: int = 0
    failed: int = 0
    first_failures: list[str] = field(default_factory=list)

    def add(self, status: int, detail: str) -> None:
        if 200 <= status < 400:
            self.ok += 1
            return
        self.failed += 1
        if len(self.first_failures) < 3:
            self.first_failures.append(f"HTTP {status} {detail.strip()[:100]}")

    @property
    def total(self) -> int:
        return self.ok + self.failed


def check_tally(what: str, tally: Tally, requests: str = "in-mesh requests") -> list[str]:
    if tally.total == 0:
        return [f"{what}: no requests were sent"]
    share = tally.ok / tally.total
    if share < MIN_SUCCESS:
        return [f"{what}: {tally.failed} of {tally.total} {requests} failed ({share:.1%} succeeded, "
                f"{MIN_SUCCESS:.1%} required); first failures: {'; '.join(tally.first_failures)}"]
    return []
