"""On a real control plane: checks fail through real misuse, and the model is held against reality.

One mesh (the local-dev profile, separate layout) is installed on the local backend for this module, and
the same profile on the simulated backend. Each fault test misuses the real mesh the way an operator
could, runs the check the conformance suite runs, asserts the failure names the object and the problem,
and undoes the misuse. The comparison reads the same snapshots from both backends. The tests share the
meshes, so they run in file order on one xdist worker (group "real-mesh"); uninstalls come last.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from kubernetes.client.rest import ApiException

from fixtures.mesh import MeshSetup, build_mesh
from multirev.backends.local.compare import (
    Difference,
    analyze_findings,
    diff_objects,
    diff_values,
    injected_pod,
    istio_objects,
    push_shape,
)
from multirev.backends.local.differences import explain, unused
from multirev.backends.local.pins import KUBERNETES
from multirev.backends.simulated.backend import SimulatedBackend
from multirev.checks.analyze import check_analyze
from multirev.checks.control_plane import ControlPlaneState, check_control_plane
from multirev.checks.injection import check_namespace_labels, check_pod
from multirev.checks.tags import TagState, check_default_tag_injection, check_tag
from multirev.checks.trust import root_of, trust_root_problems
from multirev.checks.webhooks import (
    check_default_validator,
    check_unlabelled_config_validated,
    check_webhook_revisions,
    check_webhook_services,
    is_istio_webhook_configuration,
    istiod_namespaces,
)
from multirev.checks.xds import PROBE_KINDS, QUIET_BEFORE_PROBE, probe_config, push_lines
from multirev.commands import Transcript
from multirev.istio import facts
from multirev.istio.trust import CACERTS_SECRET, ROOT_CERT, ROOT_CONFIGMAP, MeshTrust, fingerprint
from multirev.istio.versions import KubeVersion
from multirev.kind.images import NODE_IMAGES
from multirev.kube import kinds
from multirev.observe import istiod_logs, published_roots, workload_pods
from multirev.plan import MeshPlan
from multirev.probes import admit_config, admit_pod
from multirev.profile import load_profile
from multirev.waits import Observation, wait_for
from suites.scenario import default_tags, injection_probe_namespace
from tests.local.conftest import PROFILE, local_backend, local_versions, nothing_left, require

CLIENT = "workloads/mesh-client.yaml"


@pytest.fixture(scope="module")
def real_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSetup]:
    require(local_versions())
    work = tmp_path_factory.mktemp("real-faults")
    backend = local_backend(work, "faults")
    backend.preflight()
    try:
        cluster = backend.start()
        plan = MeshPlan(load_profile(PROFILE), "faults")
        yield build_mesh(plan, backend, cluster, work, {CLIENT})
    finally:
        backend.stop()
    assert nothing_left("faults") == {}


def _plane(mesh: MeshSetup, role: str):
    return mesh.plan.plane(role).plane


def _pod(namespace: str, name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]}}


def _await_sa(mesh: MeshSetup, namespace: str) -> None:
    def present() -> Observation[None]:
        return Observation(mesh.cluster.get(kinds.SERVICEACCOUNT, "default", namespace) is not None, None, "missing")

    wait_for(f"ServiceAccount {namespace}/default", present, clock=mesh.cluster.clock, timeout=60, interval=1)


# -- the model held against the real control plane ------------------------------------------------------


@dataclass
class Pair:
    real: MeshSetup
    model: MeshSetup
    differences: list[Difference] = field(default_factory=list)
    compared: int = 0
    removed_by_real_uninstall: set = field(default_factory=set)


@pytest.fixture(scope="module")
def pair(real_mesh: MeshSetup, tmp_path_factory: pytest.TempPathFactory) -> Pair:
    work = tmp_path_factory.mktemp("model")
    image = NODE_IMAGES[KubeVersion.parse(KUBERNETES.version)]  # the same Kubernetes minor as the real one
    backend = SimulatedBackend(Transcript(work / "transcript.jsonl"), seed=1, faults=[], node_image=image,
                               work_dir=work, host_port_base=18080)
    cluster = backend.start()
    model = build_mesh(real_mesh.plan, backend, cluster, work, {CLIENT})
    return Pair(real_mesh, model)


def _both(pair: Pair):
    return (("model", pair.model), ("real", pair.real))


def _probe_push(mesh: MeshSetup, kind: str, name: str) -> dict[str, list[str]]:
    """Apply one uniquely named config object of `kind` (the conformance suite's xDS probe) in the stable app
    namespace, alone; each istiod's push lines for it."""
    stable = _plane(mesh, "stable")
    app = stable.app_namespaces[0]
    mesh.cluster.clock.sleep(QUIET_BEFORE_PROBE)
    _, probe, key = probe_config(kind, name, app, {})
    mesh.cluster.apply(probe)

    def pushed() -> Observation[None]:
        return Observation(bool(push_lines(istiod_logs(mesh.cluster, stable), key)), None, "no push yet")

    wait_for(f"{key} to be pushed", pushed, clock=mesh.cluster.clock, timeout=60, interval=1)
    mesh.cluster.clock.sleep(3)  # give the other istiod the chance to (wrongly) push it too
    return {role: [push_shape(line) for line in push_lines(istiod_logs(mesh.cluster, _plane(mesh, role)), key)]
            for role in ("stable", "canary")}


def test_model_matches_the_real_install_tags_injection_pushes_and_analyze(
        pair: Pair, record_property: pytest.RecordProperty) -> None:
    """The same profile and istioctl argv on both backends: what install and `tag set` created, the injected pod,
    the push lines of a probe of each config kind the suite applies, and analyze findings for the project's manifests
    agree, except for the listed deliberate simplifications (multirev/backends/local/differences.py,
    docs/model-vs-real.md)."""
    objects = {name: istio_objects(mesh.cluster) for name, mesh in _both(pair)}
    pair.compared += len(set(objects["model"]) | set(objects["real"]))
    pair.differences += diff_objects("install", objects["model"], objects["real"])

    pods = {}
    for name, mesh in _both(pair):
        app = _plane(mesh, "stable").app_namespaces[0]
        found = workload_pods(mesh.cluster, app, mesh.plan.run_labels)
        assert found, f"{name}: no workload pod in {app}"
        pods[name] = injected_pod(found[0])
    pair.compared += 1
    pair.differences += diff_values("pod", "injected mesh-client pod", pods["model"], pods["real"])

    for kind in PROBE_KINDS:
        pushes = {name: _probe_push(mesh, kind, f"compare-{kind.lower()}") for name, mesh in _both(pair)}
        pair.compared += 1
        pair.differences += diff_values("push", f"probe {kind} push lines", pushes["model"], pushes["real"])

    findings = {}
    for name, mesh in _both(pair):
        plane = _plane(mesh, "canary")
        result = mesh.istioctl("canary").analyze(plane.app_namespaces[0], plane.revision, plane.namespace)
        findings[name] = analyze_findings(result.stdout + result.stderr)
    pair.compared += 1
    pair.differences += diff_values("analyze", "istioctl analyze (canary app namespace)", findings["model"],
                                    findings["real"])
    _judge(pair, record_property)


def _judge(pair: Pair, record_property: pytest.RecordProperty) -> None:
    record_property("objects_compared", pair.compared)
    record_property("differences", len(pair.differences))
    unexplained = [str(d) for d in pair.differences if explain(d) is None]
    record_property("unexplained_differences", len(unexplained))
    assert not unexplained, "model and real control plane differ:\n  " + "\n  ".join(unexplained)


# -- real misuse, each undone ------------------------------------------------------------------------


def test_tag_set_without_i_points_the_webhook_at_a_missing_service(real_mesh: MeshSetup) -> None:
    """The original field bug: `tag set` without `-i` while istiod runs in its own namespace. The webhook check
    names the tag's webhook and the missing Service, and the real API server refuses pods under that tag."""
    stable = _plane(real_mesh, "stable")
    tool = real_mesh.istioctl("stable")
    tag = "forgot-i"
    # As in the field: istio-system exists (istioctl put the tag's Service there; without it `tag set` fails).
    real_mesh.cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}})
    set_result = tool.runner.run(tool.argv("tag", "set", tag, "--revision", stable.revision, "-y"), timeout=120)
    assert set_result.returncode == 0, set_result.stderr
    try:
        webhooks = real_mesh.cluster.list(kinds.MUTATING_WEBHOOK, labels={"app": "sidecar-injector"})
        problems = check_webhook_services(webhooks, real_mesh.cluster.list(kinds.SERVICE))
        ours = [p for p in problems if facts.tag_webhook_name(tag, "istio-system") in p]
        assert ours, problems
        assert f"istio-system/{facts.istiod_name(stable.revision)}, which does not exist" in ours[0]
        assert f"runs in {stable.namespace}" in ours[0]
        real_mesh.cluster.apply({"apiVersion": "v1", "kind": "Namespace",
                                 "metadata": {"name": "tagged-forgot-i", "labels": {facts.REV_LABEL: tag}}})
        _await_sa(real_mesh, "tagged-forgot-i")
        with pytest.raises(ApiException) as refused:
            real_mesh.cluster.apply(_pod("tagged-forgot-i", "refused"))
        assert "sidecar-injector.istio.io" in str(refused.value.body), refused.value.body
    finally:
        tool.runner.run(tool.argv("tag", "remove", tag, "-y"), timeout=120)
        real_mesh.cluster.delete(kinds.NAMESPACE, "tagged-forgot-i")
        real_mesh.cluster.delete(kinds.NAMESPACE, "istio-system")


