"""Shared helpers for the conformance suites; fixtures live in fixtures/."""

from __future__ import annotations

import pytest

from multirev.profile import ROLES

# Tests that certify one control plane run once per role; node ids end in [stable] or [canary].
per_role = pytest.mark.parametrize("role", ROLES)


def assert_no_problems(problems: list[str], what: str) -> None:
    __tracebackhide__ = True
    if problems:
        pytest.fail(f"{what}:\n  - " + "\n  - ".join(problems), pytrace=False)
