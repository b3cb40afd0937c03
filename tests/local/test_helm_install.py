"""--installer helm on the real API server and istiods: what `helm template` renders asks for the mesh `istioctl
manifest generate` renders from the same IstioOperator, and the checks fail through real misuse of Helm."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fixtures.mesh import MeshSetup, build_mesh
from multirev.backends.local import build
from multirev.backends.local.pins import HELM, ISTIO
from multirev.checks.tags import TagState, check_tag
from multirev.checks.webhooks import (
    check_webhook_revisions,
    check_webhook_services,
    is_istio_webhook_configuration,
    istiod_namespaces,
)
from multirev.commands import RecordingRunner, SubprocessRunner, Transcript
from multirev.istio import facts, helm, operator
from multirev.istio.helm import Helm
from multirev.istio.istioctl import KubeTarget
from multirev.kube import kinds
from multirev.plan import MeshPlan
from multirev.profile import load_profile
from tests.local.conftest import PROFILE, local_backend, local_versions, nothing_left, require

CLIENT = "workloads/mesh-client.yaml"


def _docs(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


@pytest.mark.parametrize("layout", ["separate", "shared"])
def test_helm_renders_the_gateways_and_istiod_istioctl_renders(tmp_path: Path, layout: str) -> None:
    """Offline, both real binaries: for each revision, the istiod Deployment's container args and env, the mesh
    config and the gateways' names, pod labels, Service selectors and ports are the same whichever installer
    renders them (the suite's Gateways select on those labels and reach those ports)."""
    require(local_versions())
    plan = MeshPlan(load_profile(PROFILE, layout=layout, installer="helm"), "render")
    runner = RecordingRunner(SubprocessRunner(), Transcript(tmp_path / "transcript.jsonl"), "local")
    tool = Helm(str(build.helm_recipe().folder(build.default_bin_cache()) / "helm"), runner, KubeTarget(), tmp_path)
    for plane in plan.planes:
        pin = ISTIO[str(plane.plane.version)]
        folder = build.istio_recipe(pin).folder(build.default_bin_cache())
        charts = build.istio_recipe(pin).source(build.default_bin_cache()) / build.ISTIO_CHARTS
        iop = operator.render(plane)
        iop_file = tmp_path / f"{plane.role}.yaml"
        iop_file.write_text(yaml.safe_dump(iop))
        generated = runner.run([str(folder / "istioctl"), "manifest", "generate", "-f", str(iop_file)], timeout=120)
        assert generated.returncode == 0, generated.stderr
        by_istioctl = _docs(generated.stdout)
        image = {"hub": pin.hub, "tag": pin.version}
        by_helm = []
        for release, chart, values in [
            (helm.istiod_release(plane), helm.ISTIOD_CHART, helm.istiod_values(iop, image)),
            (plane.gateway_name, helm.GATEWAY_CHART, helm.gateway_values(iop, "ingressGateways", image)),
            (plane.egress_gateway_name, helm.GATEWAY_CHART, helm.gateway_values(iop, "egressGateways", image)),
        ]:
            rendered = tool.template(release, charts / chart, plane.plane.namespace, values, ())
            assert rendered.returncode == 0, rendered.stderr
            by_helm += _docs(rendered.stdout)
        istiod = facts.istiod_name(plane.plane.revision)
        ours, theirs = (_by_kind(d, "Deployment")[istiod]["spec"]["template"]["spec"]["containers"][0]
                        for d in (by_helm, by_istioctl))
        assert ours["image"] == theirs["image"] and ours["args"] == theirs["args"]
        assert {e["name"]: e.get("value") for e in ours["env"]} == {e["name"]: e.get("value") for e in theirs["env"]}
        mesh = facts.mesh_configmap_name(plane.plane.revision)
        assert (yaml.safe_load(_by_kind(by_helm, "ConfigMap")[mesh]["data"]["mesh"])
                == yaml.safe_load(_by_kind(by_istioctl, "ConfigMap")[mesh]["data"]["mesh"]))
        for name in (plane.gateway_name, plane.egress_gateway_name):
            ours_svc, theirs_svc = (_by_kind(d, "Service")[name]["spec"] for d in (by_helm, by_istioctl))
            assert ours_svc["selector"] == theirs_svc["selector"], name
            assert ({(p["port"], p["targetPort"]) for p in ours_svc["ports"]}
                    >= {(p["port"], p["targetPort"]) for p in theirs_svc["ports"] if p["name"] != "status-port"})
            ours_pod, theirs_pod = (_by_kind(d, "Deployment")[name]["spec"]["template"]["metadata"]["labels"]
                                    for d in (by_helm, by_istioctl))
            for key in ("app", "istio"):
                assert ours_pod[key] == theirs_pod[key], (name, key)
            # The gateway chart's pods are injected by their revision's injector (image: auto): the revision label
            # picks it. istioctl's gateway runs the proxy itself and is labelled with the revision too.
            assert ours_pod[facts.REV_LABEL] == theirs_pod[facts.REV_LABEL] == plane.plane.revision


@pytest.fixture(scope="module")
def helm_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSetup]:
    require(local_versions())
    work = tmp_path_factory.mktemp("helm-faults")
    plan = MeshPlan(load_profile(PROFILE, installer="helm"), "helmfaults")
    backend = local_backend(work, "helmfaults", plan)
    backend.preflight()
    try:
        cluster = backend.start()
        yield build_mesh(plan, backend, cluster, work, {CLIENT})
    finally:
        backend.stop()
    assert nothing_left("helmfaults") == {}