def test_tag_webhook_calling_the_other_revisions_istiod(real_mesh: MeshSetup,
                                                        record_property: pytest.RecordProperty) -> None:
    """The canary tag's webhook patched to call the stable revision's istiod: that Service exists, so the Service
    check finds nothing, while the revision check names the webhook, the Service it calls and the one expected. A
    pod then created under the canary tag goes to the stable istiod."""
    stable, canary = _plane(real_mesh, "stable"), _plane(real_mesh, "canary")
    cluster = real_mesh.cluster
    name = facts.tag_webhook_name(canary.tag, canary.namespace)
    webhook = cluster.get(kinds.MUTATING_WEBHOOK, name)
    assert webhook is not None
    entries = [{**entry, "clientConfig": {**entry["clientConfig"], "service": {
        **entry["clientConfig"]["service"], "name": facts.istiod_name(stable.revision), "namespace": stable.namespace}}}
        for entry in webhook["webhooks"]]
    cluster.apply({"apiVersion": kinds.MUTATING_WEBHOOK.api_version, "kind": "MutatingWebhookConfiguration",
                   "metadata": {"name": name}, "webhooks": entries})
    app = canary.app_namespaces[0]
    tool = real_mesh.istioctl("canary")
    try:
        injectors = cluster.list(kinds.MUTATING_WEBHOOK, labels={"app": "sidecar-injector"})
        assert not [p for p in check_webhook_services(injectors, cluster.list(kinds.SERVICE)) if name in p]
        problems = _revision_problems(real_mesh)
        ours = [p for p in problems if f"MutatingWebhookConfiguration {name} " in p]
        assert ours, problems
        assert f"calls Service {stable.namespace}/{facts.istiod_name(stable.revision)}, expected " \
               f"{canary.namespace}/{facts.istiod_name(canary.revision)}" in ours[0], ours
        assert f"istioctl tag set {canary.tag} --revision {canary.revision} -i {canary.namespace}" in ours[0], ours
        try:
            cluster.apply(_pod(app, "other-istiod"))
        except ApiException as refused:
            # Each istiod serves the webhook with its own certificate, signed by its own CA in its own namespace; the
            # webhook still carries the canary's caBundle, so the API server cannot call the stable istiod.
            assert "sidecar-injector.istio.io" in str(refused.body), refused.body
            record_property("pod_under_the_tag", f"refused: {str(refused.body)[:300]}")
        else:
            pod_problems = check_pod(canary, app, cluster.get(kinds.POD, "other-istiod", app))
            assert any(f"injected by revision {stable.revision}" in p for p in pod_problems), pod_problems
            record_property("pod_under_the_tag", f"injected: {pod_problems}")
    finally:
        cluster.delete(kinds.POD, "other-istiod", app)
        tool.tag_set(canary.tag, canary.revision, canary.namespace, overwrite=True)
    assert not [p for p in _revision_problems(real_mesh) if name in p]


