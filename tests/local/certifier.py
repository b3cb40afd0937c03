"""A ServiceAccount bound to exactly the ClusterRole docs/backends.md states for an `--installed` run, a kubeconfig
that is that account, and what the bed's API server logged it asking for.

The bed's API server authorizes by RBAC (multirev/backends/local/controlplane.py) and, for the users the bed names,
writes an audit log (Metadata: who, verb, resource, namespace, name, decision). A run under the account that needed
more than the Role gives is named by the requests the server forbade, not by whichever check failed on a 403.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from multirev.kube import kinds
from multirev.paths import PROJECT_ROOT
from tests.local.existing_bed import ExistingBed, create

CERTIFY_INSTALLED_ROLE = PROJECT_ROOT / "manifests" / "rbac" / "certify-installed.yaml"
NAMESPACE = "conformance-ci"
ACCOUNT = "certifier"
USER = f"system:serviceaccount:{NAMESPACE}:{ACCOUNT}"
TOKEN_SECONDS = 3 * 3600  # the whole module's runs; the API server's default maximum is far above


def role_objects(path: Path = CERTIFY_INSTALLED_ROLE) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def bind_certifier(bed: ExistingBed, folder: Path, role: Path = CERTIFY_INSTALLED_ROLE) -> Path:
    """The account, the ClusterRoles of `role` and a binding of each to the account, as a cluster's owner would make
    them for a CI job; returns a kubeconfig (mode 0600) that is the account. Create them before the bed's "before"
    snapshot: they are the owner's."""
    create(bed.cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    return bind(bed, folder, ACCOUNT, role_objects(role))


def bind(bed: ExistingBed, folder: Path, account: str, roles: list[dict]) -> Path:
    """A ServiceAccount `account` in NAMESPACE bound to each ClusterRole of `roles` (created here), and a kubeconfig
    that authenticates as it with a TokenRequest token."""
    create(bed.cluster, {"apiVersion": "v1", "kind": "ServiceAccount",
                         "metadata": {"name": account, "namespace": NAMESPACE}})
    for obj in roles:
        assert obj["kind"] == "ClusterRole", f"only ClusterRoles are bound here, not {obj['kind']}"
        create(bed.cluster, obj)
        name = obj["metadata"]["name"]
        create(bed.cluster, {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{name}-{account}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]})
    token = bed.cluster.api.call_api(
        f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{account}/token", "POST",
        header_params={"Content-Type": "application/json", "Accept": "application/json"},
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
              "spec": {"expirationSeconds": TOKEN_SECONDS}},
        response_types_map={201: "object"}, auth_settings=["BearerToken"], _return_http_data_only=True,
        _preload_content=True)["status"]["token"]
    cluster = yaml.safe_load(bed.kubeconfig.read_text())["clusters"][0]
    config = {"apiVersion": "v1", "kind": "Config", "clusters": [cluster],
              "users": [{"name": account, "user": {"token": token}}],
              "contexts": [{"name": account, "context": {"cluster": cluster["name"], "user": account}}],
              "current-context": account}
    path = folder / f"{account}.kubeconfig"
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(config))
    return path


def unbind(bed: ExistingBed, account: str, roles: list[dict]) -> None:
    for obj in roles:
        bed.cluster.delete(kinds.CLUSTER_ROLE_BINDING, f"{obj['metadata']['name']}-{account}")
        bed.cluster.delete(kinds.CLUSTER_ROLE, obj["metadata"]["name"])
    bed.cluster.delete(kinds.SERVICEACCOUNT, account, NAMESPACE)


@dataclass(frozen=True)
class Request:
    verb: str
    resource: str  # "group/resource[/subresource]", or the path of a non-resource URL
    namespace: str
    name: str
    allowed: bool
    agent: str  # the client's User-Agent: "istioctl/<version> ...", or the suite's Python client

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.verb} {self.resource}{' ' + self.name if self.name else ''}{where}"


def requests_of(audit_log: Path, user: str = USER) -> list[Request]:
    """The user's requests as the API server decided them (k8s.io/apiserver@v0.35.3 pkg/apis/audit/v1/types.go
    Event; the authorizer's decision is the `authorization.k8s.io/decision` annotation, pkg/endpoints/filters/
    authorization.go)."""
    found = []
    for line in audit_log.read_text().splitlines() if audit_log.exists() else []:
        event = json.loads(line)
        if event.get("user", {}).get("username") != user or event.get("stage") != "ResponseComplete":
            continue
        ref = event.get("objectRef") or {}
        if ref:
            resource = f"{ref.get('apiGroup') or 'core'}/{ref.get('resource', '')}"
            if ref.get("subresource"):
                resource += f"/{ref['subresource']}"
        else:
            resource = event.get("requestURI", "").split("?")[0]
        decision = (event.get("annotations") or {}).get("authorization.k8s.io/decision")
        found.append(Request(event.get("verb", ""), resource, ref.get("namespace", ""), ref.get("name", ""),
                             decision != "forbid", event.get("userAgent", "")))
    return found


def forbidden(audit_log: Path, user: str = USER) -> list[str]:
    """Each request the server refused the user, once, in order."""
    return list(dict.fromkeys(str(r) for r in requests_of(audit_log, user) if not r.allowed))


def secret_reads_by_the_suite(audit_log: Path, user: str = USER) -> list[str]:
    """The user's requests for Secrets that did not come from istioctl (analyze reads them, by its own design)."""
    return list(dict.fromkeys(str(r) for r in requests_of(audit_log, user)
                              if r.resource == "core/secrets" and not r.agent.startswith("istioctl/")))

