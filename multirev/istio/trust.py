"""One trust root for both revisions: a `cacerts` Secret in each control plane's namespace before install.

Without it every istiod makes its own self-signed root in its own namespace (istio-ca-secret;
pilot/pkg/bootstrap/istio_ca.go@1.18.5 and @1.30.3), so in the separate layout the revisions' workloads
cannot complete mTLS with each other and a namespace moving between them breaks. This follows Istio's
"plug in CA certificates" task: one root, one intermediate CA per control plane.
"""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# istio@1.30.3:security/pkg/pki/ca/ca.go (CACertsSecret and the file names; the same at 1.18.5,
# ExternalCASecret there). istiod mounts the Secret optionally at /etc/cacerts
# (manifests/charts/istio-control/istio-discovery/templates/deployment.yaml@1.18.5 and @1.30.3).
CACERTS_SECRET = "cacerts"
CA_CERT, CA_KEY, CERT_CHAIN, ROOT_CERT = "ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem"
# What each istiod's namespace controller writes into the namespaces it sees (namespacecontroller.go, key
# from pkg/config/constants/constants.go; istio@1.18.5 and @1.30.3).
ROOT_CONFIGMAP, ROOT_CONFIGMAP_KEY = "istio-ca-root-cert", "root-cert.pem"
VALIDITY = datetime.timedelta(days=30)  # longer than any run, and than the 24 h workload certificates


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "multirev-conformance"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
        issuer_key: ec.EllipticCurvePrivateKey, path_length: int | None) -> x509.Certificate:
    """CA:TRUE and keyCertSign, as istiod and Go's chain verification require (security/pkg/pki/ca/ca.go,
    NewPluggedCertIstioCAOptions; tools/certs/common.mk@1.30.3 makes the same extensions)."""
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(x509.KeyUsage(True, False, True, False, False, True, True, False, False), critical=True)
            .sign(issuer_key, hashes.SHA256()))


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class MeshTrust:
    """A root made for the run; intermediates are made on demand, one per control-plane namespace."""

    _key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    _root: x509.Certificate | None = None

    @property
    def root(self) -> x509.Certificate:
        if self._root is None:
            name = _name("multirev root CA")
            self._root = _ca(name, self._key, name, self._key, path_length=1)
        return self._root

    @property
    def root_pem(self) -> str:
        return _pem(self.root)

    def cacerts(self, namespace: str, labels: dict[str, str]) -> dict:
        """The Secret for the control plane in `namespace`: its own intermediate, signed by the shared root."""
        key = ec.generate_private_key(ec.SECP256R1())
        intermediate = _ca(_name(f"multirev intermediate CA {namespace}"), key, self.root.subject, self._key,
                           path_length=0)
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": CACERTS_SECRET, "namespace": namespace, "labels": dict(labels)},
                "data": {name: base64.b64encode(text.encode()).decode() for name, text in {
                    CA_CERT: _pem(intermediate), CA_KEY: key_pem, ROOT_CERT: self.root_pem,
                    CERT_CHAIN: _pem(intermediate) + self.root_pem}.items()}}


def self_signed_root(common_name: str) -> str:
    """A root as an istiod without plugged-in certificates makes for itself (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return _pem(_ca(_name(common_name), key, _name(common_name), key, path_length=None))


def fingerprint(pem: str) -> str:
    """A short, stable name for a root certificate (SHA-256 of its DER), for messages."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return "unreadable"
    return cert.fingerprint(hashes.SHA256()).hex()[:16]
