"""What each Istio minor line supports, as a table of cited rows.

Each row names a behaviour the suite depends on, the first minor that has it and (optionally)
the first minor that no longer has it. Code asks ``supports(version, NAME)`` instead of
comparing version numbers, so every version-dependent branch points back to one cited row.
"""

from __future__ import annotations

from dataclasses import dataclass

from multirev.errors import UsageError
from multirev.istio.versions import IstioVersion, KubeVersion

Minor = tuple[int, int]


@dataclass(frozen=True)
class Capability:
    name: str
    since: Minor
    until: Minor | None  # first minor without it
    source: str  # upstream file and tag the row was read from
    meaning: str
    # Patch releases of older minors that got the behaviour as a backport, e.g. (1, 19, 5).
    backports: tuple[tuple[int, int, int], ...] = ()


CAPABILITIES: tuple[Capability, ...] = (
    Capability(
        "tag-command", (1, 18), None,
        "istio@1.18.5:istioctl/cmd/root.go; istio@1.30.3:istioctl/pkg/tag/tag.go",
        "`istioctl tag set|list|remove` exists (the `x revision tag` form was dropped in 1.21)",
    ),
    Capability(
        "tag-list-output-flag", (1, 30), None,  # checked at 1.30.3 only; 1.19.3 lacks it
        "istio@1.18.5:istioctl/cmd/tag.go (no -o on the top-level `tag list`); istio@1.30.3:istioctl/pkg/tag/tag.go",
        "`istioctl tag list -o json` is accepted; the suite parses the table, which every minor prints",
    ),
    Capability(
        "tag-strips-operator-labels", (1, 21), None,
        "istio@1.21.0, 1.19.5, 1.20.1:istioctl/pkg/tag/generate.go (generateLabels, userManaged); absent at 1.19.4 "
        "and 1.20.0",
        "objects made by `tag set` carry no operator.istio.io/* labels, so `uninstall` (which selects by "
        "operator.istio.io/component) leaves them",
        backports=((1, 19, 5), (1, 20, 1)),
    ),
    Capability(
        "install-progress-icons", (1, 23), None,
        "istio@1.22.0 vs istio@1.23.0:operator/pkg/util/progress/progress.go (successIcon)",
        "`istioctl install` prints an icon after each `✔ <component> installed` line",
    ),
    Capability(
        "install-error-detail", (1, 24), None,
        "istio@1.23.0 vs istio@1.24.0:operator/cmd/mesh/install.go (`errors occurred during operation` dropped)",
        "a failed `istioctl install` ends with the component's error instead of `errors occurred during operation`",
    ),
    Capability(
        "client-version-prefix", (1, 23), None,
        "istio@1.22.0 vs istio@1.23.0:pkg/version/cobra.go",
        "`istioctl version --remote=false` prints `client version: X` instead of a bare `X`",
    ),
    Capability(
        "native-sidecars-setting", (1, 19), None,
        "istio@1.19.3:pilot/pkg/features/pilot.go",
        "ENABLE_NATIVE_SIDECARS exists (default false until 1.27)",
    ),
    Capability(
        "release-hub-registry-istio-io", (1, 30), None,
        "istio@1.30.3:releasenotes/notes/use-registry-istio-io.yaml; "
        "istio/release-builder@release-1.30:release/build.sh",
        "release builds pull images from registry.istio.io/release instead of docker.io/istio",
    ),
    Capability(
        "tag-list-shows-untagged", (1, 21), None,
        "istio@1.21.0:istioctl/pkg/tag/tag.go",
        "`tag list` also prints revisions without a tag, with an empty TAG column",
    ),
    Capability(
        "uninstall-command", (1, 18), None,
        "istio@1.18.5:istioctl/cmd/root.go, operator/cmd/mesh/uninstall.go; "
        "istio@1.30.3:operator/cmd/mesh/uninstall.go",
        "top-level `istioctl uninstall` with -r/--revision, --purge and -y (1.18 also has --istioNamespace)",
    ),
    Capability(
        "installed-state-iop", (1, 18), (1, 21),
        "istio@1.21.0:releasenotes/notes/drop-iop.yaml",
        "`istioctl install` writes an installed-state IstioOperator into the revision's namespace",
    ),
    Capability(
        "enhanced-scoping-env", (1, 18), (1, 25),
        "istio@1.22.0:pilot/pkg/features/pilot.go; istio@1.25.0:pilot/pkg/features/pilot.go",
        "ENABLE_ENHANCED_RESOURCE_SCOPING is a setting (default on from 1.22, always on from 1.25)",
    ),
    Capability(
        "istiod-ip-autoallocate", (1, 25), None,
        "istio@1.25.0:pilot/pkg/features/pilot.go (PILOT_ENABLE_IP_AUTOALLOCATE defaults to true); "
        "istio@1.30.3:pilot/pkg/model/service.go (a sidecar uses the address only with DNS capture); "
        "istio@1.18.5:pilot/pkg/model/service.go (before: needs DNS_CAPTURE and DNS_AUTO_ALLOCATE node metadata)",
        "istiod gives ServiceEntries without addresses one (status.addresses); before, the agent did when "
        "ISTIO_META_DNS_AUTO_ALLOCATE was set",
    ),
    Capability(
        "native-sidecars-auto", (1, 27), None,
        "istio@1.27.0:pilot/pkg/features/pilot.go",
        "ENABLE_NATIVE_SIDECARS defaults to auto: native sidecars when every kubelet is >= 1.33",
    ),
    Capability(
        "uninstall-selects-owning-resource", (1, 24), None,
        "istio@1.24.0:operator/cmd/mesh/uninstall.go, operator/pkg/uninstall/prune.go GetPrunedResources; "
        "istio@1.30.3: same",
        "`uninstall --revision` also selects owning-resource(-namespace) labels from the IstioOperator it is given "
        "(without -f: the default profile's metadata, namespace istio-system)",
    ),
    Capability(
        "tag-service", (1, 28), None,
        "istio@1.28.0:manifests/charts/istio-control/istio-discovery/templates/revision-tags-svc.yaml",
        "`istioctl tag set` also creates Service istiod-revision-tag-<tag>",
    ),
    Capability(
        "push-line-forced", (1, 31), None,
        "istio release-1.30 at 9739e10eb9d7 vs release-1.31 at eed52ebb66ad: pilot/pkg/xds/discovery.go (the "
        "`Push debounce stable[...]` log line); both seen in the real istiods' logs on the local backend",
        "the push line of a config change ends `forced=false` instead of `full=true`",
    ),
    Capability(
        "tag-remove-deletes-validator", (1, 31), None,
        "istio release-1.31 at eed52ebb66ad: istioctl/pkg/tag/tag.go removeTag calls util.go "
        "DeleteTagValidatingWebhooks; release-1.30 at 9739e10eb9d7 and 1.30.3 delete only the tag's "
        "MutatingWebhookConfigurations and Services",
        "`istioctl tag remove <tag>` also deletes the ValidatingWebhookConfigurations labelled istio.io/tag=<tag> "
        "(for `default`, istiod-default-validator)",
    ),
    Capability(
        "gateway-api-v1", (1, 29), None,
        "istio@1.29.6:go.mod requires sigs.k8s.io/gateway-api v1.4.1 (1.30.3: v1.5.1, 1.31.0-rc.0: v1.6.0); "
        "istio@1.19.3:go.mod v0.8.0, istio@1.18.5 v0.6.2",
        "built with a v1 Gateway API module: the suite's gateway-api feature installs its pinned standard channel "
        "(multirev/istio/gateway_api.py); older minors skip the feature with the reason",
    ),
    Capability(
        "gateway-status-resolved-refs", (1, 31), None,
        "istio@1.31.0-rc.0:pilot/pkg/config/kube/gateway/conversion.go reportGatewayStatus (gatewayConditions holds "
        "ResolvedRefs); absent at 1.30.3; seen on the real 1.31-dev and 1.30-dev istiods (tests/local)",
        "a Gateway API Gateway's status carries a ResolvedRefs condition beside Accepted and Programmed",
    ),
    Capability(
        "proxy-status-subscribed-types", (1, 29), None,
        "istio@1.29.0:istioctl/pkg/proxystatus/proxystatus.go",
        "`proxy-status` prints NAME CLUSTER ISTIOD VERSION SUBSCRIBED TYPES instead of per-xDS columns",
    ),
)