def _webhooks_and_istiods(mesh: MeshSetup) -> tuple[list[dict], list[dict], dict[str, list[str]]]:
    """Istio's mutating and validating webhook configurations and where each revision's istiod runs."""
    cluster = mesh.cluster
    return ([c for c in cluster.list(kinds.MUTATING_WEBHOOK) if is_istio_webhook_configuration(c)],
            [c for c in cluster.list(kinds.VALIDATING_WEBHOOK) if is_istio_webhook_configuration(c)],
            istiod_namespaces(cluster.list(kinds.DEPLOYMENT, labels={"app": "istiod"})))


def _revision_problems(mesh: MeshSetup) -> list[str]:
    return check_webhook_revisions(*_webhooks_and_istiods(mesh))


def test_namespace_with_both_injection_labels_is_injected_by_the_wrong_revision(real_mesh: MeshSetup) -> None:
    """`istio-injection=enabled` next to `istio.io/rev=<canary tag>`: the real webhooks let istio-injection win,
    so the pod is injected by the default (stable) revision; the namespace and pod checks both say so."""
    canary = _plane(real_mesh, "canary")
    name = "both-labels"
    real_mesh.cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": name, "labels": {facts.INJECTION_LABEL: "enabled", facts.REV_LABEL: canary.tag}}})
    try:
        _await_sa(real_mesh, name)
        real_mesh.cluster.apply(_pod(name, "probe"))
        namespace = real_mesh.cluster.get(kinds.NAMESPACE, name)
        label_problems = check_namespace_labels(canary, name, namespace)
        assert any(f"Namespace {name}" in p and "istio-injection wins" in p for p in label_problems), label_problems
        pod = real_mesh.cluster.get(kinds.POD, "probe", name)
        pod_problems = check_pod(canary, name, pod)
        assert any(f"{name}/probe" in p and "injected by revision" in p and canary.revision in p
                   for p in pod_problems), pod_problems
    finally:
        real_mesh.cluster.delete(kinds.NAMESPACE, name)


