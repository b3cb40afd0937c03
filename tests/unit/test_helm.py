"""--installer helm without a cluster: the chart values ask for the mesh the IstioOperator asks for, the installer's
commands and refusals, and the pinned Helm download (verified, refused on a changed archive)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import yaml

from multirev import helmcli
from multirev.backends.local.pins import HELM
from multirev.backends.simulated.backend import SimulatedBackend
from multirev.commands import Completed, Transcript
from multirev.errors import EnvironmentProblem, UsageError
from multirev.footprint import Footprint
from multirev.istio import facts, helm, operator
from multirev.istio.installer import HelmInstaller
from multirev.kind.images import NODE_IMAGES
from multirev.plan import MeshPlan
from multirev.profile import load_profile

IMAGE = {"hub": "registry.example/istio", "tag": "1.31-dev"}


def plan(layout: str = "separate") -> MeshPlan:
    return MeshPlan(load_profile("local-dev", layout=layout, installer="helm"), "run1")


def test_istiod_values_carry_the_operators_revision_mesh_config_and_requests() -> None:
    plane = plan().plane("canary")
    iop = operator.render(plane, run_labels={"run": "1"})
    values = helm.istiod_values(iop, IMAGE)
    assert values["revision"] == plane.plane.revision
    assert values["meshConfig"] == iop["spec"]["meshConfig"]
    assert values["meshConfig"]["discoverySelectors"] == [{"matchLabels": plane.discovery_labels}]
    assert values["global"]["istioNamespace"] == plane.plane.namespace
    assert values["global"]["hub"] == IMAGE["hub"] and values["global"]["tag"] == IMAGE["tag"]
    assert values["pilot"]["resources"] == iop["spec"]["components"]["pilot"]["k8s"]["resources"]
    assert values["global"]["proxy"]["resources"] == iop["spec"]["values"]["global"]["proxy"]["resources"]


@pytest.mark.parametrize("layout", ["separate", "shared"])
def test_gateway_values_name_label_and_port_the_gateway_as_the_operator_does(layout: str) -> None:
    plane = plan(layout).plane("stable")
    iop = operator.render(plane)
    ingress = helm.gateway_values(iop, "ingressGateways")
    assert ingress["name"] == plane.gateway_name and ingress["revision"] == plane.plane.revision
    # The suite's Gateways select `istio: ingressgateway` and the revision; the Service selects `app` too.
    assert ingress["labels"] == {"app": plane.gateway_name, "istio": "ingressgateway"}
    labelled = helm.gateway_values(iop, "ingressGateways", run_labels={"conformance.multirev.io/run-id": "r"})
    assert labelled["labels"]["conformance.multirev.io/run-id"] == "r"
    ports = {p["name"]: p["targetPort"] for p in ingress["service"]["ports"]}
    assert ports == {"status-port": 15021, "http2": 8080, "https": 8443}
    egress = helm.gateway_values(iop, "egressGateways")
    assert egress["labels"] == {"app": plane.egress_gateway_name, "istio": "egressgateway"}
    assert egress["service"] == {"type": "ClusterIP", "ports": helm.EGRESS_PORTS}


class FakeHelm:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.labels: list[dict | None] = []

    def upgrade_install(self, release: str, chart: Path, namespace: str, values: dict,
                        labels: dict | None = None) -> Completed:
        self.calls.append(["upgrade", release, chart.name, namespace])
        self.labels.append(labels)
        return Completed(["helm", "upgrade", release], 1 if release == "broken" else 0, "", "")

    def uninstall(self, release: str, namespace: str, *, missing_ok: bool = False) -> Completed:
        self.calls.append(["uninstall", release, namespace, str(missing_ok)])
        return Completed(["helm", "uninstall", release], 0, "", "")

    def template(self, release: str, chart: Path, namespace: str, values: dict, show_only: tuple) -> Completed:
        webhook = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
                   "metadata": {"name": facts.tag_webhook_name(values["revisionTags"][0], namespace),
                                "labels": {"istio.io/rev": values["revision"]}}}
        return Completed(["helm", "template", release], 0, yaml.safe_dump(webhook), "")


class FakeCluster:
    def __init__(self) -> None:
        self.objects: dict[str, dict] = {}
        self.crds = [{"metadata": {"name": "gateways.networking.istio.io"}},
                     {"metadata": {"name": "widgets.example.com"}}]
        self.deleted: list[str] = []

    def get(self, kind, name, namespace=None):
        return self.objects.get(name)

    def list(self, kind, namespace=None, labels=None):
        return self.crds

    def delete(self, kind, name, namespace=None) -> bool:
        self.deleted.append(name)
        return True


def installer(tmp_path: Path, layout: str = "separate") -> tuple[HelmInstaller, FakeHelm, FakeCluster]:
    tool, cluster = FakeHelm(), FakeCluster()
    setup = HelmInstaller(tool, plan(layout), cluster, lambda version: tmp_path / str(version), lambda version: IMAGE,
                          lambda obj: cluster.objects.__setitem__(obj["metadata"]["name"], obj))
    return setup, tool, cluster


def test_install_is_base_then_istiod_then_gateways_with_base_beside_the_stable_revision(tmp_path: Path) -> None:
    setup, tool, _ = installer(tmp_path)
    canary = setup.plan.plane("canary")
    iop = operator.write(canary, tmp_path)
    assert setup.install(canary, iop).returncode == 0
    assert tool.calls == [
        ["upgrade", "istio-base", "base", "istio-stable"],
        ["upgrade", "istiod-1-31-dev", "istio-discovery", "istio-canary"],
        ["upgrade", "istio-ingressgateway", "gateway", "istio-canary"],
        ["upgrade", "istio-egressgateway", "gateway", "istio-canary"],
    ]
    # Every release's record carries the run label (a killed run's cleanup finds it), and the run's record
    # lists exactly these releases.
    assert tool.labels == [setup.plan.run_labels] * 4
    made = {(namespace, release) for _, release, _, namespace in tool.calls}
    assert made <= set(helm.releases(setup.plan)) and len(helm.releases(setup.plan)) == 7


def test_a_tag_is_moved_only_on_purpose(tmp_path: Path) -> None:
    setup, _, cluster = installer(tmp_path, "shared")  # both revisions in istio-system: one webhook name
    stable, canary = setup.plan.plane("stable"), setup.plan.plane("canary")
    assert setup.set_tag(stable, "prod").returncode == 0
    webhook = cluster.objects["istio-revision-tag-prod"]
    assert webhook["metadata"]["labels"]["istio.io/rev"] == stable.plane.revision
    refused = setup.set_tag(canary, "prod")
    assert refused.returncode == 1 and "tag prod already points at revision 1-30-dev" in refused.stderr
    assert setup.set_tag(canary, "prod", overwrite=True).returncode == 0
    assert cluster.objects["istio-revision-tag-prod"]["metadata"]["labels"]["istio.io/rev"] == "1-31-dev"


def test_purge_uninstalls_what_is_left_and_deletes_only_istios_crds(tmp_path: Path) -> None:
    setup, tool, cluster = installer(tmp_path)
    assert setup.purge().returncode == 0
    assert all(call[-1] == "True" for call in tool.calls if call[0] == "uninstall")
    assert tool.calls[-1][:2] == ["uninstall", "istio-base"]
    assert cluster.deleted == ["gateways.networking.istio.io"]


def test_the_describe_lines_are_the_commands_a_user_types(tmp_path: Path) -> None:
    setup, _, _ = installer(tmp_path)
    stable = setup.plan.plane("stable")
    tag = setup.describe("tag", stable, "prod")
    assert tag.startswith("helm template istio-revision-tag-prod istiod -n istio-stable")
    assert "kubectl apply -f -" in setup.describe("retag", stable, "prod")
    assert setup.describe("uninstall", stable) == "helm uninstall istiod-1-30-dev -n istio-stable (and its gateways)"


def test_an_unknown_installer_is_refused_in_one_line() -> None:
    with pytest.raises(UsageError, match="--installer must be one of istioctl, helm, not 'kustomize'"):
        load_profile("local-dev", installer="kustomize")


def _archive(name: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = b"#!/bin/sh\necho helm\n"
        info = tarfile.TarInfo(f"{name}/helm")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_helm_download_is_verified_against_the_pinned_sum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = helmcli.platform_name()
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive = _archive(name)
    (mirror / helmcli.archive_name(name)).write_bytes(archive)
    with pytest.raises(EnvironmentProblem, match="sha256 mismatch .* nothing kept"):
        helmcli.ensure_helm(cache=tmp_path / "cache", mirror=str(mirror))
    assert not (tmp_path / "cache" / f"helm-{helmcli.HELM_VERSION}" / "helm").exists()
    monkeypatch.setitem(helmcli.SHA256, name, hashlib.sha256(archive).hexdigest())
    binary = helmcli.ensure_helm(cache=tmp_path / "cache", mirror=str(mirror))
    assert binary.read_bytes().startswith(b"#!/bin/sh") and binary.stat().st_mode & 0o111


def test_kind_and_existing_download_the_helm_version_the_local_backend_builds() -> None:
    assert HELM.version == helmcli.HELM_VERSION


def test_helm_on_a_cluster_that_has_istios_crds_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    """Helm's base release would have to own CRDs another install made; the refusal names one and the way out."""
    cluster = SimulatedBackend(Transcript(tmp_path / "t.jsonl"), seed=1, faults=[],
                               node_image=next(iter(NODE_IMAGES.values())), work_dir=tmp_path,
                               host_port_base=18080).start()
    helm_plan = plan()
    assert not [p for p in Footprint.survey(cluster, helm_plan).refusals(cluster, helm_plan, allow_destructive=True)
                if "--installer helm" in p]
    cluster.apply({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                   "metadata": {"name": "gateways.networking.istio.io"}, "spec": {}})
    problems = Footprint.survey(cluster, helm_plan).refusals(cluster, helm_plan, allow_destructive=True)
    assert [p for p in problems if p.startswith("--installer helm: the cluster already has Istio's CRDs (e.g. "
                                                "gateways.networking.istio.io)") and "--installer istioctl" in p]
    istioctl_plan = MeshPlan(load_profile("local-dev"), "run1")
    assert not [p for p in Footprint.survey(cluster, istioctl_plan).refusals(cluster, istioctl_plan,
                                                                         allow_destructive=True)
                if "--installer helm" in p]
