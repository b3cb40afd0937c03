"""Names, labels, annotations and messages of Istio objects the suite looks for.

Each function or constant cites the upstream file it was read from. Charts live under
manifests/charts/istio-control/istio-discovery/templates/ in istio/istio (abbreviated CHART below).
"""

from __future__ import annotations

from multirev.istio.capabilities import supports
from multirev.istio.versions import IstioVersion

DEFAULT_ISTIO_NAMESPACE = "istio-system"

# Labels and annotations (CHART/mutatingwebhook.yaml, revision-tags*.yaml at 1.18.5 and 1.30.3).
REV_LABEL = "istio.io/rev"
TAG_LABEL = "istio.io/tag"
INJECTION_LABEL = "istio-injection"  # legacy label; wins over istio.io/rev in the webhook selectors
INJECT_POD_LABEL = "sidecar.istio.io/inject"
# istio@1.30.3:operator/pkg/manifest/name.go: which IstioOperator (name, namespace) an installed object belongs to
OWNING_RESOURCE_LABEL = "install.operator.istio.io/owning-resource"
OWNING_RESOURCE_NAMESPACE_LABEL = "install.operator.istio.io/owning-resource-namespace"
# The Istio release that templated a CRD: base chart crds.yaml replaces the static labels with istio.labels
# (zzz_profile.yaml), which sets app.kubernetes.io/version to the chart's appVersion (istio@1.30.3). CRDs of
# releases that applied the static files (istio@1.18.5:manifests/charts/base/templates/crds.yaml) carry none.
CRD_VERSION_LABEL = "app.kubernetes.io/version"
# The base chart's appVersion is a placeholder that istio/release-builder replaces with the release's version
# (manifests/charts/base/Chart.yaml@1.18.5 and @1.30.3); a build from source keeps it.
CHART_PLACEHOLDER_VERSION = "1.0.0"


def crd_version_label(version: IstioVersion) -> str:
    """What an install of `version` writes into its CRDs' app.kubernetes.io/version."""
    return CHART_PLACEHOLDER_VERSION if version.is_dev else str(version)
COMPONENT_LABEL = "operator.istio.io/component"  # istio@1.30.3:operator/pkg/install/install.go getOwnerLabels
SIDECAR_STATUS_ANNOTATION = "sidecar.istio.io/status"  # istio@1.30.3:pkg/kube/inject/inject.go
REV_ANNOTATION = "istio.io/rev"  # files/injection-template.yaml: the injecting istiod's own revision
NATIVE_SIDECAR_ANNOTATION = "sidecar.istio.io/nativeSidecar"  # since 1.24 (injection-template.yaml)
PROXY_CONTAINER = "istio-proxy"
INIT_CONTAINER = "istio-init"
ISTIOD_CONTAINER = "discovery"

# Webhook entry names inside revision and tag MutatingWebhookConfigurations (CHART/mutatingwebhook.yaml).
REV_NAMESPACE_WEBHOOK = "rev.namespace.sidecar-injector.istio.io"
REV_OBJECT_WEBHOOK = "rev.object.sidecar-injector.istio.io"
DEFAULT_NAMESPACE_WEBHOOK = "namespace.sidecar-injector.istio.io"
DEFAULT_OBJECT_WEBHOOK = "object.sidecar-injector.istio.io"
INJECT_PATH = "/inject"
VALIDATE_PATH = "/validate"
VALIDATION_WEBHOOK = "rev.validation.istio.io"  # CHART/validatingwebhookconfiguration.yaml
# The validator of config without istio.io/rev, made with the default tag (istio@1.30.3:
# manifests/charts/default/templates/validatingwebhook.yaml; istio@1.18.5: manifests/charts/base/templates/default.yaml)
DEFAULT_VALIDATOR = "istiod-default-validator"
# The tag the first revisioned `istioctl install` makes on a cluster that has none: istioctl/pkg/tag/generate.go
# DefaultRevisionName, used by operator/pkg/webhook/webhook.go (release-1.30 at 9739e10eb9d7) and by
# operator/cmd/mesh/install.go (istio@1.18.5).
DEFAULT_TAG = "default"
# What `istioctl tag set default` (and so the first revisioned install) sets as both selectors of every webhook of the
# default revision's own injector, deactivating it (istio@1.30.3: istioctl/pkg/util/common.go NeverMatch, used by
# istioctl/pkg/tag/util.go DeactivateIstioInjectionWebhook; the same at 1.29.6 and release-1.31).
NEVER_MATCH = {"matchLabels": {"istio.io/deactivated": "never-match"}}


# The revision of a control plane installed without one: the charts' `istio.io/rev` label value then (istio@1.30.3:
# manifests/charts/istio-control/istio-discovery/templates/_helpers.tpl and every template's labels), and the
# revision the suite means by `default` in a profile or --installed. Its objects carry no revision in their names
# (each template's `{{- if not (eq .Values.revision "") }}-{{ .Values.revision }}{{- end }}`).
DEFAULT_REVISION = "default"


