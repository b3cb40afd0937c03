"""Live progress of long steps: start, end and duration, on the terminal and in the log."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import allure

log = logging.getLogger("multirev")


@contextmanager
def step(what: str) -> Iterator[None]:
    """A long action: logged live with its duration, and an allure step of the test it runs in."""
    started = time.monotonic()
    _say(f"[multirev] {what} ...")
    try:
        with allure.step(what):
            yield
    except BaseException:
        _say(f"[multirev] {what}: failed after {time.monotonic() - started:.1f}s")
        raise
    _say(f"[multirev] {what}: done in {time.monotonic() - started:.1f}s")


def _say(line: str) -> None:
    log.info(line)
    print(line, file=sys.stderr, flush=True)
