"""Shared helpers for the conformance suites; fixtures live in fixtures/."""

from __future__ import annotations

import pytest


def assert_no_problems(problems: list[str], what: str) -> None:
    __tracebackhide__ = True
    if problems:
        pytest.fail(f"{what}:\n  - " + "\n  - ".join(problems), pytrace=False)


# The workloads each scenario needs, declared the Gateway-API way: set-up applies them to every app namespace,
# gateway config (Gateways and the VirtualServices bound to them) only to the revision's first (fixtures/mesh.py).
BOOKINFO = ("samples:bookinfo/platform/kube/bookinfo.yaml", "samples:bookinfo/networking/bookinfo-gateway.yaml",
            "samples:bookinfo/networking/destination-rule-all.yaml")
SAMPLE_APPS = ("sample-apps/nginx-echo.yaml",)
# A Gateway API Gateway of the revision and its HTTPRoutes (gateway namespace only), and the per-version Services its
# weighted route splits over.
GATEWAY_API = ("samples:bookinfo/platform/kube/bookinfo-versions.yaml", "gateway-api/bookinfo.yaml")
CLIENT = ("workloads/mesh-client.yaml",)

# --installed: why the tests that change or remove a revision are skipped.
NOT_OURS = "--installed: the run never {what} a revision it did not install"
