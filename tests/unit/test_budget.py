"""The scheduler's sum of a pod's requests (issue 16, finding 2)."""

from __future__ import annotations

from decimal import Decimal

from multirev.budget import pod_requests


def _c(name: str, cpu: str, memory: str, **extra: str) -> dict:
    return {"name": name, "resources": {"requests": {"cpu": cpu, "memory": memory}}, **extra}


def test_an_injected_pod_with_a_native_sidecar_counts_app_and_proxy_once() -> None:
    """istio-init gets the proxy's requests too (the injection template's one resources block), but init
    containers run before the sidecar and the app, so they do not add up."""
    pod = {"spec": {"initContainers": [_c("istio-init", "100m", "128Mi"),
                                       _c("istio-proxy", "100m", "128Mi", restartPolicy="Always")],
                    "containers": [_c("app", "50m", "64Mi")]}}
    requests = pod_requests(pod)
    assert requests.cpu == Decimal("0.15")
    assert requests.memory == 192 * 2**20


def test_a_large_init_container_sets_the_pod_request() -> None:
    pod = {"spec": {"initContainers": [_c("migrate", "1", "1Gi")], "containers": [_c("app", "10m", "10Mi")]}}
    assert pod_requests(pod).cpu == 1
