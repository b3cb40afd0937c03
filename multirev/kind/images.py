"""Which kind release and node image to use for a Kubernetes minor.

Node images must be pinned by digest and used with the kind release that built them (kind's
release notes say so; v0.32.0's notes add that `kind load` needs v0.32.0 with its images).
Rows come from the "Pre-built images for Kind vX" lists, as collected in
kubernetes-sigs/cluster-api@v1.14.0:test/infrastructure/kind/mapper.go, and from each kind tag's
kind@<tag>:pkg/apis/config/defaults/image.go.
"""

from __future__ import annotations

from dataclasses import dataclass

from multirev.istio.versions import KubeVersion


@dataclass(frozen=True)
class NodeImage:
    kind_version: str
    image: str

    @property
    def kubernetes(self) -> KubeVersion:
        return KubeVersion.parse(self.image.split(":v", 1)[1])


# The newest kind release the suite pins, used whenever it has an image for the chosen minor.
MODERN_KIND = "v0.32.0"

NODE_IMAGES: dict[KubeVersion, NodeImage] = {
    KubeVersion(1, 36): NodeImage(MODERN_KIND, "kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5"),
    KubeVersion(1, 35): NodeImage(MODERN_KIND, "kindest/node:v1.35.5@sha256:ce977ae6d65918d0b58a5f8b5e940429c2ce42fa3a5619ec2bbc60b949c0ac95"),
    KubeVersion(1, 34): NodeImage(MODERN_KIND, "kindest/node:v1.34.8@sha256:02722c2dedddcfc00febf5d27fbeb9b7b2c14294c82109ff4a85d89ac9ba3256"),
    KubeVersion(1, 33): NodeImage(MODERN_KIND, "kindest/node:v1.33.12@sha256:3f5c8443c620245e4d355cfe09e96a91ead32ceaa569d3f1ca9edf0cb2fe2ff4"),
    # Older minors are not published for v0.32.0: use the release that built them.
    KubeVersion(1, 32): NodeImage("v0.31.0", "kindest/node:v1.32.11@sha256:5fc52d52a7b9574015299724bd68f183702956aa4a2116ae75a63cb574b35af8"),
    KubeVersion(1, 31): NodeImage("v0.31.0", "kindest/node:v1.31.14@sha256:6f86cf509dbb42767b6e79debc3f2c32e4ee01386f0489b3b2be24b0a55aac2b"),
    KubeVersion(1, 30): NodeImage("v0.29.0", "kindest/node:v1.30.13@sha256:397209b3d947d154f6641f2d0ce8d473732bd91c87d9575ade99049aa33cd648"),
    KubeVersion(1, 29): NodeImage("v0.27.0", "kindest/node:v1.29.14@sha256:8703bd94ee24e51b778d5556ae310c6c0fa67d761fae6379c8e0bb480e6fea29"),
    KubeVersion(1, 28): NodeImage("v0.25.0", "kindest/node:v1.28.15@sha256:a7c05c7ae043a0b8c818f5a06188bc2c4098f6cb59ca7d1856df00375d839251"),
    KubeVersion(1, 27): NodeImage("v0.25.0", "kindest/node:v1.27.16@sha256:2d21a61643eafc439905e18705b8186f3296384750a835ad7a005dceb9546d20"),
    KubeVersion(1, 26): NodeImage("v0.25.0", "kindest/node:v1.26.15@sha256:c79602a44b4056d7e48dc20f7504350f1e87530fe953428b792def00bc1076dd"),
}


def image_for_override(image: str) -> NodeImage:
    """An explicit --kind-image runs with the modern kind binary unless its minor has a pinned pair."""
    try:
        minor = KubeVersion.parse(image.rsplit(":v", 1)[1])
    except (IndexError, ValueError):
        return NodeImage(MODERN_KIND, image)
    pinned = NODE_IMAGES.get(minor)
    return NodeImage(pinned.kind_version if pinned else MODERN_KIND, image)