def test_tag_pointed_at_the_wrong_revision(real_mesh: MeshSetup) -> None:
    """`tag set <canary tag> --revision <stable revision> --overwrite`: the tag check reports the tag, the revision
    it points at and the one intended; a new pod under the tag is injected by the wrong revision."""
    stable, canary = _plane(real_mesh, "stable"), _plane(real_mesh, "canary")
    tool = real_mesh.istioctl("canary")
    moved = tool.tag_set(canary.tag, stable.revision, stable.namespace, overwrite=True)
    assert moved.returncode == 0, moved.stderr
    try:
        listing, rows = tool.tag_list(canary.namespace)
        state = TagState(tag_set=real_mesh.tag_sets.get("canary"), tag_list=listing, rows=rows,
                         webhook=real_mesh.cluster.get(kinds.MUTATING_WEBHOOK,
                                                       facts.tag_webhook_name(canary.tag, stable.namespace)))
        problems = check_tag(canary, state)
        assert any(canary.tag in p and stable.revision in p for p in problems), problems
        app = canary.app_namespaces[0]
        real_mesh.cluster.apply(_pod(app, "after-move"))
        pod_problems = check_pod(canary, app, real_mesh.cluster.get(kinds.POD, "after-move", app))
        assert any(f"{app}/after-move" in p and f"injected by revision {stable.revision}" in p
                   for p in pod_problems), pod_problems
    finally:
        real_mesh.cluster.delete(kinds.POD, "after-move", canary.app_namespaces[0])
        tool.tag_set(canary.tag, canary.revision, canary.namespace, overwrite=True)
        # The webhook name carries the -i namespace, so the moved tag's webhook and Service stay behind.
        real_mesh.cluster.delete(kinds.MUTATING_WEBHOOK, facts.tag_webhook_name(canary.tag, stable.namespace))
        real_mesh.cluster.delete(kinds.SERVICE, facts.tag_service_name(canary.tag), stable.namespace)


def _default_validator_problems(mesh: MeshSetup) -> list[str]:
    return check_default_validator(*_webhooks_and_istiods(mesh))


