"""Gateway API under several revisions: which CRDs an Istio minor reads, and which istiod owns a Gateway.

An owning istiod deploys the Gateway (its deployment controller) and writes its status; what "owns" means changed
between minors, so the rule is kept per minor here, cited, and the checks and the model ask `claims`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from multirev.cachelock import cache_entry_lock
from multirev.download import download_pinned
from multirev.errors import UsageError
from multirev.istio.versions import IstioVersion
from multirev.kube import kinds
from multirev.waits import Observation, wait_for

if TYPE_CHECKING:
    from multirev.backends.base import Cluster

DEFAULT = "default"  # the tag, and the REVISION of an istiod installed without one


@dataclass(frozen=True)
class GatewayApiModule:
    """The `sigs.k8s.io/gateway-api` module an Istio minor is built with (its go.mod), and the `h1:` hash its go.sum
    holds for the module zip: the Gateway API CRDs ship in it (config/crd/standard)."""

    version: str
    zip_sum: str
    source: str


# go.mod and go.sum at each tag; the -dev modules of 1.30 and 1.31 require the same versions as 1.30.3 and 1.31.0-rc.0.
MODULES: dict[tuple[int, int], GatewayApiModule] = {
    (1, 18): GatewayApiModule("v0.6.2", "h1:583XHiX2M2bKEA0SAdkoxL1nY73W1+/M+IAm8LJvbEA=", "istio@1.18.5:go.sum"),
    (1, 19): GatewayApiModule("v0.8.0", "h1:isQQ3Jx2qFP7vaA3ls0846F0Amp9Eq14P08xbSwVbQg=", "istio@1.19.3:go.sum"),
    (1, 29): GatewayApiModule("v1.4.1", "h1:NPxFutNkKNa8UfLd2CMlEuhIPMQgDQ6DXNKG9sHbJU8=", "istio@1.29.6:go.sum"),
    (1, 30): GatewayApiModule("v1.5.1", "h1:RqVRIlkhLhUO8wOHKTLnTJA6o/1un4po4/6M1nRzdd0=", "istio@1.30.3:go.sum"),
    (1, 31): GatewayApiModule("v1.6.0", "h1:735YBRj5NXFrOGX0GoSjwzUIzbz8kiEOfADsqHFmHgE=",
                              "istio@1.31.0-rc.0:go.sum"),
}


def module_for(versions: list[IstioVersion]) -> GatewayApiModule | None:
    """The newer of the modules the run's minors are built with (a newer bundle still serves the older API versions
    an older istiod reads: v1beta1 Gateway and HTTPRoute are served by v1.5.1 and v1.6.0's standard CRDs); None if a
    minor is not in MODULES."""
    found = [MODULES.get(v.minor_line) for v in versions]
    if any(m is None for m in found):
        return None
    return max((m for m in found if m is not None), key=lambda m: _semver(m.version))


# The standard channel's release manifest (standard-install.yaml) of each module version a run may need, by sha256.
# The release script concatenates the module's config/crd/standard/gateway*.yaml under a header
# (hack/build-install-yaml.sh@v1.5.1, same at v1.6.0), so the same bytes are built from the module (install_manifest)
# where nothing can be downloaded (the local backend) and downloaded from the release elsewhere.
RELEASE_MIRROR = "https://github.com/kubernetes-sigs/gateway-api/releases/download"  # <mirror>/<version>/<file>
RELEASE_FILE = "standard-install.yaml"
RELEASE_SHA256 = {
    # The release asset's digest as another project pins it, and what install_manifest makes of the module whose
    # h1: istio@1.30.3:go.sum holds (both checked 2026-12-07).
    "v1.5.1": "751002b3b91a87f7ae3bd2517c79a47a8d7ed6702901808a1cf9bd97d284f9b8",
    # What install_manifest makes of the module whose h1: istio@1.31.0-rc.0:go.sum holds; the release asset could
    # not be fetched here to compare.
    "v1.6.0": "a557172e8348f758479e9ee4000bbbb4b4aa48302a6b73461823ea5349bad56d",
}
_RELEASE_HEADER = "#\n# Gateway API Standard channel install\n#\n"


def install_manifest(module_dir: Path) -> str:
    """standard-install.yaml as the release script builds it from the module: the boilerplate, a header, then each
    config/crd/standard/gateway*.yaml in name order after a `---` and a comment naming it."""
    parts = [(module_dir / "hack/boilerplate/boilerplate.sh.txt").read_text(), _RELEASE_HEADER]
    for path in sorted((module_dir / "config/crd/standard").glob("gateway*.yaml")):
        parts.append(f"---\n#\n# {path.relative_to(module_dir)}\n#\n{path.read_text()}")
    return "".join(parts)


def verified_manifest(text: str, version: str) -> str:
    """`text` if it is the release manifest of `version` byte for byte, else ValueError naming both digests."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    expected = RELEASE_SHA256.get(version)
    if digest != expected:
        raise ValueError(f"Gateway API {version} standard-install.yaml has sha256 {digest}, expected {expected} "
                         "(multirev/istio/gateway_api.py RELEASE_SHA256)")
    return text