# Kubernetes minors each Istio minor supports (istio/istio.io data/compatibility/supportStatus.yml).
# Minors whose range could not be confirmed upstream are left out: the suite refuses them.
KUBERNETES_SUPPORT: dict[Minor, tuple[KubeVersion, KubeVersion]] = {
    (1, 18): (KubeVersion(1, 24), KubeVersion(1, 27)),
    (1, 19): (KubeVersion(1, 25), KubeVersion(1, 28)),
    (1, 20): (KubeVersion(1, 25), KubeVersion(1, 29)),
    (1, 21): (KubeVersion(1, 26), KubeVersion(1, 29)),
    (1, 22): (KubeVersion(1, 27), KubeVersion(1, 30)),
    # 1.23-1.25: istio.io content/en/news/releases/1.2x.x/announcing-1.2x/_index.md ("officially supported on")
    (1, 23): (KubeVersion(1, 27), KubeVersion(1, 30)),
    (1, 24): (KubeVersion(1, 28), KubeVersion(1, 31)),
    (1, 25): (KubeVersion(1, 29), KubeVersion(1, 32)),
    (1, 26): (KubeVersion(1, 29), KubeVersion(1, 33)),
    (1, 27): (KubeVersion(1, 29), KubeVersion(1, 33)),
    (1, 28): (KubeVersion(1, 30), KubeVersion(1, 34)),
    # 1.29 to 1.31: istio.io content/en/news/releases/1.29.x/announcing-1.29, 1.30.x/announcing-1.30 and
    # 1.31.x/announcing-1.31 (_index.md, "officially supported on Kubernetes versions"; 1.31.0 published
    # 2026-08-20). istioctl's own floor agrees: istioctl/pkg/install/k8sversion/version.go MinK8SVersion = 32
    # at release-1.30 and release-1.31.
    (1, 29): (KubeVersion(1, 31), KubeVersion(1, 35)),
    (1, 30): (KubeVersion(1, 32), KubeVersion(1, 36)),
    (1, 31): (KubeVersion(1, 32), KubeVersion(1, 36)),
}
KUBERNETES_SUPPORT_SOURCE = "istio/istio.io:data/compatibility/supportStatus.yml"