def test_a_second_default_validator_left_active_is_named(real_mesh: MeshSetup) -> None:
    """A previous default revision's validator left active (istio/istio PR #61669): a second webhook configuration
    that validates config without a revision label, here calling the canary's istiod, accepted by the real API
    server next to the install's istiod-default-validator. The check names both and the revision the default tag
    names. Removed afterwards, so the cluster is as the other tests expect."""
    stable, canary = _plane(real_mesh, "stable"), _plane(real_mesh, "canary")
    assert _default_validator_problems(real_mesh) == []
    validator = real_mesh.cluster.get(kinds.VALIDATING_WEBHOOK, facts.DEFAULT_VALIDATOR)
    stale = f"{facts.DEFAULT_VALIDATOR}-previous"
    webhooks = [{**w, "clientConfig": {**w["clientConfig"], "service": {
        **w["clientConfig"]["service"], "name": facts.istiod_name(canary.revision), "namespace": canary.namespace}}}
        for w in validator["webhooks"]]
    labels = {"app": "istiod", facts.REV_LABEL: canary.revision}
    real_mesh.cluster.apply({"apiVersion": kinds.VALIDATING_WEBHOOK.api_version, "webhooks": webhooks,
                             "kind": "ValidatingWebhookConfiguration", "metadata": {"name": stale, "labels": labels}})
    try:
        problems = _default_validator_problems(real_mesh)
        assert any(p.startswith("2 webhooks validate Istio config without an istio.io/rev label: ") and stale in p
                   and facts.DEFAULT_VALIDATOR in p for p in problems), problems
        assert any(f"ValidatingWebhookConfiguration {stale} " in p and f"names revision {stable.revision}" in p
                   for p in problems), problems
    finally:
        real_mesh.cluster.delete(kinds.VALIDATING_WEBHOOK, stale)
    assert _default_validator_problems(real_mesh) == []


def _injection_enabled_problems(mesh: MeshSetup) -> list[str]:
    namespace = injection_probe_namespace(mesh)
    return check_default_tag_injection(namespace, admit_pod(mesh.cluster, namespace, mesh.plan.run_labels),
                                       default_tags(mesh), _plane(mesh, "stable").revision)


def _until(what: str, mesh: MeshSetup, probe, wanted) -> list[str]:
    """The probe's problems once `wanted(problems)` holds (a webhook patch reaches the API server's admission a
    moment later), bounded."""
    seen: list[list[str]] = [[]]

    def asked() -> Observation[None]:
        seen[0] = probe()
        return Observation(wanted(seen[0]), None, "; ".join(seen[0]) or "none")

    wait_for(what, asked, clock=mesh.cluster.clock, timeout=60, interval=2)
    return seen[0]


def test_default_tag_without_its_istio_injection_entry_leaves_those_pods_bare(real_mesh: MeshSetup) -> None:
    """The `default` tag's webhook, hand-edited to drop its entry for namespaces labelled istio-injection=enabled
    (namespace.sidecar-injector.istio.io): the real API server then admits a pod there without a sidecar, and the
    check names the namespace and the revision the tag names. Put back afterwards."""
    stable = _plane(real_mesh, "stable")
    tag = real_mesh.cluster.get(kinds.MUTATING_WEBHOOK, facts.tag_webhook_name(facts.DEFAULT_TAG, stable.namespace))
    assert tag is not None and _until("the default tag to inject", real_mesh, lambda: _injection_enabled_problems(
        real_mesh), lambda found: not found) == []
    kept = [w for w in tag["webhooks"] if w["name"] != facts.DEFAULT_NAMESPACE_WEBHOOK]
    assert len(kept) < len(tag["webhooks"])
    real_mesh.cluster.replace_fields(kinds.MUTATING_WEBHOOK, tag["metadata"]["name"], {"webhooks": kept})
    try:
        problems = _until("the bare pod to be reported", real_mesh, lambda: _injection_enabled_problems(real_mesh),
                          lambda found: bool(found))
        assert any("labelled istio-injection=enabled) gets no sidecar" in p and f"names revision {stable.revision}"
                   in p for p in problems), problems
    finally:
        real_mesh.cluster.replace_fields(kinds.MUTATING_WEBHOOK, tag["metadata"]["name"], {"webhooks": tag["webhooks"]})
    assert _until("the default tag to inject again", real_mesh, lambda: _injection_enabled_problems(real_mesh),
                  lambda found: not found) == []


