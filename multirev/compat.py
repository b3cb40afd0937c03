"""Can two Istio versions run side by side, and on which Kubernetes?"""

from __future__ import annotations

from dataclasses import dataclass

from multirev.errors import UsageError
from multirev.istio.capabilities import KUBERNETES_SUPPORT_SOURCE, kubernetes_range
from multirev.istio.versions import IstioVersion, KubeVersion
from multirev.kind.images import NODE_IMAGES, NodeImage, image_for_override


@dataclass(frozen=True)
class KubeRange:
    low: KubeVersion
    high: KubeVersion

    def __contains__(self, version: object) -> bool:
        return isinstance(version, KubeVersion) and self.low <= version <= self.high

    def __str__(self) -> str:
        return f"{self.low}-{self.high}"


def common_kubernetes(stable: IstioVersion, canary: IstioVersion) -> KubeRange:
    """The Kubernetes minors both versions support; an error if there are none."""
    s_low, s_high = kubernetes_range(stable)
    c_low, c_high = kubernetes_range(canary)
    low, high = max(s_low, c_low), min(s_high, c_high)
    if low > high:
        raise UsageError(
            f"Istio {stable} supports Kubernetes {s_low}-{s_high} and Istio {canary} supports "
            f"{c_low}-{c_high}: no Kubernetes version runs both (source: {KUBERNETES_SUPPORT_SOURCE})"
        )
    return KubeRange(low, high)


def choose_node_image(stable: IstioVersion, canary: IstioVersion, override: str | None) -> NodeImage:
    """The newest pinned node image inside the common range, unless --kind-image overrides it."""
    supported = common_kubernetes(stable, canary)
    if override:
        chosen = image_for_override(override)
        if chosen.kubernetes not in supported:
            raise UsageError(f"--kind-image {override} runs Kubernetes {chosen.kubernetes}, which Istio {stable} and "
                             f"{canary} do not both support (they share {supported}; source: "
                             f"{KUBERNETES_SUPPORT_SOURCE})")
        return chosen
    for minor in sorted(NODE_IMAGES, reverse=True):
        if minor in supported:
            return NODE_IMAGES[minor]
    raise UsageError(
        f"no pinned kind node image for Kubernetes {supported} (needed by Istio {stable} and {canary}); "
        "pass --kind-image kindest/node:vX.Y.Z@sha256:..."
    )
