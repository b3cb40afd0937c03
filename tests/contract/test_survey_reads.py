"""What a run reads of someone's cluster before it creates anything (issue 26, item 6): names and labels, by label
selector or by name in the namespaces that matter, never a list of Secrets, never every ConfigMap (the API-server
stand-in records each request)."""

from __future__ import annotations

from pathlib import Path

from apiserver import ServerState, put

from multirev.backends.existing import ExistingBackend, ExistingOptions
from multirev.clock import WallClock
from multirev.commands import RecordingRunner, SubprocessRunner, Transcript
from multirev.footprint import Footprint
from multirev.kube import kinds
from multirev.plan import MeshPlan
from multirev.profile import load_profile


def _backend(tmp_path: Path, state: ServerState) -> ExistingBackend:
    runner = RecordingRunner(SubprocessRunner(), Transcript(tmp_path / "t.jsonl"), "existing")
    return ExistingBackend(runner, WallClock(), ExistingOptions(
        kubeconfig=str(state.kubeconfig), context=None, run_id="r1", allow_destructive=False, cache=tmp_path,
        istio_mirror=str(tmp_path), gateway_host=None, gateway_endpoints={}, gateway_services={}))


def test_the_survey_lists_no_secrets_and_no_unselected_configmaps(tmp_path: Path,
                                                                   apiserver: tuple[str, ServerState]) -> None:
    _, state = apiserver
    put(state, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tenant-a"}})
    put(state, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "their-token", "namespace": "tenant-a"}})
    put(state, {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "their-settings", "namespace": "tenant-a"}})
    plan = MeshPlan(load_profile("current"), "r1")
    backend = _backend(tmp_path, state)
    backend.refuse_plan(plan)  # the start-up survey and refusals
    Footprint.survey(backend.start(), plan)  # and set-up's own

    lists = [r for r in state.matching("GET") if r.path.rstrip("/").split("/")[-1] in _plural_names()]
    secret_lists = [r.path for r in lists if r.path.endswith("/secrets")]
    assert secret_lists == [], f"the survey listed Secrets: {secret_lists}"
    control_planes = {p.plane.namespace for p in plan.planes}
    unselected = [r.path for r in lists if r.path.endswith("/configmaps")
                  and not r.query.get("labelSelector")
                  and _namespace_of(r.path) not in control_planes]
    assert unselected == [], f"the survey listed ConfigMaps outside the control planes without a selector: {unselected}"
    named_secrets = {r.path for r in state.matching("GET") if "/secrets/" in r.path}
    assert named_secrets <= {f"/api/v1/namespaces/{ns}/secrets/istio-ca-secret" for ns in control_planes}


def _plural_names() -> set[str]:
    return {kind.plural for kind in (*kinds.ALL, kinds.LEASE)}


def _namespace_of(path: str) -> str | None:
    parts = path.split("/")
    return parts[parts.index("namespaces") + 1] if "namespaces" in parts[:-1] else None


def test_an_installed_run_reads_no_secret_at_all(tmp_path: Path, apiserver: tuple[str, ServerState]) -> None:
    """--installed: the istiods are the cluster's, so the survey does not read their CA Secret, and teardown does not
    look for Secrets the run never makes: the ClusterRole such a run is documented to need grants none
    (manifests/rbac/certify-installed.yaml)."""
    _, state = apiserver
    put(state, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}})
    put(state, {"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "istio-ca-secret", "namespace": "istio-system"}})
    profile = load_profile("current", installed="stable=1-29-6,canary=1-30-3")
    plan = MeshPlan(profile, "r1")
    assert plan.installed
    backend = _backend(tmp_path, state)
    Footprint.survey(backend.start(), plan)
    backend._installs = False  # what installed_profile sets (it also needs a cluster running the revisions)
    backend.stop()
    secrets = [r.path for r in state.requests if "secrets" in r.path.split("/")]
    assert secrets == [], f"an --installed run read Secrets: {secrets}"
