"""Shared helpers for the conformance suites; fixtures live in fixtures/."""

from __future__ import annotations

import pytest


def assert_no_problems(problems: list[str], what: str) -> None:
    __tracebackhide__ = True
    if problems:
        pytest.fail(f"{what}:\n  - " + "\n  - ".join(problems), pytrace=False)