def ensure_release_manifest(version: str, *, cache: Path, mirror: str = RELEASE_MIRROR) -> Path:
    """The release's standard-install.yaml of `version` (`<mirror>/<version>/standard-install.yaml`, a URL or a
    folder), downloaded once into `<cache>/gateway-api/<version>/` and kept only if its sha256 is RELEASE_SHA256's;
    for the backends that can download (kind, existing)."""
    expected = RELEASE_SHA256.get(version)
    if expected is None:
        raise UsageError(f"no sha256 is pinned for the Gateway API {version} release manifest "
                         f"(pinned: {', '.join(sorted(RELEASE_SHA256))}; multirev/istio/gateway_api.py)")
    target = cache / "gateway-api" / version / RELEASE_FILE
    if target.exists():
        return target
    with cache_entry_lock(target.parent, timeout=600, what=f"downloading Gateway API {version}"):
        if not target.exists():
            download_pinned(f"{mirror.rstrip('/')}/{version}/{RELEASE_FILE}", expected, target)
    return target


def await_established(cluster: Cluster, crds: list[dict], *, timeout: float = 60.0) -> None:
    """Until every CRD of `crds` (other objects are skipped) says Established: the API server serves its kinds only
    then, and a Gateway applied before gets 404 (seen on a loaded machine)."""
    names = [doc["metadata"]["name"] for doc in crds if doc.get("kind") == "CustomResourceDefinition"]

    def established() -> Observation[list[str]]:
        pending = []
        for name in names:
            crd = cluster.get(kinds.CRD, name)
            conditions = {c.get("type"): c.get("status") for c in ((crd or {}).get("status") or {}).get("conditions")
                          or []}
            if conditions.get("Established") != "True":
                pending.append(name)
        return Observation(not pending, pending, f"not yet Established: {', '.join(pending)}")

    wait_for("the Gateway API CRDs to be Established", established, clock=cluster.clock, timeout=timeout,
             interval=0.5)


def _semver(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.lstrip("v").split("."))


@dataclass(frozen=True)
class IstiodView:
    """What one istiod knows when it decides whether a Gateway is its own."""

    revision: str  # its REVISION: "default" when installed without a revision
    tags: frozenset[str]  # `istio.io/tag` of tag webhooks (1.27+: and tag Services) labelled istio.io/rev=<it>
    is_default_revision: bool = False  # `istiod-default-validator` is labelled istio.io/rev=<revision>

    @property
    def my_tags(self) -> frozenset[str]:
        return self.tags | {self.revision}


def claims(version: IstioVersion, istiod: IstiodView, gateway_rev: str | None, namespace_rev: str | None, *,
           namespace_known: bool = True, default_tag_exists: bool = False) -> bool:
    """Whether the istiod of `version` takes the Gateway as its own: deploys it and writes its status.

    The Gateway's `istio.io/rev` label, else its namespace's, names a revision or tag.
    - 1.28 and later (pkg/revisions/tag_watcher.go@1.29.6 IsMine, same at 1.30.3 and 1.31.0-rc.0): mine if it names
      one of my tags; if it names nothing, mine if I hold the `default` tag, or I am the default revision (the default
      validator is mine) and no `default` tag webhook exists that is not mine. A Gateway whose namespace the istiod
      has not seen is taken.
    - 1.18 and 1.19 (pilot/pkg/config/kube/gateway/deploymentcontroller.go@1.18.7 Reconcile, GetMyTags in
      tag_watcher.go): mine if it names one of my tags, or names nothing and `default` is among my tags (my
      REVISION, or a `default` tag webhook of mine); a Gateway whose namespace is unknown is skipped.
    Other minors are not modelled (ValueError)."""
    selected = gateway_rev if gateway_rev is not None else namespace_rev
    mine = istiod.my_tags
    minor = version.minor_line
    if minor >= (1, 28):
        if gateway_rev is None and not namespace_known:
            return True
        selected = selected or ""
        other_default_tag = default_tag_exists and DEFAULT not in mine
        return selected in mine or (selected == "" and (DEFAULT in mine or (istiod.is_default_revision
                                                                            and not other_default_tag)))
    if minor in ((1, 18), (1, 19)):
        if gateway_rev is None and not namespace_known:
            return False
        selected = selected or ""
        return selected in mine or (selected == "" and DEFAULT in mine)
    raise ValueError(f"the Gateway ownership rule of Istio {version} is not modelled (1.18, 1.19, 1.28 and later are)")


def deployment_name(gateway: str, gateway_class: str = "istio") -> str:
    """The Deployment and Service an owning istiod makes for a Gateway (getDefaultName, pilot/pkg/config/kube/gateway/
    conversion.go@1.29.6; gatewaycommon/gateway_utils.go GetDefaultName@1.30.3)."""
    return f"{gateway}-{gateway_class}"
