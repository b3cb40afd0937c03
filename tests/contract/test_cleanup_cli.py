"""`./run cleanup` through the real client against the API-server stand-in: it reads the record, removes a dead
run's objects in order and gives back what it borrowed; an alive or unknown run is one line, exit 2."""

from __future__ import annotations

import os
import socket
import time

import pytest
from apiserver import ServerState, put

from multirev.cleanup import main
from multirev.istio import facts
from multirev.kube import kinds
from multirev.plan import RUN_ID_LABEL
from multirev.runrecord import PlaneRecord, RunRecord, record_namespace

DISCOVERY = "conformance.multirev.io/cp-1-29-6"


def _record(run_id: str, started: float) -> RunRecord:
    plane = PlaneRecord("stable", "1.29.6", "1-29-6", "istio-stable", "stable", ("app-stable",), {DISCOVERY: "enabled"})
    return RunRecord(run_id, started, socket.gethostname(), os.getpid(), "current", "separate", [plane],
                     ["app-stable", "egress-external"], {"app-stable": {"team": "shop"}}, [], {}, [])


def _killed_run(state: ServerState) -> None:
    """What a run killed after installing its stable revision leaves: its record (silent for an hour), its own
    control-plane namespace with istiod, the revision's injector, and the labels it set on a borrowed namespace."""
    put(state, _record("r0", time.time() - 3600).as_namespace())
    put(state, {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "istio-stable", "labels": {RUN_ID_LABEL: "r0"}}})
    put(state, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
        "name": "istiod-1-29-6", "namespace": "istio-stable", "labels": {facts.REV_LABEL: "1-29-6", "app": "istiod"}}})
    put(state, {"apiVersion": kinds.MUTATING_WEBHOOK.api_version, "kind": "MutatingWebhookConfiguration",
                "metadata": {"name": "istio-sidecar-injector-1-29-6-istio-stable",
                             "labels": {facts.REV_LABEL: "1-29-6"}}})
    put(state, {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "app-stable", "labels": {"team": "shop", facts.REV_LABEL: "stable", DISCOVERY: "enabled"}}})
    put(state, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "theirs"}})


def test_a_dead_run_is_listed_then_removed(apiserver: tuple[str, ServerState],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    _, state = apiserver
    _killed_run(state)
    kubeconfig = str(state.kubeconfig)
    before = {(o["kind"], o["metadata"]["name"]): o["metadata"].get("labels") for o in state.store.all()}

    assert main(["--kubeconfig", kubeconfig, "--run-id", "r0", "--dry-run"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert {(o["kind"], o["metadata"]["name"]): o["metadata"].get("labels") for o in state.store.all()} == before

    assert main(["--kubeconfig", kubeconfig, "--run-id", "r0"]) == 0
    done = capsys.readouterr().out.splitlines()
    assert done == ["deleted MutatingWebhookConfiguration istio-sidecar-injector-1-29-6-istio-stable",
                    "deleted Deployment istio-stable/istiod-1-29-6",
                    "gave back labels of Namespace app-stable",
                    "deleted Namespace istio-stable",
                    f"deleted Namespace {record_namespace('r0')}"]
    assert [line.replace("would delete", "deleted").replace("would give back", "gave back") for line in listed] == done
    assert {ns["metadata"]["name"]: ns["metadata"].get("labels") for ns in state.store.list(kinds.NAMESPACE)} == {
        "app-stable": {"team": "shop"}, "theirs": None}
    assert state.store.all() == state.store.list(kinds.NAMESPACE)


def test_an_alive_or_unknown_run_is_one_line_and_exit_2(apiserver: tuple[str, ServerState],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    _, state = apiserver
    put(state, _record("r1", time.time()).as_namespace())
    assert main(["--kubeconfig", str(state.kubeconfig), "--run-id", "r1"]) == 2
    alive = capsys.readouterr().err.splitlines()
    assert len(alive) == 1 and alive[0].startswith("ERROR: run r1 (started ") and "is alive" in alive[0]
    assert main(["--kubeconfig", str(state.kubeconfig), "--run-id", "nope"]) == 2
    unknown = capsys.readouterr().err.splitlines()
    assert unknown == [f"ERROR: no run record for run id nope on this cluster (no Namespace labelled "
                       f"conformance.multirev.io/record=true with {RUN_ID_LABEL}=nope); nothing to clean up"]
    assert main(["--kubeconfig", str(state.kubeconfig), "--all-dead"]) == 0
    assert len(state.store.list(kinds.NAMESPACE)) == 1, "the alive run's record stays"