def injection_labels(revision: str, tag: str) -> dict[str, str]:
    """The namespace labels that put an app namespace on a revision: `istio.io/rev=<tag>`, or for the default revision
    the label most meshes use, `istio-injection=enabled`, which the `default` tag's webhook selects, or without one
    the revision's own injector (istio@1.30.3: CHART/revision-tags-mwc.yaml and mutatingwebhook.yaml, webhook
    namespace.sidecar-injector.istio.io; it wins over istio.io/rev)."""
    if revision == DEFAULT_REVISION:
        return {INJECTION_LABEL: "enabled"}
    return {REV_LABEL: tag}


def _suffix(namespace: str) -> str:
    return "" if namespace == DEFAULT_ISTIO_NAMESPACE else f"-{namespace}"


def _rev(revision: str) -> str:
    """`-<revision>` in a chart object's name; nothing for the default revision (see DEFAULT_REVISION)."""
    return "" if revision in ("", DEFAULT_REVISION) else f"-{revision}"


def istiod_name(revision: str) -> str:
    """Deployment, Service and ServiceAccount of a revision (CHART/deployment.yaml, service.yaml@1.30.3): `istiod`
    for the default revision."""
    return f"istiod{_rev(revision)}"


def istiod_service_for(rev_label: str) -> str:
    """The istiod Service a webhook configuration labelled istio.io/rev=<rev_label> is rendered to call: `istiod-<rev>`,
    or `istiod` for the label value `default`, which the charts write when no revision is set (istio@1.30.3:
    CHART/mutatingwebhook.yaml, validatingwebhookconfiguration.yaml, revision-tags-mwc.yaml and
    manifests/charts/default/templates/validatingwebhook.yaml; istio@1.18.5: the same CHART files and
    manifests/charts/base/templates/default.yaml). The webhook's Service namespace is the revision's own."""
    return istiod_name(rev_label)


def injector_configmap_name(revision: str) -> str:
    """The injection templates and values istiod reads (CHART/istiod-injector-configmap.yaml, 1.18.5 and 1.30.3)."""
    return f"istio-sidecar-injector{_rev(revision)}"


def injector_webhook_name(revision: str, namespace: str) -> str:
    """CHART/mutatingwebhook.yaml: a namespace suffix only outside istio-system."""
    return f"istio-sidecar-injector{_rev(revision)}{_suffix(namespace)}"


def validator_webhook_name(revision: str, namespace: str) -> str:
    """CHART/validatingwebhookconfiguration.yaml: the namespace suffix is always present."""
    return f"istio-validator{_rev(revision)}-{namespace}"


def tag_webhook_name(tag: str, istio_namespace: str) -> str:
    """istio@1.30.3:CHART/revision-tags-mwc.yaml (istio@1.18.5: revision-tags.yaml); the namespace is `-i`."""
    return f"istio-revision-tag-{tag}{_suffix(istio_namespace)}"


def cluster_scoped_suffix(revision: str, namespace: str) -> str:
    """How a revision's ClusterRoles and ClusterRoleBindings end: `-<revision>-<release namespace>`
    (istio@1.30.3: CHART/clusterrole.yaml, clusterrolebinding.yaml, reader-clusterrole.yaml; the namespace is always
    appended, the revision when set)."""
    return f"{_rev(revision)}-{namespace}"


def installed_state_name(iop_name: str, revision: str) -> str:
    """The IstioOperator `istioctl install` < 1.21 saves: `installed-state`, then `-<metadata.name>` and
    `-<revision>` when set (istio@1.18.5, 1.19.3:operator/cmd/mesh/install.go savedIOPName)."""
    return "-".join(part for part in ("installed-state", iop_name, revision) if part)


def installed_state_name_pruned(revision: str) -> str:
    """The one installed-state name `uninstall --revision` < 1.21 deletes: `installed-state-<revision>`, so a
    named IstioOperator's saved copy stays (istio@1.18.5:operator/pkg/helmreconciler/common.go
    getIstioOperatorCRName, prune.go)."""
    return installed_state_name("", revision)


# Components `uninstall --revision` prunes; Base (CRDs, the default validator) stays
# (istio@1.18.5:operator/pkg/helmreconciler/prune.go includeCN, also IstioOperator there;
# istio@1.30.3:operator/pkg/uninstall/prune.go).
REVISION_PRUNED_COMPONENTS = frozenset({"Pilot", "IngressGateways", "EgressGateways", "Cni", "IstioOperator",
                                        "IstiodRemote", "Ztunnel"})


def tag_service_name(tag: str) -> str:
    """istio@1.28.0+:CHART/revision-tags-svc.yaml (created by `tag set` since 1.28)."""
    return f"istiod-revision-tag-{tag}"


def mesh_configmap_name(revision: str) -> str:
    """CHART/configmap.yaml: the revision's mesh config (`istio` for the default revision)."""
    return f"istio{_rev(revision)}"


