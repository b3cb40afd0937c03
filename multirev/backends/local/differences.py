"""Where the simulated model and the real control plane differ on purpose.

Each entry matches differences found by the model-vs-real self-test (tests/local/test_real_cluster.py)
and says why the model keeps it: either the checks never read that part, or modelling it would copy
upstream's charts wholesale. docs/model-vs-real.md lists the same entries for readers; a difference that
matches no entry fails the self-test, and so does an entry that no longer matches anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from multirev.backends.local.compare import Difference


@dataclass(frozen=True)
class Simplification:
    id: str
    area: str  # regular expression over Difference.area
    subject: str  # regular expression over Difference.subject
    detail: str  # regular expression over Difference.detail
    why: str

    def matches(self, difference: Difference) -> bool:
        return (re.fullmatch(self.area, difference.area) is not None
                and re.search(self.subject, difference.subject) is not None
                and re.search(self.detail, difference.detail) is not None)


_UNREAD = (r"^(HorizontalPodAutoscaler/|Role/|RoleBinding/|ConfigMap/[^/]+/values-|"
           r"ServiceAccount/[^/]+/istio-(ingressgateway|egressgateway|reader)-service-account$|"
           r"CustomResourceDefinition/(authorizationpolicies|envoyfilters|proxyconfigs|requestauthentications|"
           r"telemetries|trafficextensions|wasmplugins|workloadentries|workloadgroups)\.)")

KNOWN: tuple[Simplification, ...] = (
    Simplification(
        "objects-no-check-reads", "install|uninstall|purge", _UNREAD, r"only on the real cluster",
        "The model creates only the objects a check reads or a scenario depends on. Autoscalers, the gateways' and "
        "istiod's namespaced RBAC, the gateway and reader service accounts, the values-<rev> ConfigMap and the CRDs "
        "no scenario uses are never read; uninstall and purge select them by the same labels as the objects the "
        "model does create, so their removal follows the same rule."),
    Simplification(
        "chart-app-labels", "install", r"^(ClusterRole|ClusterRoleBinding|ServiceAccount)/", r"^labels: ",
        "The chart also labels istiod's cluster RBAC and service account app: istiod. No check, selector or "
        "uninstall rule reads that label on these kinds (uninstall selects by revision, component and owner)."),
    Simplification(
        "tag-service-istio-label", "install", r"^Service/[^/]+/istiod-revision-tag-", r"^labels: ",
        "Tag Services carry the chart's istio: pilot label (and the default tag's the operator labels); checks find "
        "tag Services by istio.io/tag and istio.io/rev only, which agree."),
)


def explain(difference: Difference) -> Simplification | None:
    return next((s for s in KNOWN if s.matches(difference)), None)


def unused(differences: list[Difference]) -> list[str]:
    return [s.id for s in KNOWN if not any(s.matches(d) for d in differences)]
