"""The local backend starts a real control plane in its own network namespace and leaves nothing behind."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from multirev.backends.local.controlplane import NODE_POD_CIDR
from multirev.backends.local.pins import KUBERNETES
from multirev.clock import WallClock
from multirev.kube import kinds
from multirev.waits import Observation, wait_for
from tests.credential_scan import credential_leaks
from tests.local.conftest import PROFILE, local_versions, nothing_left, require, sigint_reaches_children

ROOT = Path(__file__).resolve().parents[2]


def _pod(namespace: str) -> dict:
    # A command this machine has: the data plane runs it in the pod's own network namespace.
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe", "namespace": namespace},
            "spec": {"containers": [{"name": "c", "image": "example.invalid/none:1",
                                     "command": ["/bin/sleep", "infinity"]}]}}


def test_real_control_plane_runs_pods_on_a_fake_node_and_leaves_nothing(make_backend) -> None:
    """/version reports the pinned release; the scheduler binds a pod to the KWOK node, which gives it an IP
    from the node's podCIDR; with a data plane its container runs in a network namespace of its own holding that
    IP, and the pod turns Ready; stop() leaves no process, namespace (the pod's included), /etc/netns entry,
    veth or temporary folder."""
    backend = make_backend([], run_id="lifecycle")
    cluster = backend.start()
    assert cluster.kubernetes_version() == KUBERNETES.version
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "probe"}})

    def created() -> Observation[None]:  # the ServiceAccount admission needs `default`, made by the controller
        return Observation(cluster.get(kinds.SERVICEACCOUNT, "default", "probe") is not None, None, "no SA yet")

    wait_for("ServiceAccount probe/default", created, clock=WallClock(), timeout=60, interval=1)
    cluster.apply(_pod("probe"))

    def ready() -> Observation[dict]:
        pod = cluster.get(kinds.POD, "probe", "probe") or {}
        status = pod.get("status") or {}
        conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
        return Observation(conditions.get("Ready") == "True" and bool(status.get("podIP")), pod,
                           f"phase {status.get('phase')}, IP {status.get('podIP')}, Ready={conditions.get('Ready')}")

    pod = wait_for("pod probe/probe Ready with an IP", ready, clock=WallClock(), timeout=90, interval=1)
    assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(NODE_POD_CIDR)
    assert pod["spec"]["nodeName"] == "kwok-node-0"
    assert backend.info().kubernetes_version == KUBERNETES.version
    if backend.data_plane is not None:
        running = backend.data_plane.find("probe", "probe")
        assert running is not None and running.ip == pod["status"]["podIP"]
        shown = subprocess.run([*running.netns.prefix(), "ip", "-4", "-o", "addr", "show", "eth0"],
                               capture_output=True, text=True).stdout
        assert f"{running.ip}/32" in shown, shown
        assert "sleep infinity" in "\n".join(nothing_left("lifecycle").get("processes", []))
    backend.stop()
    assert nothing_left("lifecycle") == {}


def test_a_failure_during_start_leaves_nothing(make_backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """A control plane that cannot come up (here: KWOK refuses a bad flag) fails start() with the process's own
    words, and still leaves nothing behind."""
    from multirev.backends.local import controlplane

    backend = make_backend([], run_id="failstart")
    monkeypatch.setattr(controlplane, "scheduler_argv", lambda binary, kubeconfig: [str(binary), "--no-such-flag"])
    with pytest.raises(Exception, match="kube-scheduler exited"):
        backend.start()
    assert nothing_left("failstart") == {}


def test_ctrl_c_during_a_conformance_run_leaves_nothing(tmp_path: Path) -> None:
    """SIGINT to `pytest suites --backend local` while istioctl installs: pytest tears down the session, the
    backend stops every process and removes its namespace and temporary files."""
    require(local_versions())
    sigint_reaches_children()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "suites", "--backend", "local", "--profile", PROFILE, "-p", "no:xdist",
         "-s", "-k", "control_plane", "--reports-dir", str(tmp_path / "reports"), "--run-id", "ctrlc", "-q"],
        cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen = []
    deadline = time.monotonic() + 300
    assert proc.stderr is not None
    for line in proc.stderr:
        seen.append(line.rstrip())
        if "istioctl install revision" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert any("istioctl install revision" in line for line in seen), "\n".join(seen[-20:])
    assert proc.returncode != 0, "an interrupted run must not report success"
    assert nothing_left("ctrlc") == {}
    # The cluster's keys and kubeconfigs lived in the run's temporary folder, never in reports/.
    assert list((tmp_path / "reports").rglob("*")), "the run wrote reports"
    assert credential_leaks(tmp_path / "reports") == []
