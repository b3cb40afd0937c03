"""Cluster operations on a real API server through the official kubernetes client.

Shared by the kind and existing backends. Resources are addressed by the REST coordinates in
multirev.kube.kinds, so the same code handles core kinds and Istio CRDs.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

import requests
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

from multirev.backends.base import Endpoint, HttpResponse
from multirev.clock import Clock
from multirev.commands import Completed
from multirev.errors import UsageError
from multirev.kube.kinds import DEPLOYMENT, Kind, of
from multirev.kube.objects import Obj, format_label_selector

FIELD_MANAGER = "multirev-conformance"


def load_api_client(kubeconfig: str | None, context: str | None) -> client.ApiClient:
    """Load a kubeconfig; any problem becomes one clear line."""
    try:
        configuration = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    except Exception as exc:
        where = kubeconfig or "the default kubeconfig"
        detail = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"cannot use {where}{f' context {context}' if context else ''}: {detail}") from exc
    return client.ApiClient(configuration)


class KubeCluster:
    def __init__(self, api: client.ApiClient, clock: Clock, *, extra_labels: dict[str, str] | None = None) -> None:
        self.api = api
        self.clock = clock
        self.extra_labels = extra_labels or {}

    def _call(self, method: str, path: str, *, body: Any = None, query: list | None = None,
              content_type: str = "application/json", response: str = "object") -> Any:
        return self.api.call_api(
            path, method,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            response_types_map={200: response, 201: response},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _preload_content=True,
        )

    def apply(self, obj: Obj) -> Obj:
        """Server-side apply; the run-id label is added so teardown finds what the run made."""
        obj = copy.deepcopy(obj)  # the caller's object stays as it was
        kind = of(obj)
        meta = obj.setdefault("metadata", {})
        meta["labels"] = {**(meta.get("labels") or {}), **self.extra_labels}
        path = kind.path(meta.get("namespace"), meta["name"])
        return self._call("PATCH", path, body=obj, content_type="application/apply-patch+yaml",
                          query=[("fieldManager", FIELD_MANAGER), ("force", "true")])

    def get(self, kind: Kind, name: str, namespace: str | None = None) -> Obj | None:
        try:
            return self._call("GET", kind.path(namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, kind: Kind, namespace: str | None = None, labels: dict[str, str] | None = None) -> list[Obj]:
        query = [("labelSelector", format_label_selector(labels))] if labels else []
        try:
            result = self._call("GET", kind.path(namespace), query=query)
        except ApiException as exc:
            if exc.status == 404:  # the CRD is not installed (yet)
                return []
            raise
        items = result.get("items") or []
        for item in items:  # list items carry no apiVersion/kind
            item.setdefault("apiVersion", kind.api_version)
            item.setdefault("kind", kind.kind)
        return items

    def label(self, kind: Kind, name: str, labels: dict[str, str | None], namespace: str | None = None) -> None:
        self._call("PATCH", kind.path(namespace, name), body={"metadata": {"labels": labels}},
                   content_type="application/merge-patch+json")

    def delete(self, kind: Kind, name: str, namespace: str | None = None) -> bool:
        try:
            self._call("DELETE", kind.path(namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def pod_logs(self, namespace: str, pod: str, container: str, tail_lines: int = 500) -> str:
        # Raw bytes: the client's 'str' response type would json-decode a JSON log line and repr bytes.
        raw = self.api.call_api(
            f"/api/v1/namespaces/{namespace}/pods/{pod}/log", "GET",
            query_params=[("container", container), ("tailLines", str(tail_lines))],
            header_params={"Accept": "text/plain"}, auth_settings=["BearerToken"],
            _return_http_data_only=True, _preload_content=False,
        )
        return raw.data.decode("utf-8", errors="replace")

    def exec(self, namespace: str, pod: str, container: str, command: list[str]) -> Completed:
        core = client.CoreV1Api(self.api)
        resp = stream(core.connect_get_namespaced_pod_exec, pod, namespace, container=container, command=command,
                      stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
        resp.run_forever(timeout=60)
        code = resp.returncode if resp.returncode is not None else 1
        return Completed(command, code, resp.read_stdout() or "", resp.read_stderr() or "")

    def rollout_restart(self, namespace: str, deployment: str) -> None:
        """What `kubectl rollout restart` does: bump a pod-template annotation
        (kubernetes/kubernetes staging/src/k8s.io/kubectl/pkg/polymorphichelpers/objectrestarter.go)."""
        stamp = datetime.datetime.now(datetime.UTC).isoformat()
        patch = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}}
        self._call("PATCH", DEPLOYMENT.path(namespace, deployment), body=patch,
                   content_type="application/strategic-merge-patch+json")

    def http_get(self, endpoint: Endpoint, path: str, host: str) -> HttpResponse:
        try:
            resp = requests.get(f"http://{endpoint.host}:{endpoint.port}{path}", headers={"Host": host}, timeout=10)
        except requests.RequestException as exc:
            return HttpResponse(0, {}, f"{type(exc).__name__}: {exc}")
        return HttpResponse(resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, resp.text)

    def kubernetes_version(self) -> str:
        return self._call("GET", "/version").get("gitVersion", "")