def proxy_image(version: IstioVersion) -> str:
    """The sidecar image a release build injects (hub from istio/release-builder release/build.sh)."""
    hub = "registry.istio.io/release" if supports(version, "release-hub-registry-istio-io") else "docker.io/istio"
    return f"{hub}/proxyv2:{version}"


def image_tag(image: str) -> str:
    """'docker.io/istio/proxyv2:1.18.5' -> '1.18.5'; '' for an image pinned by digest alone (`name@sha256:...`)."""
    last = image.rsplit("/", 1)[-1].split("@", 1)[0]
    return last.split(":", 1)[1] if ":" in last else ""


# The image variants the injector appends to the proxy's tag as `-<variant>` (global.variant, ProxyConfig
# image.imageType, annotation sidecar.istio.io/proxyImageType), the tag's version unchanged (istio@1.30.3:
# pkg/kube/inject/inject.go KnownImageTypes, updateImageTypeIfPresent; the same at 1.29.6 and release-1.31).
IMAGE_VARIANTS = ("distroless", "debug")


def image_version(image: str) -> str:
    """The Istio version an image's tag names, a variant suffix taken off: 'proxyv2:1.29.6-distroless' -> '1.29.6';
    '' where the image is pinned by digest alone (the version must then be read from what runs)."""
    tag = image_tag(image)
    for variant in IMAGE_VARIANTS:
        if tag.endswith(f"-{variant}"):
            return tag[: -len(variant) - 1]
    return tag


def image_variant(image: str) -> str:
    """'distroless' or 'debug' where the tag carries one, else ''."""
    tag = image_tag(image)
    return next((v for v in IMAGE_VARIANTS if tag.endswith(f"-{v}")), "")


# `pilot-agent version --short` in the proxy container prints the version pilot-agent was built as
# (istio@1.30.3: pkg/version/cobra.go, registered in pilot/cmd/pilot-agent/app/cmd.go); that build version is also
# what the proxy reports to istiod as its ISTIO_VERSION (pkg/bootstrap/config.go SetIstioVersion).
PROXY_VERSION_COMMAND = ("pilot-agent", "version", "--short")


def discovery_address(revision: str, namespace: str) -> str:
    """tests/integration/pilot/revisions/revision_tag_test.go: what `pc bootstrap` shows."""
    return f"{istiod_name(revision)}.{namespace}.svc:15012"


# Messages printed by istioctl (istio@1.18.5:istioctl/cmd/tag.go, istio@1.30.3:istioctl/pkg/tag/tag.go).
TAG_LIST_HEADER = ("TAG", "REVISION", "NAMESPACES")


def tag_created_message(tag: str, revision: str) -> str:
    return (
        f'Revision tag "{tag}" created, referencing control plane revision "{revision}". To enable injection '
        f"using this\nrevision tag, use 'kubectl label namespace <NAMESPACE> istio.io/rev={tag}'"
    )


def tag_list_empty_message(version: IstioVersion) -> str:
    """What `tag list` prints with no tag: the new text since 1.28 (istioctl/pkg/tag/tag.go@1.28.0, the same through
    1.30.3; @1.27.0 and @1.20.0 the old one)."""
    if version.minor_line >= (1, 28):
        return "No Istio revision tags found."
    return "No Istio revision tag MutatingWebhookConfigurations to list"


def push_line_suffix(version: IstioVersion) -> str:
    """How the push line of a config change ends (capability push-line-forced): `full=true` up to 1.30, and from
    1.31 `forced=false` for an ordinary config change."""
    return "forced=false" if supports(version, "push-line-forced") else "full=true"


# What an istiod writes into its own namespace while it runs, beside what its chart installs: leader-election locks
# (ConfigMaps, or Leases for some; the per-revision ones are named <id>-<revision>: istio@1.30-dev and 1.31-dev
# pilot/pkg/leaderelection/leaderelection.go) and, where no cacerts is plugged in, its self-signed CA
# (security/pkg/pki/ca/ca.go CASecret). In a namespace the run borrowed they outlive the run's istiods.
ISTIOD_ELECTION_IDS = (
    "istio-namespace-controller-election", "istio-clustertrustbundle-controller-election",
    "istio-serviceexport-controller-election", "istio-leader", "istio-gateway-status-leader", "istio-status-leader",
    "istio-analyze-leader", "istio-gateway-deployment", "istio-gateway-inferencepool", "istio-node-untaint",
    "istio-ip-autoallocate",
)
ISTIOD_CA_SECRET = "istio-ca-secret"


def istiod_runtime_names(revisions: set[str]) -> set[str]:
    """Names of what istiods of these revisions may write into their namespace at run time (ISTIOD_ELECTION_IDS)."""
    return {*ISTIOD_ELECTION_IDS, *(f"{eid}-{rev}" for eid in ISTIOD_ELECTION_IDS for rev in revisions),
            ISTIOD_CA_SECRET}
