"""What the API server's admission makes of an object, asked without creating anything (server-side dry run,
Cluster.dry_run_create): which istiod injects a pod in a namespace, and whether Istio config is validated."""

from __future__ import annotations

from dataclasses import dataclass

from multirev.backends.base import Cluster
from multirev.errors import AdmissionRefused
from multirev.kube import kinds
from multirev.kube.objects import Obj

PROBE_NAME = "multirev-admission-probe"
# Every Istio config object carrying this annotation is rejected by istiod's validation webhook; istiod's own
# validation controller sends such an object to learn that its webhook answers (istio@1.30.3:
# pkg/config/constants/constants.go AlwaysReject, pkg/config/validation/validation.go validateMetadata,
# pkg/webhooks/validation/controller/controller.go; the same at release-1.30 9739e10eb9d7 and release-1.31
# eed52ebb66ad).
ALWAYS_REJECT_ANNOTATION = "internal.istio.io/webhook-always-reject"
# How the API server words a webhook's denial (apiserver@v0.35.3: pkg/admission/plugin/webhook/errors/
# statuserror.go ToStatusErr): a refusal without it came from elsewhere (schema, a webhook that could not be called).
DENIED = "denied the request"


@dataclass(frozen=True)
class Admitted:
    """The object as the API server would store it, or the server's reason for refusing it."""

    obj: Obj | None
    refused: str | None = None


def _admit(cluster: Cluster, obj: Obj) -> Admitted:
    try:
        return Admitted(cluster.dry_run_create(obj))
    except AdmissionRefused as exc:
        return Admitted(None, str(exc))


def admit_pod(cluster: Cluster, namespace: str, labels: dict[str, str]) -> Admitted:
    """A plain pod in `namespace`, as mutating admission (the injector) leaves it."""
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": PROBE_NAME, "namespace": namespace, "labels": {"app": PROBE_NAME, **labels}},
           # Never started: a dry run pulls no image.
           "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}
    return _admit(cluster, pod)


def admit_config(cluster: Cluster, namespace: str, labels: dict[str, str], *, always_reject: bool) -> Admitted:
    """A valid DestinationRule with these labels (none: config that names no revision), optionally carrying the
    annotation every istiod's validation rejects."""
    annotations = {ALWAYS_REJECT_ANNOTATION: "true"} if always_reject else {}
    rule = {"apiVersion": kinds.DESTINATION_RULE.api_version, "kind": kinds.DESTINATION_RULE.kind,
            "metadata": {"name": PROBE_NAME, "namespace": namespace, "labels": dict(labels),
                         "annotations": annotations},
            "spec": {"host": f"{PROBE_NAME}.{namespace}.svc.cluster.local"}}
    return _admit(cluster, rule)