_BY_NAME = {row.name: row for row in CAPABILITIES}
# Set by --assume-facts-of for prereleases of a minor the table does not know yet (nightly CI).
_ASSUMED_LIKE: list[Minor] = []


def assume_facts_of(text: str) -> Minor:
    """Let minors newer than every known one borrow `text`'s Kubernetes range (an explicit, reported choice)."""
    try:
        major, minor = (int(part) for part in text.strip().split(".")[:2])
    except ValueError as exc:
        raise UsageError(f"--assume-facts-of takes a minor such as 1.30, not '{text}'") from exc
    if (major, minor) not in KUBERNETES_SUPPORT:
        raise UsageError(f"--assume-facts-of {text}: the suite has no facts for that minor either")
    _ASSUMED_LIKE[:] = [(major, minor)]
    return (major, minor)


def _facts_minor(version: IstioVersion) -> Minor:
    if version.minor_line in KUBERNETES_SUPPORT:
        return version.minor_line
    if _ASSUMED_LIKE and version.minor_line > max(KUBERNETES_SUPPORT):
        return _ASSUMED_LIKE[0]
    return version.minor_line


def known_minors() -> str:
    minors = sorted(KUBERNETES_SUPPORT)
    return ", ".join(f"{a}.{b}" for a, b in minors)


def check_known(version: IstioVersion) -> None:
    """Refuse a version whose minor this suite has no cited facts for."""
    if _facts_minor(version) not in KUBERNETES_SUPPORT:
        raise UsageError(
            f"unknown Istio version {version}: this suite has checked facts for minors "
            f"{known_minors()} only (for a newer prerelease, --assume-facts-of {max(KUBERNETES_SUPPORT)[0]}."
            f"{max(KUBERNETES_SUPPORT)[1]} borrows the newest minor's facts)"
        )


def supports(version: IstioVersion, name: str) -> bool:
    row = _BY_NAME[name]
    if version.minor_line < row.since:
        return any(version.minor_line == (major, minor) and version.patch >= patch
                   for major, minor, patch in row.backports)
    return row.until is None or version.minor_line < row.until


def kubernetes_range(version: IstioVersion) -> tuple[KubeVersion, KubeVersion]:
    check_known(version)
    return KUBERNETES_SUPPORT[_facts_minor(version)]
