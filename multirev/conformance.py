"""Declaring a conformance test: what it certifies, its feature, the manifests it needs.

Modelled on the Gateway API conformance suite, where each test is a small declarative value.
Here the value is attached to the test function, and pytest markers carry it to selection
(``-m feature``, ``-k canary``) and to the per-feature report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import pytest

F = TypeVar("F", bound=Callable)

FEATURES = ("install", "tags", "webhooks", "injection", "xds-isolation", "gateway", "gateway-api", "weighted-routing",
            "discovery-address", "canary-upgrade", "re-apply", "egress", "analyze", "uninstall")


@dataclass(frozen=True)
class ConformanceInfo:
    feature: str
    manifests: tuple[str, ...]
    canary: bool
    stage: int  # 0 observes, 1 changes the mesh and restores it, 2 removes things (runs last)
    needs_envoy: bool = False  # needs running proxies (traffic, bootstrap); skipped where none run


ENVOY_MARK = "needs_envoy"


def conformance(*, feature: str, manifests: tuple[str, ...] = (), canary: bool = False,
                mutates: bool = False, destructive: bool = False, needs_envoy: bool = False) -> Callable[[F], F]:
    if feature not in FEATURES:
        raise ValueError(f"unknown feature {feature!r}; add it to multirev.conformance.FEATURES")

    def declare(fn: F) -> F:
        if not (fn.__doc__ or "").strip():
            raise ValueError(f"{fn.__name__}: a conformance test says in its docstring what it certifies")
        stage = 2 if destructive else 1 if mutates else 0
        fn.__conformance__ = ConformanceInfo(feature, manifests, canary, stage,  # type: ignore[attr-defined]
                                             needs_envoy)
        fn = pytest.mark.feature(feature)(fn)
        if destructive:
            fn = pytest.mark.destructive(fn)
        if canary:
            fn = pytest.mark.canary(fn)
        return fn
    return declare


def info_of(item: pytest.Item) -> ConformanceInfo | None:
    return getattr(getattr(item, "function", None), "__conformance__", None)
