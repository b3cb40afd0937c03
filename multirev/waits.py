"""Bounded waits built on tenacity, on an injected clock.

Every wait names what it awaits and, when it gives up, the last state it saw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import tenacity

from multirev.clock import Clock
from multirev.errors import WaitTimeout

T = TypeVar("T")


@dataclass
class Observation(Generic[T]):
    """What one probe saw: done or not, the value, and a short description for the failure message."""

    done: bool
    value: T
    state: str


def wait_for(
    what: str,
    probe: Callable[[], Observation[T]],
    *,
    clock: Clock,
    timeout: float,
    interval: float = 2.0,
) -> T:
    """Call ``probe`` until it reports done, at most ``timeout`` seconds of ``clock`` time."""
    start = clock.now()
    last: list[Observation[T]] = []

    def observe() -> Observation[T]:
        seen = probe()
        last[:] = [seen]
        return seen

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda obs: not obs.done),
        stop=lambda state: clock.now() - start >= timeout,
        wait=tenacity.wait_fixed(interval),
        sleep=clock.sleep,
        retry_error_callback=lambda state: None,
    )
    result = retrying(observe)
    if result is None or not result.done:
        seen = last[0].state if last else "nothing observed"
        raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}; last seen: {seen}")
    return result.value


def wait_problem(
    what: str,
    probe: Callable[[], Observation[T]],
    *,
    clock: Clock,
    timeout: float,
    interval: float = 2.0,
) -> str | None:
    """Like wait_for, but a timeout becomes a problem sentence for a check to report alongside others."""
    try:
        wait_for(what, probe, clock=clock, timeout=timeout, interval=interval)
    except WaitTimeout as exc:
        return str(exc)
    return None
