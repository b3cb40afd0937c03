"""The run's trust root: one root, an intermediate CA per control plane, in the shape istiod accepts."""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fixtures.mesh import build_mesh
from multirev.backends.local.istiod import mount_secrets
from multirev.backends.simulated.backend import SimulatedBackend
from multirev.checks.trust import PublishedRoot, trust_root_problems
from multirev.commands import Transcript
from multirev.istio.trust import (
    CA_CERT,
    CA_KEY,
    CACERTS_SECRET,
    CERT_CHAIN,
    ROOT_CERT,
    ROOT_CONFIGMAP,
    MeshTrust,
    fingerprint,
)
from multirev.kind.images import NODE_IMAGES
from multirev.kube import kinds
from multirev.observe import published_roots
from multirev.plan import MeshPlan
from multirev.profile import load_profile


def _decoded(secret: dict) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


def test_each_control_plane_gets_its_own_intermediate_under_one_root() -> None:
    trust = MeshTrust()
    stable, canary = trust.cacerts("istio-stable", {"run": "1"}), trust.cacerts("istio-canary", {"run": "1"})
    assert stable["metadata"] == {"name": CACERTS_SECRET, "namespace": "istio-stable", "labels": {"run": "1"}}
    a, b = _decoded(stable), _decoded(canary)
    assert set(a) == {CA_CERT, CA_KEY, CERT_CHAIN, ROOT_CERT}  # all four: 1.27+ refuses a partial bundle
    assert a[ROOT_CERT] == b[ROOT_CERT] and a[CA_CERT] != b[CA_CERT]
    root = x509.load_pem_x509_certificate(a[ROOT_CERT])
    for bundle in (a, b):
        intermediate = x509.load_pem_x509_certificate(bundle[CA_CERT])
        intermediate.verify_directly_issued_by(root)
        # istiod refuses a signing certificate that is not a CA; Go's chain check needs keyCertSign on parents.
        constraints = intermediate.extensions.get_extension_for_class(x509.BasicConstraints).value
        assert constraints.ca and constraints.path_length == 0
        assert intermediate.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
        assert root.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
        assert bundle[CERT_CHAIN] == bundle[CA_CERT] + bundle[ROOT_CERT]
        key = serialization.load_pem_private_key(bundle[CA_KEY], password=None)
        assert key.public_key().public_numbers() == intermediate.public_key().public_numbers()


def test_fingerprints_tell_roots_apart() -> None:
    one, other = MeshTrust().root_pem, MeshTrust().root_pem
    assert fingerprint(one) == fingerprint(one) != fingerprint(other)
    assert fingerprint("not a certificate") == "unreadable"


def test_local_istiod_finds_the_plugged_ca_where_the_chart_mounts_it(tmp_path: Path) -> None:
    """The local backend writes a Secret volume under the process folder at its mountPath, so istiod's relative
    ./etc/cacerts finds the files; a missing optional Secret leaves nothing."""
    secret = MeshTrust().cacerts("istio-canary", {})
    pod = {"metadata": {"namespace": "istio-canary"},
           "spec": {"volumes": [{"name": "cacerts", "secret": {"secretName": "cacerts", "optional": True}},
                                {"name": "remote", "secret": {"secretName": "istio-kubeconfig", "optional": True}},
                                {"name": "local-certs", "emptyDir": {}}]}}
    container = {"volumeMounts": [{"name": "cacerts", "mountPath": "/etc/cacerts", "readOnly": True},
                                  {"name": "remote", "mountPath": "/var/run/secrets/remote"},
                                  {"name": "local-certs", "mountPath": "/var/run/secrets/istio-dns"}]}
    secrets = {("istio-canary", "cacerts"): secret}
    mount_secrets(pod, container, tmp_path, lambda ns, name: secrets.get((ns, name)))
    written = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert written == {f"etc/cacerts/{name}" for name in (CA_CERT, CA_KEY, CERT_CHAIN, ROOT_CERT)}
    assert (tmp_path / "etc/cacerts" / ROOT_CERT).read_bytes() == _decoded(secret)[ROOT_CERT]
    assert (tmp_path / "etc/cacerts" / CA_KEY).stat().st_mode & 0o777 == 0o600


def test_the_trust_check_names_both_revisions_and_their_roots() -> None:
    def published(revision: str, namespace: str, root: str | None) -> PublishedRoot:
        config_map = None if root is None else {"data": {"root-cert.pem": root}}
        return PublishedRoot(revision, namespace, config_map)

    one, other = MeshTrust().root_pem, MeshTrust().root_pem
    assert trust_root_problems([published("a", "istio-a", one), published("b", "istio-b", one)]) == []
    [problem] = trust_root_problems([published("a", "istio-a", one), published("b", "istio-b", other)])
    assert f"a (istio-a) root {fingerprint(one)} vs b (istio-b) root {fingerprint(other)}" in problem
    assert "cacerts" in problem
    [missing] = trust_root_problems([published("a", "istio-a", one), published("b", "istio-b", None)])
    assert missing.startswith("ConfigMap istio-b/istio-ca-root-cert has no root-cert.pem: istiod-b")
    # Shared layout: one namespace, one ConfigMap, nothing to disagree.
    assert trust_root_problems([published("a", "istio-system", one), published("b", "istio-system", other)]) == []


def test_a_revision_that_does_not_watch_its_own_namespace_is_read_where_it_publishes(tmp_path: Path) -> None:
    """istiod writes its root only where its discoverySelectors select (pkg/kube/namespace/filter.go@1.30.3 has no
    exception for its own namespace): an owner's revision whose selectors leave out its namespace publishes in its
    app namespaces, and the trust check reads it there instead of reporting it missing (issue 26, item 7)."""
    backend = SimulatedBackend(Transcript(tmp_path / "t.jsonl"), seed=1, faults=[],
                               node_image=next(iter(NODE_IMAGES.values())), work_dir=tmp_path, host_port_base=18080)
    cluster = backend.start()
    plan = MeshPlan(load_profile("current"), "run1")
    build_mesh(plan, backend, cluster, tmp_path, set())
    stable = plan.plane("stable")
    own, app = stable.plane.namespace, stable.plane.app_namespaces[0]
    root = cluster.get(kinds.CONFIGMAP, ROOT_CONFIGMAP, own)
    assert trust_root_problems(published_roots(cluster, plan)) == []
    # Its own namespace no longer selected: nothing there; what it publishes is in its app namespace.
    cluster.label(kinds.NAMESPACE, own, dict.fromkeys(stable.discovery_labels))
    cluster.delete(kinds.CONFIGMAP, ROOT_CONFIGMAP, own)
    cluster.apply({**root, "metadata": {"name": ROOT_CONFIGMAP, "namespace": app,
                                        "labels": root["metadata"]["labels"]}})
    canary = plan.plane("canary").plane
    read = {entry.revision: entry.namespace for entry in published_roots(cluster, plan)}
    assert read == {stable.plane.revision: app, canary.revision: canary.namespace}
    assert trust_root_problems(published_roots(cluster, plan)) == []
