"""Which kind release and node image to use for a Kubernetes minor.

Node images must be pinned by digest and used with the kind release that built them (kind's
release notes say so; v0.32.0's notes add that `kind load` needs v0.32.0 with its images).
Rows come from the "Pre-built images for Kind vX" lists, as collected in
kubernetes-sigs/cluster-api@v1.14.0:test/infrastructure/kind/mapper.go, and from each kind tag's
kind@<tag>:pkg/apis/config/defaults/image.go. The v0.33.0 rows are from its release notes
(https://github.com/kubernetes-sigs/kind/releases/tag/v0.33.0, "Images pre-built for this release"; the
kind mirror here ends at v0.33.0-alpha). When these pins were last checked is in multirev/pins.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from multirev.errors import UsageError
from multirev.istio.versions import KubeVersion


@dataclass(frozen=True)
class NodeImage:
    kind_version: str
    image: str

    @property
    def kubernetes(self) -> KubeVersion:
        return KubeVersion.parse(self.image.split(":v", 1)[1])


# The newest kind release the suite pins, used whenever it has an image for the chosen minor.
MODERN_KIND = "v0.33.0"

NODE_IMAGES: dict[KubeVersion, NodeImage] = {
    KubeVersion(1, 37): NodeImage(MODERN_KIND, "kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5"),
    KubeVersion(1, 36): NodeImage(MODERN_KIND, "kindest/node:v1.36.4@sha256:099e049362a1526b2db71494e1947aae99bd16290d7c895f2b7ea312e3cbfaed"),
    KubeVersion(1, 35): NodeImage(MODERN_KIND, "kindest/node:v1.35.8@sha256:07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0"),
    KubeVersion(1, 34): NodeImage(MODERN_KIND, "kindest/node:v1.34.11@sha256:44e222ee2132dab25ff87301682f89eb82c7880ea3a1bf543bfe9708fd08d67d"),
    # Older minors are not published for v0.33.0: use the release that built them.
    KubeVersion(1, 33): NodeImage("v0.32.0", "kindest/node:v1.33.12@sha256:3f5c8443c620245e4d355cfe09e96a91ead32ceaa569d3f1ca9edf0cb2fe2ff4"),
    KubeVersion(1, 32): NodeImage("v0.31.0", "kindest/node:v1.32.11@sha256:5fc52d52a7b9574015299724bd68f183702956aa4a2116ae75a63cb574b35af8"),
    KubeVersion(1, 31): NodeImage("v0.31.0", "kindest/node:v1.31.14@sha256:6f86cf509dbb42767b6e79debc3f2c32e4ee01386f0489b3b2be24b0a55aac2b"),
    KubeVersion(1, 30): NodeImage("v0.29.0", "kindest/node:v1.30.13@sha256:397209b3d947d154f6641f2d0ce8d473732bd91c87d9575ade99049aa33cd648"),
    KubeVersion(1, 29): NodeImage("v0.27.0", "kindest/node:v1.29.14@sha256:8703bd94ee24e51b778d5556ae310c6c0fa67d761fae6379c8e0bb480e6fea29"),
    KubeVersion(1, 28): NodeImage("v0.25.0", "kindest/node:v1.28.15@sha256:a7c05c7ae043a0b8c818f5a06188bc2c4098f6cb59ca7d1856df00375d839251"),
    KubeVersion(1, 27): NodeImage("v0.25.0", "kindest/node:v1.27.16@sha256:2d21a61643eafc439905e18705b8186f3296384750a835ad7a005dceb9546d20"),
    KubeVersion(1, 26): NodeImage("v0.25.0", "kindest/node:v1.26.15@sha256:c79602a44b4056d7e48dc20f7504350f1e87530fe953428b792def00bc1076dd"),
}


# A kind node image names its Kubernetes release in its tag (kind's images are tagged v<release>), optionally pinned
# by digest: `kindest/node:v1.35.8@sha256:...`.
_NODE_IMAGE = re.compile(r"^[^\s@:]+(?::\d+)?(?:/[^\s@:]+)*:v(\d+\.\d+\.\d+)(?:@sha256:[0-9a-f]{64})?$")


def image_for_override(image: str) -> NodeImage:
    """An explicit --kind-image runs with the modern kind binary unless its minor has a pinned pair; an image whose
    tag names no Kubernetes release is refused in one line."""
    match = _NODE_IMAGE.match(image.strip())
    if match is None:
        raise UsageError(f"--kind-image {image!r} is not a kind node image: expected <name>:v<Kubernetes release>, "
                         "optionally @sha256:<digest>, e.g. kindest/node:v1.35.8")
    minor = KubeVersion.parse(match.group(1))
    pinned = NODE_IMAGES.get(minor)
    return NodeImage(pinned.kind_version if pinned else MODERN_KIND, image.strip())
