"""A proxy's version is what runs, not the image string: the `-distroless` and `-debug` variants name the same version
(issue 26, item 3), and an image pinned by digest is judged by what the proxy itself reports."""

from __future__ import annotations

import json

import pytest

from multirev.checks.injection import check_pod, needs_running_version, proxy_version_from
from multirev.istio import facts
from multirev.istio.versions import IstioVersion
from multirev.profile import ControlPlane

PLANE = ControlPlane("stable", IstioVersion.parse("1.29.6"), "istio-stable", "1-29-6", "stable", ("app-stable",))
DIGEST = "docker.io/istio/proxyv2@sha256:" + "ab" * 32


def _pod(image: str) -> dict:
    return {"metadata": {"name": "client-1", "annotations": {
        facts.REV_ANNOTATION: PLANE.revision,
        facts.SIDECAR_STATUS_ANNOTATION: json.dumps({"revision": PLANE.revision})}},
        "spec": {"containers": [{"name": "app"}, {"name": facts.PROXY_CONTAINER, "image": image}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


@pytest.mark.parametrize("image", ["docker.io/istio/proxyv2:1.29.6", "docker.io/istio/proxyv2:1.29.6-distroless",
                                   "registry.istio.io/release/proxyv2:1.29.6-debug",
                                   "my.registry:5000/istio/proxyv2:1.29.6-distroless@sha256:" + "cd" * 32])
def test_variants_of_the_right_version_pass(image: str) -> None:
    assert check_pod(PLANE, "app-stable", _pod(image)) == []


def test_a_variant_of_another_version_is_named() -> None:
    [problem] = check_pod(PLANE, "app-stable", _pod("docker.io/istio/proxyv2:1.29.5-distroless"))
    assert problem == ("Pod app-stable/client-1 runs proxy docker.io/istio/proxyv2:1.29.5-distroless, whose version "
                       "1.29.5 differs from its control plane 1-29-6 (Istio 1.29.6)")


def test_a_digest_is_judged_by_what_the_proxy_reports() -> None:
    pod = _pod(DIGEST)
    assert needs_running_version(pod)
    assert not needs_running_version(_pod("docker.io/istio/proxyv2:1.29.6-distroless"))
    assert check_pod(PLANE, "app-stable", pod, "1.29.6") == []
    [other] = check_pod(PLANE, "app-stable", pod, "1.29.5")
    assert other == (f"Pod app-stable/client-1 runs proxy {DIGEST}, pinned by digest, which reports version 1.29.5; "
                     "its control plane 1-29-6 is Istio 1.29.6")
    [unknown] = check_pod(PLANE, "app-stable", pod)
    assert unknown.startswith(f"Pod app-stable/client-1 runs proxy {DIGEST}, pinned by digest, and its version could "
                              "not be read from the proxy (`pilot-agent version --short` in istio-proxy)")


def test_the_short_version_output_is_parsed() -> None:
    assert proxy_version_from("client version: 1.30.3\n") == "1.30.3"
    assert proxy_version_from("client version: 1.31-dev\nextra\n") == "1.31-dev"
    assert proxy_version_from("Error: unknown flag: --short\n") is None


def test_image_versions_and_variants() -> None:
    assert facts.image_version("docker.io/istio/pilot:1.30.3-distroless") == "1.30.3"
    assert facts.image_variant("docker.io/istio/pilot:1.30.3-distroless") == "distroless"
    assert facts.image_version("docker.io/istio/proxyv2:1.30-dev") == "1.30-dev"
    assert facts.image_version(DIGEST) == ""
    assert facts.image_variant("docker.io/istio/proxyv2:1.30.3") == ""


def test_an_evicted_pod_is_named_as_evicted() -> None:
    pod = _pod("docker.io/istio/proxyv2:1.29.6")
    pod["status"] = {"phase": "Failed", "reason": "Evicted",
                     "message": "The node was low on resource: memory. Threshold quantity: 100Mi, available: 20Mi."}
    assert check_pod(PLANE, "app-stable", pod) == [
        "Pod app-stable/client-1 was evicted by the kubelet (The node was low on resource: memory. Threshold "
        "quantity: 100Mi, available: 20Mi.): the node ran short of a resource"]
    pod["status"] = {"phase": "Failed", "reason": "OOMKilled"}
    assert check_pod(PLANE, "app-stable", pod) == [
        "Pod app-stable/client-1 has failed (phase Failed, reason OOMKilled)"]
