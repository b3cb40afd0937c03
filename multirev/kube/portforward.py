"""Reach a Service from the host through the API server, the way `kubectl port-forward service/<name>` does: each
connection to a loopback port is relayed over a pods/portforward stream to one ready pod behind the Service, picked
afresh as pods come and go (a gateway rollout replaces them). For what has no address the host can route to: a
Gateway API gateway's ClusterIP Service on kind or on someone's cluster.

kubectl resolves the Service to a pod of its selector and the Service port to the container port it targets
(kubernetes@v1.35.4 staging/src/k8s.io/kubectl/pkg/cmd/portforward/portforward.go convertServiceNamedPortToNumber
and translateServicePortToTargetPort); the same is done here from the Service's EndpointSlices, which name the pod
and the resolved port of each ready endpoint.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any, Protocol

from multirev.kube import kinds
from multirev.relay import accept_each, relay

SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # on each EndpointSlice of a Service (discovery/v1)


class Lister(Protocol):
    def get(self, kind: kinds.Kind, name: str, namespace: str | None = None) -> dict | None: ...

    def list(self, kind: kinds.Kind, namespace: str | None = None, *, labels: dict[str, str] | None = None
             ) -> list[dict]: ...


def ready_pod_port(cluster: Lister, namespace: str, service: str, port_name: str) -> tuple[str, int] | None:
    """(pod name, container port) of a ready endpoint behind the Service's port `port_name`, or None."""
    svc = cluster.get(kinds.SERVICE, service, namespace)
    if svc is None or not any(p.get("name") == port_name for p in (svc.get("spec") or {}).get("ports") or []):
        return None
    for endpoint_slice in cluster.list(kinds.ENDPOINTSLICE, namespace, labels={SERVICE_NAME_LABEL: service}):
        port = next((p.get("port") for p in endpoint_slice.get("ports") or [] if p.get("name") == port_name), None)
        for endpoint in endpoint_slice.get("endpoints") or []:
            target = endpoint.get("targetRef") or {}
            if port and (endpoint.get("conditions") or {}).get("ready") and target.get("kind") == "Pod":
                return target["name"], int(port)
    return None


class ServicePortForward:
    """127.0.0.1:<port> -> the Service's port on a ready pod, one pods/portforward stream per connection.
    `open_stream(pod, port)` returns a socket-like end of a stream to that pod's port."""

    def __init__(self, resolve: Callable[[], tuple[str, int] | None],
                 open_stream: Callable[[str, int], Any]) -> None:
        self.resolve = resolve
        self.open_stream = open_stream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._accept, name="port-forward", daemon=True).start()

    def _accept(self) -> None:
        accept_each(self.listener, self._stop, self._pump, "port-forward-conn")

    def _pump(self, client: socket.socket) -> None:
        try:
            target = self.resolve()
            if target is None:  # no ready pod: refused, as a Service without endpoints is
                raise ConnectionRefusedError("no ready endpoint")
            upstream = self.open_stream(*target)
        except Exception:  # the client sees a closed connection; the check names the failed request
            client.close()
            return
        relay(client, upstream, self._stop)

    def stop(self) -> None:
        self._stop.set()
        self.listener.close()
