"""The port-forward used to reach a Service from the host on kind and existing clusters (multirev/kube/portforward.py):
which pod and port it picks, and that it relays bytes both ways and refuses when no endpoint is ready."""

from __future__ import annotations

import socket
import threading

from multirev.kube import kinds
from multirev.kube.portforward import ServicePortForward, ready_pod_port


class FakeCluster:
    def __init__(self, ready: bool) -> None:
        self.service = {"metadata": {"name": "gw-istio", "namespace": "app"},
                        "spec": {"ports": [{"name": "http", "port": 80}]}}
        self.slice = {"metadata": {"labels": {"kubernetes.io/service-name": "gw-istio"}},
                      "ports": [{"name": "status-port", "port": 15021}, {"name": "http", "port": 8080}],
                      "endpoints": [{"addresses": ["10.0.0.9"], "conditions": {"ready": ready},
                                     "targetRef": {"kind": "Pod", "name": "gw-istio-abc", "namespace": "app"}}]}

    def get(self, kind, name, namespace=None):
        return self.service if kind == kinds.SERVICE and name == "gw-istio" else None

    def list(self, kind, namespace=None, *, labels=None):
        return [self.slice] if kind == kinds.ENDPOINTSLICE and labels == {"kubernetes.io/service-name": "gw-istio"} \
            else []


def test_a_ready_endpoint_names_its_pod_and_the_resolved_port() -> None:
    assert ready_pod_port(FakeCluster(ready=True), "app", "gw-istio", "http") == ("gw-istio-abc", 8080)
    assert ready_pod_port(FakeCluster(ready=False), "app", "gw-istio", "http") is None
    assert ready_pod_port(FakeCluster(ready=True), "app", "gw-istio", "https") is None
    assert ready_pod_port(FakeCluster(ready=True), "app", "other", "http") is None


def _echo_server() -> tuple[socket.socket, int]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data.upper())

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def test_bytes_go_both_ways_to_the_resolved_pod() -> None:
    server, port = _echo_server()
    opened: list[tuple[str, int]] = []

    def open_stream(pod: str, target: int) -> socket.socket:
        opened.append((pod, target))
        return socket.create_connection(("127.0.0.1", port))

    forward = ServicePortForward(lambda: ("gw-istio-abc", 8080), open_stream)
    forward.start()
    try:
        with socket.create_connection(("127.0.0.1", forward.port), timeout=5) as client:
            client.sendall(b"get /productpage")
            client.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := client.recv(1024):
                answer += chunk
        assert answer == b"GET /PRODUCTPAGE"
        assert opened == [("gw-istio-abc", 8080)]
    finally:
        forward.stop()
        server.close()


def test_no_ready_pod_closes_the_connection() -> None:
    forward = ServicePortForward(lambda: None, lambda pod, port: (_ for _ in ()).throw(AssertionError("opened")))
    forward.start()
    try:
        with socket.create_connection(("127.0.0.1", forward.port), timeout=5) as client:
            assert client.recv(1024) == b""
    finally:
        forward.stop()