def test_helm_installed_revisions_pass_the_webhook_and_tag_checks(helm_mesh: MeshSetup) -> None:
    """The baseline the misuse below breaks: Helm made both revisions, their tags and the default validator."""
    assert helm_mesh.installer.name == "helm"
    assert all(result.returncode == 0 for result in helm_mesh.installs.values()), helm_mesh.installs
    assert _webhook_problems(helm_mesh) == []
    for role in ("stable", "canary"):
        assert _tag_problems(helm_mesh, role) == []
    releases = {o["metadata"].get("annotations", {}).get("meta.helm.sh/release-name")
                for o in helm_mesh.cluster.list(kinds.DEPLOYMENT, labels={"app": "istiod"})}
    assert releases == {helm.istiod_release(p) for p in helm_mesh.plan.planes}, releases


def _webhook_problems(mesh: MeshSetup) -> list[str]:
    cluster = mesh.cluster
    mutating = [c for c in cluster.list(kinds.MUTATING_WEBHOOK) if is_istio_webhook_configuration(c)]
    validating = [c for c in cluster.list(kinds.VALIDATING_WEBHOOK) if is_istio_webhook_configuration(c)]
    istiods = istiod_namespaces(cluster.list(kinds.DEPLOYMENT, labels={"app": "istiod"}))
    return (check_webhook_services(mutating, cluster.list(kinds.SERVICE))
            + check_webhook_revisions(mutating, validating, istiods))


def _tag_problems(mesh: MeshSetup, role: str) -> list[str]:
    plane = mesh.plan.plane(role).plane
    listing, rows = mesh.istioctl(role).tag_list(plane.namespace)
    webhook = mesh.cluster.get(kinds.MUTATING_WEBHOOK, facts.tag_webhook_name(plane.tag, plane.namespace))
    state = TagState(tag_set=mesh.tag_sets.get(role), tag_list=listing, rows=rows, webhook=webhook,
                     set_with=mesh.installer.describe("tag", mesh.plan.plane(role), plane.tag))
    return check_tag(plane, state)


def test_a_helm_rendered_tag_for_the_other_revision_is_named(helm_mesh: MeshSetup) -> None:
    """Istio's Helm tag command with the canary's revision for the stable tag, rendered into the stable revision's
    namespace (`helm template ... -s templates/revision-tags-mwc.yaml --set revisionTags={stable} --set
    revision=<canary> -n <stable namespace> | kubectl apply -f -`): the webhook then calls istiod-<canary> in the
    stable namespace, where no such Service runs. The webhook check names the webhook and the missing Service, and
    the tag check names the tag, the revision it points at and the one intended."""
    stable, canary = helm_mesh.plan.plane("stable"), helm_mesh.plan.plane("canary")
    tool: Helm = helm_mesh.installer.tool  # type: ignore[attr-defined]
    charts = helm_mesh.backend.charts_dir(canary.plane.version)
    rendered = tool.template(helm.tag_release(stable.plane.tag), charts / helm.ISTIOD_CHART, stable.plane.namespace,
                             helm.tag_values(stable.plane.tag, canary.plane.revision, stable.plane.namespace),
                             helm.TAG_TEMPLATES)
    assert rendered.returncode == 0, rendered.stderr
    for obj in _docs(rendered.stdout):
        helm_mesh.cluster.apply(obj)
    webhook = facts.tag_webhook_name(stable.plane.tag, stable.plane.namespace)
    try:
        problems = _webhook_problems(helm_mesh)
        ours = [p for p in problems if f"MutatingWebhookConfiguration {webhook} " in p]
        assert ours, problems
        missing = f"{stable.plane.namespace}/{facts.istiod_name(canary.plane.revision)}, which does not exist"
        assert any(missing in p and f"runs in {canary.plane.namespace}" in p for p in ours), ours
        tag = _tag_problems(helm_mesh, "stable")
        assert any(f"tag {stable.plane.tag} references revision {canary.plane.revision}, expected "
                   f"{stable.plane.revision}" in p for p in tag), tag
    finally:
        assert helm_mesh.installer.set_tag(stable, stable.plane.tag, overwrite=True).returncode == 0
    assert _webhook_problems(helm_mesh) == []


def test_the_helm_binary_is_the_pinned_one(helm_mesh: MeshSetup) -> None:
    version = helm_mesh.installer.tool.version()  # type: ignore[attr-defined]
    assert version.returncode == 0 and version.stdout.startswith(HELM.version), version.stdout
