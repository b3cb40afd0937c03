"""Cluster operations on a real API server through the official kubernetes client.

Shared by the kind and existing backends. Resources are addressed by the REST coordinates in
multirev.kube.kinds, so the same code handles core kinds and Istio CRDs.
"""

from __future__ import annotations

import copy
import datetime
import json
import socket
import ssl
from typing import Any

import requests
import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.stream import portforward, stream
from websocket import WebSocketException

from multirev.backends.base import Endpoint, HttpResponse
from multirev.clock import Clock
from multirev.commands import Completed
from multirev.errors import AdmissionRefused, UsageError
from multirev.kube.kinds import DEPLOYMENT, Kind, of
from multirev.kube.objects import Obj, format_label_selector
from multirev.kube.portforward import ServicePortForward, ready_pod_port

FIELD_MANAGER = "multirev-conformance"


def load_api_client(kubeconfig: str | None, context: str | None) -> client.ApiClient:
    """Load a kubeconfig; any problem becomes one clear line."""
    try:
        configuration = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
        configuration.retries = 1  # urllib3 would retry 3 times; the suite's waits retry with their own bounds
    except Exception as exc:
        where = kubeconfig or "the default kubeconfig"
        detail = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"cannot use {where}{f' context {context}' if context else ''}: {detail}") from exc
    return client.ApiClient(configuration)


REQUEST_TIMEOUT = (10.0, 120.0)  # connect, read: a silent server is a timeout, not a hang
EXEC_TIMEOUT = 60.0
EXEC_FAILED = 255  # what a failed exec counts as: any non-zero code is a failed request


def unreachable_cause(exc: BaseException) -> str:
    """Why an API server could not be reached, in words: connection refused, DNS, TLS, timeout, or credentials."""
    if isinstance(exc, ApiException) and exc.status in (401, 403):
        return f"the server refused the credentials (HTTP {exc.status} {exc.reason})"
    if isinstance(exc, ApiException):
        return f"the server answered HTTP {exc.status} {exc.reason}"
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:  # the cause sits under urllib3's wrappers
        seen.append(current)
        current = getattr(current, "reason", None) if isinstance(getattr(current, "reason", None), BaseException) \
            else (current.__cause__ or current.__context__)
    for cause in seen:
        if isinstance(cause, ssl.SSLError | urllib3.exceptions.SSLError):
            return f"TLS handshake failed ({_first_line(str(cause))})"
        if isinstance(cause, socket.gaierror | urllib3.exceptions.NameResolutionError):
            return "the host name does not resolve (DNS)"
        if isinstance(cause, ConnectionRefusedError) or "Connection refused" in str(cause):
            return "connection refused (nothing listens there)"
        if isinstance(cause, TimeoutError | urllib3.exceptions.TimeoutError | socket.timeout):
            return "timed out (no answer)"
    return f"{type(exc).__name__}: {_first_line(str(exc))}"


def server_of(api: client.ApiClient) -> str:
    return str(api.configuration.host)


class LogsUnavailable(RuntimeError):
    """The API server would not give a container's log; the message names the pod and the server's reason."""


def _status_message(exc: ApiException) -> str:
    """The reason in an error Status body, else the HTTP status line."""
    try:
        message = json.loads(exc.body or "").get("message")
    except (ValueError, AttributeError):
        message = None
    return _first_line(str(message)) if message else f"HTTP {exc.status} {exc.reason}"


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["no reason given"])[0][:300]