def test_default_validator_narrowed_lets_unlabelled_config_through(real_mesh: MeshSetup) -> None:
    """The default validator, hand-narrowed to security.istio.io: it still calls the default tag's istiod (the
    structural check passes), but the real API server admits a DestinationRule without a revision label that
    istiod's validation would reject; the check says so. Put back afterwards."""
    app = _plane(real_mesh, "stable").app_namespaces[0]

    def probe() -> list[str]:
        return check_unlabelled_config_validated(
            app, admit_config(real_mesh.cluster, app, real_mesh.plan.run_labels, always_reject=False),
            admit_config(real_mesh.cluster, app, real_mesh.plan.run_labels, always_reject=True))

    assert _until("config without a revision label to be validated", real_mesh, probe, lambda found: not found) == []
    validator = real_mesh.cluster.get(kinds.VALIDATING_WEBHOOK, facts.DEFAULT_VALIDATOR)
    assert validator is not None
    narrowed = [{**w, "rules": [{**rule, "apiGroups": ["security.istio.io"]} for rule in w.get("rules") or []]}
                for w in validator["webhooks"]]
    real_mesh.cluster.replace_fields(kinds.VALIDATING_WEBHOOK, facts.DEFAULT_VALIDATOR, {"webhooks": narrowed})
    try:
        assert _default_validator_problems(real_mesh) == []  # the structure still looks right
        problems = _until("unvalidated config to be reported", real_mesh, probe, lambda found: bool(found))
        assert any(f"DestinationRule {app}/multirev-admission-probe without an istio.io/rev label carrying "
                   "internal.istio.io/webhook-always-reject" in p and "would be admitted" in p
                   for p in problems), problems
    finally:
        # Only the rules go back: istiod may have turned the failurePolicy to Fail meanwhile, and that stays its.
        current = real_mesh.cluster.get(kinds.VALIDATING_WEBHOOK, facts.DEFAULT_VALIDATOR) or validator
        restored = [{**w, "rules": old.get("rules")}
                    for w, old in zip(current["webhooks"], validator["webhooks"], strict=True)]
        real_mesh.cluster.replace_fields(kinds.VALIDATING_WEBHOOK, facts.DEFAULT_VALIDATOR, {"webhooks": restored})
    assert _until("config without a revision label to be validated again", real_mesh, probe,
                  lambda found: not found) == []


def test_virtual_service_naming_a_missing_gateway_fails_analyze(real_mesh: MeshSetup) -> None:
    """A VirtualService bound to a Gateway that does not exist: the real `istioctl analyze` reports an error that
    names the VirtualService and the gateway, and the analyze check fails with it."""
    canary = _plane(real_mesh, "canary")
    app = canary.app_namespaces[0]
    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
          "metadata": {"name": "dangling", "namespace": app, "labels": {facts.REV_LABEL: canary.revision}},
          "spec": {"hosts": ["dangling.example"], "gateways": ["no-such-gateway"],
                   "http": [{"route": [{"destination": {"host": "mesh-client"}}]}]}}
    real_mesh.cluster.apply(vs)
    try:
        problems = check_analyze(app, real_mesh.istioctl("canary").analyze(app, canary.revision, canary.namespace))
        assert problems and "dangling" in problems[0] and "no-such-gateway" in problems[0], problems
    finally:
        real_mesh.cluster.delete(kinds.VIRTUAL_SERVICE, "dangling", app)


def _await_published_root(mesh: MeshSetup, namespace: str, expected: str) -> None:
    """Until the namespace's istio-ca-root-cert holds `expected` (its istiod restarted onto a new CA)."""
    def published() -> Observation[None]:
        root = root_of(mesh.cluster.get(kinds.CONFIGMAP, ROOT_CONFIGMAP, namespace))
        return Observation(root == expected, None, f"root {fingerprint(root) if root else 'none'}, "
                                                   f"awaiting {fingerprint(expected)}")

    wait_for(f"istiod in {namespace} to publish root {fingerprint(expected)}", published,
             clock=mesh.cluster.clock, timeout=180, interval=2)


def _restart_istiod_with(mesh: MeshSetup, role: str, cacerts: dict) -> None:
    plane = _plane(mesh, role)
    mesh.cluster.apply(cacerts)
    mesh.cluster.rollout_restart(plane.namespace, facts.istiod_name(plane.revision))
    root = base64.b64decode(cacerts["data"][ROOT_CERT]).decode()
    _await_published_root(mesh, plane.namespace, root)


