"""How the run installs, tags and removes its two revisions: with istioctl (the default) or with Helm.

Both installers take the same IstioOperator document (multirev/istio/operator.py) and make the same mesh from it;
everything after set-up observes the cluster the same way whichever made it. `describe` gives the command a user
would type, for step lines and failure messages.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import yaml

from multirev.backends.base import Cluster
from multirev.commands import Completed
from multirev.istio import facts, helm
from multirev.istio.helm import Helm
from multirev.istio.istioctl import Istioctl
from multirev.istio.versions import IstioVersion
from multirev.kube import kinds
from multirev.kube.objects import labels_of
from multirev.plan import MeshPlan, PlanePlan


class Installer(Protocol):
    name: str

    def install(self, plane: PlanePlan, iop_file: Path) -> Completed: ...

    def set_tag(self, plane: PlanePlan, tag: str, *, overwrite: bool = False,
                istio_namespace: str | None = None) -> Completed:
        """Point `tag` at the plane's revision; `istio_namespace` (`-i`): where the tag lives when not in the plane's
        own namespace (the `default` tag stays where the default revision's install made it)."""
        ...

    def remove_tag(self, plane: PlanePlan, tag: str, istio_namespace: str | None = None) -> Completed: ...

    def uninstall(self, plane: PlanePlan, iop_file: Path | None) -> Completed: ...

    def purge(self) -> Completed: ...

    def describe(self, action: str, plane: PlanePlan, tag: str = "", istio_namespace: str | None = None) -> str: ...


class IstioctlInstaller:
    name = "istioctl"

    def __init__(self, istioctls: dict[str, Istioctl]) -> None:
        self.istioctls = istioctls

    def install(self, plane: PlanePlan, iop_file: Path) -> Completed:
        return self.istioctls[plane.role].install(iop_file)

    def set_tag(self, plane: PlanePlan, tag: str, *, overwrite: bool = False,
                istio_namespace: str | None = None) -> Completed:
        return self.istioctls[plane.role].tag_set(tag, plane.plane.revision, istio_namespace or plane.plane.namespace,
                                                  overwrite=overwrite)

    def remove_tag(self, plane: PlanePlan, tag: str, istio_namespace: str | None = None) -> Completed:
        return self.istioctls[plane.role].tag_remove(tag, istio_namespace or plane.plane.namespace)

    def uninstall(self, plane: PlanePlan, iop_file: Path | None) -> Completed:
        return self.istioctls[plane.role].uninstall_revision(plane.plane.revision, iop_file)

    def purge(self) -> Completed:
        return self.istioctls["stable"].uninstall_purge()

    def describe(self, action: str, plane: PlanePlan, tag: str = "", istio_namespace: str | None = None) -> str:
        rev, ns = plane.plane.revision, istio_namespace or plane.plane.namespace
        return {
            "install": f"istioctl install -f <IstioOperator of {rev}>",
            "tag": f"istioctl tag set {tag} --revision {rev} -i {ns}",
            "retag": f"istioctl tag set {tag} --revision {rev} -i {ns} --overwrite",
            "untag": f"istioctl tag remove {tag} -i {ns}",
            "uninstall": f"istioctl uninstall --revision {rev}",
            "purge": "istioctl uninstall --purge",
        }[action]


class HelmInstaller:
    """Istio's Helm canary procedure: `base` once (re-applied from each revision's release, as istioctl re-applies
    the CRDs), `istiod` per revision with `revision`, a `gateway` release per gateway, and tags rendered from the
    istiod chart's revision-tag templates and applied (helm.TAG_TEMPLATES)."""

    name = "helm"

    def __init__(self, tool: Helm, plan: MeshPlan, cluster: Cluster, charts: Callable[[IstioVersion], Path],
                 image: Callable[[IstioVersion], dict[str, str]], put: Callable[[dict], None]) -> None:
        """`charts`: a version's manifests/charts folder; `image`: the global.hub/tag its charts need on this
        backend (none where the release's charts name their own images); `put`: how the run applies an object."""
        self.tool = tool
        self.plan = plan
        self.cluster = cluster
        self.charts = charts
        self.image = image
        self.put = put

    @property
    def base_namespace(self) -> str:
        """Base goes with the stable revision, which its default validator calls."""
        return self.plan.plane("stable").plane.namespace

    def _releases(self, plane: PlanePlan, iop: dict) -> list[tuple[str, Path, dict]]:
        charts, image = self.charts(plane.plane.version), self.image(plane.plane.version)
        stable = self.plan.plane("stable").plane
        return [
            (helm.BASE_RELEASE, charts / helm.BASE_CHART,
             helm.base_values(self.base_namespace, stable.revision)),
            (helm.istiod_release(plane), charts / helm.ISTIOD_CHART, helm.istiod_values(iop, image)),
            (plane.gateway_name, charts / helm.GATEWAY_CHART,
             helm.gateway_values(iop, "ingressGateways", image, self.plan.run_labels)),
            (plane.egress_gateway_name, charts / helm.GATEWAY_CHART,
             helm.gateway_values(iop, "egressGateways", image, self.plan.run_labels)),
        ]

    def install(self, plane: PlanePlan, iop_file: Path) -> Completed:
        iop = yaml.safe_load(iop_file.read_text())
        results = []
        for release, chart, values in self._releases(plane, iop):
            namespace = self.base_namespace if chart.name == helm.BASE_CHART else plane.plane.namespace
            result = self.tool.upgrade_install(release, chart, namespace, values, self.plan.run_labels)
            results.append(result)
            if result.returncode != 0:
                break
        return _combined(results)

    def set_tag(self, plane: PlanePlan, tag: str, *, overwrite: bool = False,
                istio_namespace: str | None = None) -> Completed:
        """`helm template` the tag's webhook and Service for the revision, then apply them (the documented
        `helm template ... | kubectl apply -f -`). Moving a tag is the same command with the other revision."""
        namespace = istio_namespace or plane.plane.namespace
        rendered = self.tool.template(helm.tag_release(tag), self.charts(plane.plane.version) / helm.ISTIOD_CHART,
                                      namespace, helm.tag_values(tag, plane.plane.revision, namespace),
                                      helm.TAG_TEMPLATES)
        if rendered.returncode != 0:
            return rendered
        existing = self.cluster.get(kinds.MUTATING_WEBHOOK, facts.tag_webhook_name(tag, namespace))
        owner = labels_of(existing).get(facts.REV_LABEL) if existing else None
        if not overwrite and existing is not None and owner != plane.plane.revision:
            # `istioctl tag set` without --overwrite refuses a tag that exists (istioctl/pkg/tag/generate.go
            # checkTagDuplicate); moving one to another revision is done on purpose only here too.
            return Completed(rendered.argv, 1, rendered.stdout,
                             f"revision tag {tag} already points at revision {owner}; move it on purpose")
        for obj in yaml.safe_load_all(rendered.stdout):
            if obj:
                self.put(obj)
        return rendered

    def remove_tag(self, plane: PlanePlan, tag: str, istio_namespace: str | None = None) -> Completed:
        ns = istio_namespace or plane.plane.namespace
        removed = [self.cluster.delete(kinds.MUTATING_WEBHOOK, facts.tag_webhook_name(tag, ns)),
                   self.cluster.delete(kinds.SERVICE, facts.tag_service_name(tag), ns)]
        argv = ["kubectl", "delete", "mutatingwebhookconfiguration", facts.tag_webhook_name(tag, ns)]
        return Completed(argv, 0, f"removed {sum(removed)} objects of tag {tag}\n", "")

    def uninstall(self, plane: PlanePlan, iop_file: Path | None, *, missing_ok: bool = False) -> Completed:
        ns = plane.plane.namespace
        return _combined([self.tool.uninstall(release, ns, missing_ok=missing_ok) for release in
                          (plane.egress_gateway_name, plane.gateway_name, helm.istiod_release(plane))])

    def purge(self) -> Completed:
        """Every release, then the Istio CRDs: the base chart marks them `helm.sh/resource-policy: keep`
        (istio@1.30-dev: manifests/charts/base/files/crd-all.gen.yaml), and Istio's Helm uninstall page has the user
        delete them by hand (istio.io content/en/docs/setup/install/helm/index.md, "Uninstall")."""
        results = [self.uninstall(plane, None, missing_ok=True) for plane in reversed(self.plan.planes)]
        results.append(self.tool.uninstall(helm.BASE_RELEASE, self.base_namespace,
                                           missing_ok=True))
        crds = [c["metadata"]["name"] for c in self.cluster.list(kinds.CRD)
                if c["metadata"]["name"].endswith(".istio.io")]
        for name in crds:
            self.cluster.delete(kinds.CRD, name)
        results.append(Completed(["kubectl", "delete", "crd", *crds], 0, f"deleted {len(crds)} Istio CRDs\n", ""))
        return _combined(results)

    def describe(self, action: str, plane: PlanePlan, tag: str = "", istio_namespace: str | None = None) -> str:
        rev, ns = plane.plane.revision, istio_namespace or plane.plane.namespace
        tags = f"helm template {helm.tag_release(tag)} istiod -n {ns} -s {' -s '.join(helm.TAG_TEMPLATES)} " \
               f"--set revisionTags={{{tag}}} --set revision={rev} | kubectl apply -f -"
        return {
            "install": f"helm upgrade --install {helm.istiod_release(plane)} istiod -n {ns} --set revision={rev} "
                       "(with base and the gateway chart)",
            "tag": tags,
            "retag": tags,
            "untag": f"kubectl delete mutatingwebhookconfiguration {facts.tag_webhook_name(tag, ns)}",
            "uninstall": f"helm uninstall {helm.istiod_release(plane)} -n {ns} (and its gateways)",
            "purge": "helm uninstall every release (gateways, istiods, base)",
        }[action]


def _combined(results: list[Completed]) -> Completed:
    failed = next((r for r in results if r.returncode != 0), None)
    last = failed or results[-1]
    return Completed(last.argv, last.returncode, "".join(r.stdout for r in results),
                     "".join(r.stderr for r in results))
