"""Helm bound to one cluster, and the chart values that install a revision the way the suite's IstioOperator does.

Istio documents Helm for revision-based canary upgrades: the `base` chart once (CRDs and the default validator),
the `istiod` chart once per revision with `revision` set, a `gateway` chart per gateway, and revision tags
rendered from the istiod chart's `revisionTags` (istio@1.30-dev and 1.31-dev: manifests/charts/base,
istio-control/istio-discovery, gateway). The charts come from the same release as istioctl: a release archive
holds them under manifests/charts, and so does Istio's Go module (istioctl renders the same charts).

The values are derived from the IstioOperator the istioctl installer would apply (multirev/istio/operator.py),
so both installers ask for the same mesh: `spec.values` are the chart values, `spec.meshConfig` is the chart's
`meshConfig` and a component's `k8s.resources` its `resources` (istio@1.30-dev: operator/pkg/render/
manifest.go merges spec.values and spec.meshConfig into the chart values the same way).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from multirev.commands import Completed, Runner
from multirev.errors import UsageError
from multirev.istio.istioctl import KubeTarget
from multirev.plan import MeshPlan, PlanePlan

INSTALL_TIMEOUT = 600.0
WAIT = "5m"  # helm's own --timeout for --wait
QUICK_TIMEOUT = 120.0

# Chart folders under a release's manifests/charts (istio@1.30-dev: manifests/charts/).
BASE_CHART = "base"
ISTIOD_CHART = "istio-control/istio-discovery"
GATEWAY_CHART = "gateway"
# The istiod chart's revision-tag templates (istio-discovery/templates/revision-tags-mwc.yaml and
# revision-tags-svc.yaml): a MutatingWebhookConfiguration and a Service per entry of `revisionTags`.
TAG_TEMPLATES = ("templates/revision-tags-mwc.yaml", "templates/revision-tags-svc.yaml")
# The istio-egress chart's ports, which the suite's egress Gateway listens on (the gateway chart's defaults
# are 80 and 443 as target ports: manifests/charts/gateway/values.yaml service.ports).
EGRESS_PORTS = [{"name": "http2", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}]


BASE_RELEASE = "istio-base"  # one per cluster, as Istio's Helm install page names it


def istiod_release(plane: PlanePlan) -> str:
    return f"istiod-{plane.plane.revision}"


def tag_release(tag: str) -> str:
    """The release name `helm template` renders a tag under (the chart's `release` label on its objects)."""
    return f"istio-revision-tag-{tag}"


class Helm:
    """The Helm CLI (v4; `upgrade --install`, `uninstall`, `template --show-only` and the root flags
    --kubeconfig/--kube-context exist in v3 too: helm@v4.3.0 pkg/cmd/root.go, upgrade.go, template.go)."""

    def __init__(self, binary: str, runner: Runner, target: KubeTarget, work_dir: Path) -> None:
        self.binary = binary
        self.runner = runner
        self.target = target
        self.work_dir = work_dir

    def _target_flags(self) -> list[str]:
        out = []
        if self.target.kubeconfig:
            out += ["--kubeconfig", self.target.kubeconfig]
        if self.target.context:
            out += ["--kube-context", self.target.context]
        return out

    def _values_file(self, release: str, namespace: str, values: dict[str, Any]) -> Path:
        path = self.work_dir / "helm" / f"{namespace}-{release}.values.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(values, sort_keys=False))
        return path

    def upgrade_install(self, release: str, chart: Path, namespace: str, values: dict[str, Any],
                        labels: dict[str, str] | None = None) -> Completed:
        """Install or upgrade, waiting for the release's workloads (helm's --wait) up to WAIT. `labels` go on the
        release's own record, the Secret `sh.helm.release.v1.<release>.v<n>` (--labels: helm@v4.3.0 pkg/cmd/
        upgrade.go; pkg/storage/driver/secrets.go), so that a killed run's cleanup finds it by the run label."""
        values_file = self._values_file(release, namespace, values)
        label_args = ["--labels", ",".join(f"{k}={v}" for k, v in sorted(labels.items()))] if labels else []
        return self.runner.run([self.binary, "upgrade", "--install", release, str(chart), "--namespace", namespace,
                                "--values", str(values_file), *label_args, "--wait", "--timeout", WAIT,
                                *self._target_flags()], timeout=INSTALL_TIMEOUT)

    def uninstall(self, release: str, namespace: str, *, missing_ok: bool = False) -> Completed:
        """`--ignore-not-found` (helm@v4.3.0: pkg/cmd/uninstall.go) for a purge after one revision is gone."""
        return self.runner.run([self.binary, "uninstall", release, "--namespace", namespace, "--wait",
                                "--timeout", WAIT, *(["--ignore-not-found"] if missing_ok else []),
                                *self._target_flags()], timeout=INSTALL_TIMEOUT)

    def template(self, release: str, chart: Path, namespace: str, values: dict[str, Any],
                 show_only: tuple[str, ...]) -> Completed:
        """Render without the cluster (`helm template` needs none)."""
        values_file = self._values_file(release, namespace, values)
        shown = [arg for name in show_only for arg in ("--show-only", name)]
        return self.runner.run([self.binary, "template", release, str(chart), "--namespace", namespace,
                                "--values", str(values_file), *shown], timeout=QUICK_TIMEOUT)

    def version(self) -> Completed:
        return self.runner.run([self.binary, "version", "--short"], timeout=QUICK_TIMEOUT)

    def verify_version(self, expected: str) -> None:
        """`version --short` prints `v4.3.0`, and `+g<commit>` after it when built from a commit (helm@v4.3.0:
        pkg/cmd/version.go formatVersion); the suite's flags are checked against that version only."""
        result = self.version()
        found = result.stdout.strip().split("+", 1)[0]
        if result.returncode != 0 or found != expected:
            raise UsageError(f"{self.binary} is Helm {found or '(no version: ' + result.stderr.strip()[:80] + ')'}, "
                             f"expected {expected}")


def istiod_values(iop: dict[str, Any], image: dict[str, str] | None = None) -> dict[str, Any]:
    """The istiod chart's values for the revision an IstioOperator document describes."""
    spec = iop["spec"]
    values = copy.deepcopy(spec.get("values") or {})
    values["revision"] = spec["revision"]
    values["meshConfig"] = copy.deepcopy(spec.get("meshConfig") or {})
    resources = (((spec.get("components") or {}).get("pilot") or {}).get("k8s") or {}).get("resources")
    if resources:
        values.setdefault("pilot", {})["resources"] = copy.deepcopy(resources)
    if image:
        values.setdefault("global", {}).update(image)
    return values


def base_values(istio_namespace: str, default_revision: str) -> dict[str, Any]:
    """`defaultRevision` names the revision the default validator calls (base/templates/defaultrevision-
    validatingwebhookconfiguration.yaml: Service istiod-<defaultRevision> in global.istioNamespace)."""
    return {"defaultRevision": default_revision, "global": {"istioNamespace": istio_namespace}}


def releases(plan: MeshPlan) -> list[tuple[str, str]]:
    """(namespace, release) of every release the Helm installer makes for the plan: base beside the stable revision,
    then each revision's istiod and gateways (also what a killed run's record lists for cleanup)."""
    made = [(plan.plane("stable").plane.namespace, BASE_RELEASE)]
    for plane in plan.planes:
        made += [(plane.plane.namespace, name) for name in
                 (istiod_release(plane), plane.gateway_name, plane.egress_gateway_name)]
    return made


def gateway_values(iop: dict[str, Any], component: str, image: dict[str, str] | None = None,
                   run_labels: dict[str, str] | None = None) -> dict[str, Any]:
    """The gateway chart's values for the IstioOperator's first ingress or egress gateway: the same name, labels,
    Service type and ports, resources and revision. The chart names the Deployment and Service after the release
    and selects on the `app` and `istio` labels (gateway/templates/_helpers.tpl gateway.name, gateway.
    selectorLabels); its pods are injected by the revision's own injector with the `gateway` template
    (gateway/templates/deployment.yaml: inject.istio.io/templates, sidecar.istio.io/inject and istio.io/rev)."""
    spec = iop["spec"]
    gateway = spec["components"][component][0]
    k8s = gateway.get("k8s") or {}
    service = k8s.get("service") or {}
    values: dict[str, Any] = {
        "name": gateway["name"],
        "revision": spec["revision"],
        # Labels other than app and istio go on every object of the release (gateway/templates/_helpers.tpl
        # gateway.labels), the run's label among them.
        "labels": {"app": gateway["name"], **(gateway.get("label") or {}), **(run_labels or {})},
        "service": {"type": service.get("type", "ClusterIP"),
                    "ports": copy.deepcopy(service.get("ports") or EGRESS_PORTS)},
    }
    if k8s.get("resources"):
        values["resources"] = copy.deepcopy(k8s["resources"])
    if image:
        values["global"] = dict(image)
    return values


def tag_values(tag: str, revision: str, istio_namespace: str) -> dict[str, Any]:
    return {"revision": revision, "revisionTags": [tag], "global": {"istioNamespace": istio_namespace}}