def test_a_control_plane_with_a_root_of_its_own_breaks_trust(real_mesh: MeshSetup) -> None:
    """The canary's `cacerts` made from another root and its istiod restarted: the real istiod signs with and
    publishes that root, and the trust check (run before a canary upgrade) names both revisions and their
    different roots. Restored afterwards."""
    canary = _plane(real_mesh, "canary")
    roots = published_roots(real_mesh.cluster, real_mesh.plan)
    assert trust_root_problems(roots) == [], "both revisions start on one root"
    original = real_mesh.cluster.get(kinds.SECRET, CACERTS_SECRET, canary.namespace)
    assert original is not None
    try:
        _restart_istiod_with(real_mesh, "canary", MeshTrust().cacerts(canary.namespace, real_mesh.plan.run_labels))
        problems = trust_root_problems(published_roots(real_mesh.cluster, real_mesh.plan))
        assert len(problems) == 1 and "different trust roots" in problems[0], problems
        stable = _plane(real_mesh, "stable")
        assert f"{stable.revision} ({stable.namespace})" in problems[0]
        assert f"{canary.revision} ({canary.namespace})" in problems[0]
    finally:
        _restart_istiod_with(real_mesh, "canary", {
            "apiVersion": "v1", "kind": "Secret", "type": original.get("type", "Opaque"), "data": original["data"],
            "metadata": {k: original["metadata"][k] for k in ("name", "namespace", "labels")}})
    assert trust_root_problems(published_roots(real_mesh.cluster, real_mesh.plan)) == []


def _stable_state(mesh: MeshSetup) -> ControlPlaneState:
    stable = _plane(mesh, "stable")
    return ControlPlaneState(
        install=None,
        istiod=mesh.cluster.get(kinds.DEPLOYMENT, facts.istiod_name(stable.revision), stable.namespace),
        injector_webhook=mesh.cluster.get(kinds.MUTATING_WEBHOOK, facts.injector_webhook_name(
            stable.revision, stable.namespace)),
        validator_webhook=mesh.cluster.get(kinds.VALIDATING_WEBHOOK, facts.validator_webhook_name(
            stable.revision, stable.namespace)))


def _removed_by(mesh: MeshSetup, action) -> set:
    """Keys of istioctl-made objects that `action` removed, once the removal has settled."""
    before = set(istio_objects(mesh.cluster))
    result = action()
    assert result.returncode == 0, result.stderr

    def settled() -> Observation[set]:
        first = set(istio_objects(mesh.cluster))
        mesh.cluster.clock.sleep(3)
        second = set(istio_objects(mesh.cluster))
        return Observation(first == second, before - second, f"{len(before - second)} removed so far")

    return wait_for("the removal to settle", settled, clock=mesh.cluster.clock, timeout=180, interval=1)


def test_uninstalling_the_wrong_revision_breaks_the_one_meant_to_stay(
        pair: Pair, record_property: pytest.RecordProperty) -> None:
    """`uninstall --revision <stable>` when the canary was meant: the control-plane check of the revision that was
    to stay names its missing istiod Deployment and webhooks. The model, given the same command, removes the same
    objects. Runs after the non-destructive tests: it removes a revision."""
    for name, mesh in _both(pair):
        stable = _plane(mesh, "stable")
        removed = _removed_by(mesh, lambda m=mesh, r=stable.revision: m.istioctl("stable").uninstall_revision(
            r, m.iop_files["stable"]))
        if name == "real":
            pair.removed_by_real_uninstall = removed
            problems = check_control_plane(stable, _stable_state(mesh))
            assert f"Deployment {stable.namespace}/{facts.istiod_name(stable.revision)} does not exist" in problems
            assert any(facts.injector_webhook_name(stable.revision, stable.namespace) in p for p in problems), problems
        else:
            model_removed = removed
    pair.compared += len(model_removed | pair.removed_by_real_uninstall)
    pair.differences += diff_objects("uninstall", dict.fromkeys(model_removed, {}),
                                     dict.fromkeys(pair.removed_by_real_uninstall, {}))
    _judge(pair, record_property)


def test_purge_removes_the_same_on_both(pair: Pair, record_property: pytest.RecordProperty) -> None:
    """After removing the remaining tags, `uninstall --purge` removes the same istioctl-made objects on the model
    as on the real control plane; then no listed simplification is stale."""
    removed = {}
    for name, mesh in _both(pair):
        for role in ("stable", "canary"):
            plane = _plane(mesh, role)
            mesh.istioctl(role).tag_remove(plane.tag, plane.namespace)
        removed[name] = _removed_by(mesh, lambda m=mesh: m.istioctl("canary").uninstall_purge())
    pair.compared += len(removed["model"] | removed["real"])
    pair.differences += diff_objects("purge", dict.fromkeys(removed["model"], {}), dict.fromkeys(removed["real"], {}))
    _judge(pair, record_property)
    stale = unused(pair.differences)
    assert not stale, f"listed simplifications that no longer occur (remove them): {', '.join(stale)}"
