"""ExistingBackend against the API-server stand-in: how it reaches each gateway, and how it ends."""

from __future__ import annotations

from pathlib import Path

import pytest
from apiserver import ServerState, put

from multirev.backends.base import Endpoint
from multirev.backends.existing import ExistingBackend, ExistingOptions
from multirev.clock import WallClock
from multirev.commands import RecordingRunner, SubprocessRunner, Transcript
from multirev.errors import EnvironmentProblem, UsageError
from multirev.kube import kinds
from multirev.plan import RUN_ID_LABEL
from multirev.run import parse_gateway_endpoints
from multirev.runrecord import record_namespace

SERVICES = {"stable": ("istio-stable", "istio-ingressgateway"), "canary": ("istio-canary", "istio-ingressgateway")}


def _backend(tmp_path: Path, state: ServerState, *, host: str | None = None,
             endpoints: dict[str, Endpoint] | None = None) -> ExistingBackend:
    runner = RecordingRunner(SubprocessRunner(), Transcript(tmp_path / "t.jsonl"), "existing")
    return ExistingBackend(runner, WallClock(), ExistingOptions(
        kubeconfig=str(state.kubeconfig), context=None, run_id="r1", allow_destructive=False, cache=tmp_path,
        istio_mirror=str(tmp_path), gateway_host=host, gateway_endpoints=endpoints or {}, gateway_services=SERVICES))


def _gateway(role: str, node_port: int, load_balancer: dict | None = None) -> dict:
    namespace, name = SERVICES[role]
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"type": "LoadBalancer" if load_balancer else "NodePort",
                     "ports": [{"name": "status-port", "port": 15021, "nodePort": 30021},
                               {"name": "http2", "port": 80, "targetPort": 8080, "nodePort": node_port}]},
            "status": {"loadBalancer": load_balancer or {}}}


def _node() -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker-1"},
            "status": {"addresses": [{"type": "Hostname", "address": "worker-1"},
                                     {"type": "InternalIP", "address": "192.0.2.10"}]}}


def test_each_gateway_is_reached_on_its_own_node_port(tmp_path: Path, apiserver: tuple[str, ServerState]) -> None:
    """Both gateways are NodePort Services: each is reached on its own NodePort, at a node's InternalIP or at
    --gateway-host (before, both used host ports base and base+2, which reach no NodePort)."""
    _, state = apiserver
    put(state, _node())
    put(state, _gateway("stable", 31080))
    put(state, _gateway("canary", 32080))
    backend = _backend(tmp_path, state)
    assert backend.gateway_endpoint("stable") == Endpoint("192.0.2.10", 31080)
    assert backend.gateway_endpoint("canary") == Endpoint("192.0.2.10", 32080)
    assert _backend(tmp_path, state, host="gw.example").gateway_endpoint("canary") == Endpoint("gw.example", 32080)


def test_a_load_balancer_address_wins_and_explicit_endpoints_win_over_all(
        tmp_path: Path, apiserver: tuple[str, ServerState]) -> None:
    _, state = apiserver
    put(state, _gateway("stable", 31080, {"ingress": [{"ip": "198.51.100.7"}]}))
    put(state, _gateway("canary", 32080, {"ingress": [{"hostname": "canary.lb.example"}]}))
    backend = _backend(tmp_path, state)
    assert backend.gateway_endpoint("stable") == Endpoint("198.51.100.7", 80)
    assert backend.gateway_endpoint("canary") == Endpoint("canary.lb.example", 80)
    explicit = parse_gateway_endpoints(["canary=127.0.0.1:8081"])
    assert _backend(tmp_path, state, endpoints=explicit).gateway_endpoint("canary") == Endpoint("127.0.0.1", 8081)


def test_an_unknown_gateway_address_says_how_to_give_it(tmp_path: Path, apiserver: tuple[str, ServerState]) -> None:
    _, state = apiserver
    with pytest.raises(EnvironmentProblem, match="istio-canary/istio-ingressgateway does not exist.*"
                                                 "--gateway-endpoint canary=HOST:PORT"):
        _backend(tmp_path, state).gateway_endpoint("canary")


@pytest.mark.parametrize("value", ["stable", "edge=h:1", "canary=h", "canary=:80", "canary=h:http"])
def test_a_malformed_gateway_endpoint_is_one_line(value: str) -> None:
    with pytest.raises(UsageError, match="expected stable=HOST:PORT or canary=HOST:PORT"):
        parse_gateway_endpoints([value])


def test_stop_waits_until_the_run_namespaces_are_gone(tmp_path: Path, apiserver: tuple[str, ServerState]) -> None:
    """A deleted namespace stays Terminating while its contents go; stop() returns only once it is gone, so the
    next run does not collide with it."""
    _, state = apiserver
    put(state, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app-stable",
                                                                       "labels": {RUN_ID_LABEL: "r1"}}})
    put(state, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "theirs"}})
    state.terminating_for["app-stable"] = 2
    backend = _backend(tmp_path, state)
    backend.start()
    backend.stop()
    assert {ns["metadata"]["name"] for ns in state.store.list(kinds.NAMESPACE)} == {"theirs"}


def test_stop_deletes_the_run_record_last(tmp_path: Path, apiserver: tuple[str, ServerState]) -> None:
    """The record (multirev/runrecord.py) goes only once the run's other namespaces are gone: a teardown killed
    before then still leaves it for `./run cleanup` and the next run to find."""
    _, state = apiserver
    record = record_namespace("r1")
    put(state, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": record, "labels": {RUN_ID_LABEL: "r1"}}})
    put(state, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app-stable",
                                                                       "labels": {RUN_ID_LABEL: "r1"}}})
    state.terminating_for["app-stable"] = 0  # Terminating until the next GET
    backend = _backend(tmp_path, state)
    backend.start()
    backend.stop()
    assert state.store.list(kinds.NAMESPACE) == []
    calls = [(r.method, r.path) for r in state.requests if r.path.startswith("/api/v1/namespaces/")]
    record_deleted = calls.index(("DELETE", f"/api/v1/namespaces/{record}"))
    assert calls[record_deleted - 1] == ("GET", "/api/v1/namespaces/app-stable"), "after app-stable was seen gone"
    assert ("DELETE", "/api/v1/namespaces/app-stable") in calls[:record_deleted]