class KubeCluster:
    def __init__(self, api: client.ApiClient, clock: Clock, *, extra_labels: dict[str, str] | None = None) -> None:
        self.api = api
        self.clock = clock
        self.extra_labels = extra_labels or {}
        self._forwards: dict[str, ServicePortForward] = {}

    def _call(self, method: str, path: str, *, body: Any = None, query: list | None = None,
              content_type: str = "application/json", response: str = "object",
              timeout: tuple[float, float] = REQUEST_TIMEOUT) -> Any:
        return self.api.call_api(
            path, method,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            response_types_map={200: response, 201: response},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _preload_content=True,
            _request_timeout=timeout,
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
                   content_type="application/merge-patch+json", query=[("fieldManager", FIELD_MANAGER)])

    def replace_spec(self, kind: Kind, name: str, spec: dict, namespace: str | None = None) -> None:
        """The whole spec, as it is given (a JSON patch: a merge patch or an apply would keep fields it lacks)."""
        self._call("PATCH", kind.path(namespace, name), body=[{"op": "replace", "path": "/spec", "value": spec}],
                   content_type="application/json-patch+json", query=[("fieldManager", FIELD_MANAGER)])

    def replace_fields(self, kind: Kind, name: str, fields: dict[str, Any], namespace: str | None = None) -> None:
        """A JSON patch of `add` operations, which set a member whether or not it exists (RFC 6902 4.1)."""
        ops = [{"op": "add", "path": f"/{field}", "value": value} for field, value in fields.items()]
        self._call("PATCH", kind.path(namespace, name), body=ops, content_type="application/json-patch+json",
                   query=[("fieldManager", FIELD_MANAGER)])

    def create(self, obj: Obj) -> Obj:
        kind = of(obj)
        return self._call("POST", kind.path(obj["metadata"].get("namespace")), body=obj,
                          query=[("fieldManager", FIELD_MANAGER)])

    def dry_run_create(self, obj: Obj) -> Obj:
        kind = of(obj)
        try:
            return self._call("POST", kind.path(obj["metadata"].get("namespace")), body=obj,
                              query=[("dryRun", "All"), ("fieldManager", FIELD_MANAGER)])
        except ApiException as exc:
            # A webhook's denial is 400 or the code it gave, one that could not be called 500 (apiserver@v0.35.3:
            # pkg/admission/plugin/webhook/errors/statuserror.go ToStatusErr, mutating/dispatcher.go); 422: schema.
            if exc.status in (400, 422, 500):
                raise AdmissionRefused(_status_message(exc)) from exc
            raise

    def delete(self, kind: Kind, name: str, namespace: str | None = None) -> bool:
        try:
            self._call("DELETE", kind.path(namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def pod_logs(self, namespace: str, pod: str, container: str, tail_lines: int = 500) -> str:
        """The container's log; a log the server cannot give (the kubelet refused, the container never ran)
        raises LogsUnavailable naming the pod and the server's reason."""
        try:
            # Raw bytes: the client's 'str' response type would json-decode a JSON log line and repr bytes.
            raw = self.api.call_api(
                f"/api/v1/namespaces/{namespace}/pods/{pod}/log", "GET",
                query_params=[("container", container), ("tailLines", str(tail_lines))],
                # JSON too: the server writes its error Status in a type the request accepts, and with text/plain
                # alone answers any failure with a bare 406 that hides it
                # (apiserver@v0.35.4 pkg/endpoints/handlers/responsewriters/writers.go ErrorNegotiated).
                header_params={"Accept": "text/plain, application/json"}, auth_settings=["BearerToken"],
                _return_http_data_only=True, _preload_content=False,
            )
        except ApiException as exc:
            raise LogsUnavailable(f"logs of container {container} of Pod {namespace}/{pod} are unavailable: "
                                  f"{_status_message(exc)}") from None
        return raw.data.decode("utf-8", errors="replace")

    def exec(self, namespace: str, pod: str, container: str, command: list[str]) -> Completed:
        """Run a command in a container. A pod that vanishes (rollout, eviction) makes a failed command with a
        one-line reason, never an exception: callers count it as a failed request."""
        core = client.CoreV1Api(self.api)
        where = f"exec into {namespace}/{pod}"
        try:
            resp = stream(core.connect_get_namespaced_pod_exec, pod, namespace, container=container,
                          command=command, stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
        except (ApiException, AttributeError) as exc:
            # stream() wraps a refused upgrade (pod gone: 404) as ApiException(status=0, body=None)
            # (kubernetes 36.0.3 stream/ws_client.py websocket_call), on which api_client.py's error handling
            # then fails with AttributeError: the refusal is that exception's context.
            refusal = exc if isinstance(exc, ApiException) else exc.__context__
            if not isinstance(refusal, ApiException):
                raise
            return Completed(command, EXEC_FAILED, "", f"{where} refused: {_first_line(str(refusal.reason))}")
        try:
            resp.run_forever(timeout=EXEC_TIMEOUT)
            stdout, stderr = resp.read_stdout() or "", resp.read_stderr() or ""
            code = resp.returncode
        except WebSocketException as exc:  # the connection dropped without a close frame
            return Completed(command, EXEC_FAILED, "", f"{where}: stream lost ({_first_line(str(exc))})")
        except (TypeError, KeyError, ValueError, yaml.YAMLError):
            # WSClient.returncode parses the error channel unguarded; an abnormal close leaves it empty
            # (kubernetes 36.0.3 stream/ws_client.py returncode).
            return Completed(command, EXEC_FAILED, stdout, f"{where}: stream closed without an exit status")
        finally:
            resp.close()
        if code is None:
            return Completed(command, EXEC_FAILED, stdout, f"{where}: no exit status within {EXEC_TIMEOUT:.0f} s")
        return Completed(command, code, stdout, stderr)

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

    def service_endpoint(self, namespace: str, service: str, port_name: str) -> Endpoint:
        """A loopback port relayed to the Service's port on a ready pod through the API server (pods/portforward,
        as `kubectl port-forward service/<name>`): for a Service the host has no route to (multirev/kube/
        portforward.py)."""
        key = f"{namespace}/{service}:{port_name}"
        if key not in self._forwards:
            core = client.CoreV1Api(self.api)

            def open_stream(pod: str, port: int) -> Any:
                return portforward(core.connect_get_namespaced_pod_portforward, pod, namespace,
                                   ports=str(port)).socket(port)

            forward = ServicePortForward(lambda: ready_pod_port(self, namespace, service, port_name), open_stream)
            forward.start()
            self._forwards[key] = forward
        return Endpoint("127.0.0.1", self._forwards[key].port)

    def stop_forwarding(self) -> None:
        for forward in self._forwards.values():
            forward.stop()
        self._forwards.clear()

    def allowed(self, review: dict) -> bool:
        """A SelfSubjectAccessReview: may the kubeconfig's user do what `review` (its spec) asks."""
        answer = self._call("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                            body={"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                                  "spec": review})
        return bool((answer.get("status") or {}).get("allowed"))

    def username(self) -> str:
        """Who the API server takes the kubeconfig's user for (SelfSubjectReview, authentication.k8s.io/v1 from
        Kubernetes 1.28); "the kubeconfig's user" where the server cannot say."""
        try:
            answer = self._call("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        except ApiException:
            return "the kubeconfig's user"
        return ((answer.get("status") or {}).get("userInfo") or {}).get("username") or "the kubeconfig's user"

    def kubernetes_version(self, timeout: tuple[float, float] = REQUEST_TIMEOUT) -> str:
        return self._call("GET", "/version", timeout=timeout).get("gitVersion", "")
