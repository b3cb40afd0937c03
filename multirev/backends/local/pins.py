"""What the local backend builds: every Go module it compiles, pinned in one cited table.

Each pin names the module, its exact version and the `h1:` checksum of its module zip. The Go command
also checks every module against the checksum database (GOSUMDB), and the build refuses to run with
checksum checks turned off; the `h1:` values here additionally tie the pin to what was reviewed.

Istio tags are not semantic versions, so the module proxy serves them as pseudo-versions of the tag's
commit. Where the proxy this project's CI reaches refuses a pin, `served_here` says so, and
docs/backends.md quotes the refusal.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModulePin:
    module: str
    version: str
    zip_sum: str  # h1: hash of the module zip, as `go mod download -json` reports it
    source: str  # where the version and its fitness were checked


@dataclass(frozen=True)
class Replacement:
    """A dependency of a pin that the module proxy refuses, replaced (all its versions) by a served one."""

    module: str
    version: str
    reason: str  # why the served version is fit: what it changes against the one the pin requires


@dataclass(frozen=True)
class IstioPin:
    """istioctl and pilot-discovery of one Istio version."""

    version: str  # what the binaries report (`istioctl version`, injected image tags)
    pin: ModulePin
    commit: str
    ref: str  # the tag, or the branch for a build of an untagged commit
    hub: str  # default image registry the build bakes in
    tags: tuple[str, ...]  # Go build tags of upstream's release build
    version_package: str  # where buildVersion and friends live
    served_here: bool = True
    notes: list[str] = field(default_factory=list)
    replaces: tuple[Replacement, ...] = ()


# Kubernetes 1.35 lies inside the ranges of every minor the profiles pin (1.29: 1.31-1.35, 1.30 and 1.31:
# 1.32-1.36; see multirev/istio/capabilities.py) and above istioctl's MinK8SVersion 32
# (istio@1.30.3:istioctl/pkg/install/k8sversion/version.go). v1.35.4 is the newest 1.35 patch served.
KUBERNETES = ModulePin(
    "k8s.io/kubernetes", "v1.35.4", "h1:o/8dBC/pHVpYoGV4OAIytAlNPZbdYVTXJHoYvXC4qzM=",
    "kubernetes@v1.35.4: go.mod (staging replace lines); hack/lib/version.sh (version ldflags)",
)

# The etcd Kubernetes 1.35 is built and tested with: kubernetes@v1.35.4 build/dependencies.yaml (etcd 3.6.6),
# cmd/kubeadm/app/constants/constants.go (DefaultEtcdVersion 3.6.6-0) and hack/lib/etcd.sh (ETCD_VERSION).
ETCD = ModulePin(
    "go.etcd.io/etcd/server/v3", "v3.6.6", "h1:YSRWGJPzU+lIREwUQI4MfyLZrkUyzjJOVpMxJvZePaY=",
    "kubernetes@v1.35.4: build/dependencies.yaml, cmd/kubeadm/app/constants/constants.go, hack/lib/etcd.sh",
)

# A fake kubelet: one node, pods Running/Ready without containers (v0.8.0 needs Go >= 1.26.0).
KWOK = ModulePin(
    "sigs.k8s.io/kwok", "v0.8.0", "h1:OTIOTwgROqPMovcTwxICx2eYQ4AwLpSx5EpjbDKF4SQ=",
    "kwok@v0.8.0: go.mod; kustomize/stage/ (node and pod stages)",
)

# The Helm CLI, for `--installer helm` (helm@v4.3.0: go.mod wants Go 1.26.0; cmd/helm is the main package), the
# version kind and existing clusters download (multirev/helmcli.py).
HELM = ModulePin(
    "helm.sh/helm/v4", "v4.3.0", "h1:wLRTNXzy96ro7waurWMsymlUPaCQOj5nokpJZJNen/w=",
    "helm@v4.3.0: go.mod; Makefile (LDFLAGS set internal/version.version)",
)

_MODERN_TAGS = ("vtprotobuf", "disable_pgv")  # istio@1.30.3:Makefile.core.mk STANDARD_TAGS
_MODERN_VERSION_PKG = "istio.io/istio/pkg/version"  # istio@1.30.3:common/scripts/report_build_info.sh
_LEGACY_VERSION_PKG = "istio.io/pkg/version"  # istio@1.18.5:common/scripts/report_build_info.sh
_REFUSED = "the module proxy answers 403 Forbidden: This module version is not available"

# Dependencies of release-1.30 at 9739e10eb9d7 that the module proxy refuses (403 Forbidden: This module
# version is not available), each replaced by a served version; a changed list rebuilds (build.is_built).
_GCP_SERVED = "v1.37.1-0.20260713214202-ca8ce173c36f"  # what the 1.31-dev pin resolves
_RELEASE_1_30_REPLACES = (
    Replacement("istio.io/api", "v1.30.8",
                "the pin wants v1.30.4-0.20260824163423-69099aec2678; istio/api release-1.30 from 1.30.3 to 1.30.8 "
                "changes no proto and no generated Go"),
    Replacement("istio.io/client-go", "v1.30.8", "generated from istio.io/api; the same reason"),
    Replacement("github.com/envoyproxy/go-control-plane/envoy", _GCP_SERVED,
                "newer than the pin's: it only adds fields and packages (and moves three listener-manager types "
                "Istio 1.30 does not use)"),
    Replacement("github.com/envoyproxy/go-control-plane/contrib", "v1.36.1-0.20260713214202-ca8ce173c36f",
                "released together with the envoy module above, which it requires"),
    Replacement("github.com/agentgateway/agentgateway/api", "v0.0.0-20260501213430-773586679f1c",
                "a few days older than the pin's, without a few policy types; Istio's sources compile against it "
                "and only its agentgateway controller, which the suite does not use, could notice"),
)

ISTIO: dict[str, IstioPin] = {
    # Release tags: the pseudo-version of each tag's commit (istio/istio tags 1.30.3 and 1.29.6).
    "1.30.3": IstioPin(
        "1.30.3", ModulePin("istio.io/istio", "v0.0.0-20260713165634-56df41f63e51", "", "istio@1.30.3: go.mod"),
        "56df41f63e513f834c9a3af33d8aed82d1d961f2", "1.30.3", "registry.istio.io/release", _MODERN_TAGS,
        _MODERN_VERSION_PKG, served_here=False, notes=[_REFUSED],
    ),
    "1.29.6": IstioPin(
        "1.29.6", ModulePin("istio.io/istio", "v0.0.0-20260713140233-7019d6d3608e", "", "istio@1.29.6: go.mod"),
        "7019d6d3608e4995e9a36d2977cfec3a341431cd", "1.29.6", "docker.io/istio", _MODERN_TAGS,
        _MODERN_VERSION_PKG, served_here=False, notes=[_REFUSED],
    ),
    "1.19.3": IstioPin(
        "1.19.3", ModulePin("istio.io/istio", "v0.0.0-20231011023022-41218ffa66c1", "", "istio@1.19.3: go.mod"),
        "41218ffa66c1", "1.19.3", "docker.io/istio", (), _LEGACY_VERSION_PKG, served_here=False,
        notes=[_REFUSED],
    ),
    "1.18.5": IstioPin(
        "1.18.5", ModulePin("istio.io/istio", "v0.0.0-20231011021742-2dddcc9c9238",
                            "h1:Tsqo6tG/29d5Sd4+H70xEXHJP3YgtetbLdjSFARBkm4=", "istio@1.18.5: go.mod"),
        "2dddcc9c9238", "1.18.5", "docker.io/istio", (), _LEGACY_VERSION_PKG,
        notes=["until late 2026 the checksum database had no record of it (404 Not Found); it answers now, and "
               "the whole module graph is served (served-answers.json), but no build of it was tried with Go 1.26"],
    ),
    # Untagged release-branch commits the module proxy serves here. Upstream names such a build
    # `<VERSION file>-dev` (istio@1.30.3:Makefile.core.mk), and so does this suite. 1.31-dev's whole module
    # graph is served; 1.30-dev's is once five dependencies are replaced. The `local-dev` profile runs both.
    "1.30-dev": IstioPin(
        "1.30-dev",
        ModulePin("istio.io/istio", "v0.0.0-20260826214018-9739e10eb9d7",
                  "h1:9IbnPSiY/JyfYWT90jSMeLY4h0TeEcApgjD/9GsrIfA=",
                  "release-1.30 after 1.30.3, before 1.30.4 (VERSION file 1.30; k8s.io/client-go v0.35.3)"),
        "9739e10eb9d7", "release-1.30", "registry.istio.io/release", _MODERN_TAGS, _MODERN_VERSION_PKG,
        replaces=_RELEASE_1_30_REPLACES,
    ),
    "1.31-dev": IstioPin(
        "1.31-dev",
        ModulePin("istio.io/istio", "v0.0.0-20260827124520-eed52ebb66ad",
                  "h1:ui9TJjRMAV/hb5ehQaZDq7IUGxuQP6dra9lapT/VjHI=",
                  "release-1.31 after 1.31.0-rc.0 (VERSION file 1.31; go 1.26.0; k8s.io/client-go v0.36.1)"),
        "eed52ebb66ad", "release-1.31", "registry.istio.io/release", _MODERN_TAGS, _MODERN_VERSION_PKG,
    ),
}


def istio_pin(version: str) -> IstioPin | None:
    return ISTIO.get(version)
