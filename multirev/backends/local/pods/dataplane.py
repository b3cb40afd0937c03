"""Runs the pods KWOK schedules: a network namespace each, real Istio proxies, the workloads' programs.

A watcher thread plays the kubelet for every pod bound to the fake node, except istiod's (istiod.py runs
those): it wires the pod's namespace (network.py), writes its volumes (volumes.py), runs its init
containers to completion (istio-init: the revision's `pilot-agent istio-iptables`), then its sidecar and
containers (containers.py), and marks the pod Ready when they are (kubelet.py). A deleted pod keeps
running for its drain time, as a terminating pod does on a node, then everything of it is stopped and its
namespace removed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from multirev.backends.local.netns import enter_netns, http_status_inside
from multirev.backends.local.pods.containers import Program, program
from multirev.backends.local.pods.kubelet import readiness_patch
from multirev.backends.local.pods.network import PodNetns, PodNetwork
from multirev.backends.local.pods.volumes import VolumeMaker
from multirev.backends.local.processes import Managed, Supervisor
from multirev.commands import Completed
from multirev.kube.objects import Obj

POLL = 0.5
INIT_TIMEOUT = 60.0
EXEC_TIMEOUT = 60.0
PROXY_STATUS_PORT = 15021  # the injected container's readinessProbe: /healthz/ready (injection template)
# kubelet's probe defaults (pkg/apis/core/v1/defaults.go@v1.35.4: failureThreshold 3) and the injected probe's
# timeout (injection template: timeoutSeconds 3): a ready pod turns unready after three failed probes in a row.
PROBE_FAILURES = 3
PROBE_TIMEOUT = 3.0
PROBE_PERIOD = 2.0
# pilot-agent drains for terminationDrainDuration (5 s by default, mesh/v1alpha1/proxy.proto) after SIGTERM;
# a terminating pod keeps serving that long while its endpoints are withdrawn.
DRAIN_SECONDS = 5.0


@dataclass
class RunningPod:
    namespace: str
    name: str
    uid: str
    ip: str
    netns: PodNetns
    root: Path
    programs: dict[str, Program] = field(default_factory=dict)
    processes: dict[str, Managed] = field(default_factory=dict)
    ports: list[int] = field(default_factory=list)
    problem: str = ""
    ready: bool = False
    reported: str | None = None  # the last readiness written to the API (problem text or "ready")
    stop_at: float | None = None
    failures: int = 0  # probes failed in a row since it was last ready
    next_probe: float = 0.0

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name

    @property
    def has_proxy(self) -> bool:
        return any(p.proxy for p in self.programs.values())


class PodApi:
    """What the data plane asks of the API server."""

    def __init__(self, list_pods: Callable[[], list[Obj]], get: Callable[[str, str, str], Obj | None],
                 request_token: Callable[[str, str, str, list[str], int], str],
                 patch_status: Callable[[str, str, Obj], None]) -> None:
        self.list_pods = list_pods
        self.get = get
        self.request_token = request_token
        self.patch_status = patch_status


class DataPlane:
    def __init__(self, api: PodApi, supervisor: Supervisor, run_netns: str, work_dir: Path,
                 pilot_agents: dict[str, Path], envoys: dict[str, Path], bootstraps: dict[str, Path], *, node: str,
                 skip: Callable[[Obj], bool] = lambda pod: False) -> None:
        self.api = api
        self.supervisor = supervisor
        self.run_netns = run_netns
        self.work_dir = work_dir
        self.pilot_agents = pilot_agents
        self.envoys = envoys  # Istio version -> the Envoy its proxies run
        self.bootstraps = bootstraps  # Istio version -> its envoy_bootstrap.json
        self.node = node
        self.skip = skip  # pods someone else runs (istiod)
        self.network = PodNetwork(run_netns)
        self.volumes = VolumeMaker(api.get, api.request_token)
        self.pods: dict[tuple[str, str], RunningPod] = {}
        self.draining: list[RunningPod] = []
        self.problems: list[str] = []
        self.proxies_run: set[str] = set()  # every proxy started: "<namespace>/<pod>: Istio <version>"
        # What the kubelet's events would say: each pod started, ready, unready (why), draining, stopped.
        self.events = supervisor.log_dir / "data-plane.log"
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.work_dir.chmod(0o755)  # the proxy's user walks into its container folder
        self.network.setup_bridge()
        # A long-lived thread: children die with the thread that forked them (PR_SET_PDEATHSIG).
        self._thread = threading.Thread(target=self._loop, name="local-pods", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)
        with self._lock:
            for pod in [*self.pods.values(), *self.draining]:
                self._stop_pod(pod)
            self.pods.clear()
            self.draining.clear()
        self.network.remove_all()

    def _loop(self) -> None:
        while not self._stop.wait(POLL):
            try:
                self.sync()
            except Exception as exc:  # the API may be briefly away; keep going and say so in diagnostics
                self.problems = (self.problems + [f"pod watcher: {type(exc).__name__}: {exc}"])[-20:]

    # -- one round ------------------------------------------------------------------------------
    def sync(self) -> None:
        every = self.api.list_pods()
        listed = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in every
                  if (p.get("spec") or {}).get("nodeName") == self.node and not self.skip(p)}
        with self._lock:
            # KWOK hands a freed IP out again at once, also to pods run elsewhere (istiod): a draining pod whose
            # IP another live pod now has stops at once, so that the new one can bind it.
            taken = {(p.get("status") or {}).get("podIP") for p in every if not p["metadata"].get("deletionTimestamp")}
            for stale in [p for p in self.draining if p.ip in taken]:
                self._stop_pod(stale)
            for key, running in list(self.pods.items()):
                pod = listed.get(key)
                if pod is None or pod["metadata"].get("deletionTimestamp") or pod["metadata"]["uid"] != running.uid:
                    self._begin_drain(running, pod)
            now = time.monotonic()
            for pod in [p for p in self.draining if p.stop_at is not None and p.stop_at <= now]:
                self._stop_pod(pod)
            for key, pod in listed.items():
                ip = (pod.get("status") or {}).get("podIP")
                if key in self.pods or not ip or pod["metadata"].get("deletionTimestamp"):
                    continue
                self.pods[key] = self._start_pod(pod, ip)
            for running in self.pods.values():
                self._update_readiness(running, listed.get(running.key))

    def _event(self, running: RunningPod, what: str) -> None:
        stamp = time.strftime("%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}"
        with self.events.open("a") as log:
            log.write(f"{stamp} {running.namespace}/{running.name} {running.ip}: {what}\n")

    def _begin_drain(self, running: RunningPod, pod: Obj | None) -> None:
        del self.pods[running.key]
        self._event(running, "deleted: draining")
        grace = DRAIN_SECONDS
        seconds = ((pod or {}).get("spec") or {}).get("terminationGracePeriodSeconds")
        if seconds is not None:
            grace = min(grace, float(seconds))
        running.stop_at = time.monotonic() + grace
        self.draining.append(running)

    def _stop_pod(self, pod: RunningPod) -> None:
        if pod in self.draining:
            self.draining.remove(pod)
        # Containers before the sidecar, as the kubelet stops a pod with native sidecars.
        for _, managed in sorted(pod.processes.items(), key=lambda item: pod.programs[item[0]].proxy):
            self.supervisor.stop(managed.name)
        pod.processes.clear()
        self.network.remove(pod.ip)
        self._event(pod, "stopped, namespace removed")

    # -- starting a pod -------------------------------------------------------------------------
    def _start_pod(self, pod: Obj, ip: str) -> RunningPod:
        meta = pod["metadata"]
        root = self.work_dir / f"{meta['namespace']}.{meta['name']}"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        root.chmod(0o755)
        running = RunningPod(meta["namespace"], meta["name"], meta["uid"], ip,
                             self.network.add(ip, meta["namespace"], meta["name"]), root)
        try:
            running.netns.apply_sysctls(pod)
            self._run_containers(pod, running)
        except Exception as exc:
            running.problem = f"{type(exc).__name__}: {exc}"
        self._event(running, f"started {', '.join(running.processes)}" + (f"; {running.problem}"
                                                                           if running.problem else ""))
        return running

    def _run_containers(self, pod: Obj, running: RunningPod) -> None:
        spec = pod["spec"]
        ordered = [(c, True) for c in spec.get("initContainers") or []] + [(c, False) for c in spec["containers"]]
        for container, init in ordered:
            folder = running.root / container["name"]
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o755)
            made = program(pod, container, init=init, pilot_agents=self.pilot_agents,
                           envoys=self.envoys, root=folder)
            if isinstance(made, str):
                running.problem = made
                return
            self.volumes.mount(pod, container, folder)
            if made.proxy:
                # The proxyv2 image carries its build's bootstrap template here (pilot/docker/Dockerfile.proxyv2
                # copies tools/packaging/common/envoy_bootstrap.json; pkg/envoy reads it relative to the cwd).
                template = folder / "var/lib/istio/envoy/envoy_bootstrap_tmpl.json"
                template.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.bootstraps[made.istio_version], template)
                template.chmod(0o644)
            running.programs[made.container] = made
            if made.proxy:
                self.proxies_run.add(f"{running.namespace}/{running.name}: pilot-agent {made.istio_version}")
            running.ports += [int(p["containerPort"]) for p in container.get("ports") or []
                              if p.get("protocol", "TCP") == "TCP" and not made.proxy]
            managed = self._launch(running, made, folder)
            if made.init:
                problem = _await_exit(managed, INIT_TIMEOUT)
                self.supervisor.stop(managed.name)
                if problem:
                    running.problem = f"init container {made.container} {problem}"
                    return
            else:
                running.processes[made.container] = managed

    def _launch(self, running: RunningPod, made: Program, folder: Path) -> Managed:
        user = [] if not made.uid else ["setpriv", f"--reuid={made.uid}", f"--regid={made.gid or made.uid}",
                                        "--clear-groups"]
        if made.uid:
            for path in folder.rglob("*"):
                if path.is_dir():  # emptyDirs the proxy writes to (its bootstrap, sockets, certificates)
                    os.chown(path, made.uid, made.gid or made.uid)
        name = f"pod.{running.namespace}.{running.name}.{made.container}"
        return self.supervisor.start(name, [*running.netns.prefix(), *user, *made.argv], env=made.env, cwd=folder,
                                     log_owner=made.uid or None)

    # -- readiness --------------------------------------------------------------------------------
    def _update_readiness(self, running: RunningPod, pod: Obj | None) -> None:
        now = time.monotonic()
        if running.ready and now < running.next_probe:
            return
        running.next_probe = now + PROBE_PERIOD
        problem = running.problem or self._not_ready_because(running)
        if problem and running.ready and not running.problem:
            running.failures += 1
            self._event(running, f"probe failed ({running.failures}/{PROBE_FAILURES}): {problem}")
            if running.failures < PROBE_FAILURES:
                return
        running.failures = 0
        running.ready = not problem
        state = problem or "ready"
        if pod is None or state == running.reported or (running.reported not in (None, "ready") and problem):
            return  # an unready pod's reason is written once, not each time its text changes
        try:
            self.api.patch_status(running.namespace, running.name, readiness_patch(pod, not problem, problem))
            running.reported = state
            self._event(running, state if not problem else f"not ready: {problem}")
        except Exception as exc:
            self.problems = (self.problems + [f"status of {running.namespace}/{running.name}: {exc}"])[-20:]

    def _not_ready_because(self, running: RunningPod) -> str:
        for name, managed in running.processes.items():
            if not managed.alive():
                return f"container {name} exited ({managed.proc.returncode}): {managed.tail(3)}"
        if running.has_proxy:
            status = http_status_inside(self.run_netns, running.ip, PROXY_STATUS_PORT, "/healthz/ready", PROBE_TIMEOUT)
            if status != 200:
                return f"proxy /healthz/ready: {status}"
        closed = [port for port in running.ports if not _port_open(running.netns.name, port)]
        return f"nothing listens on port {', '.join(map(str, closed))} yet" if closed else ""

    # -- what the backend offers the suite ------------------------------------------------------
    def find(self, namespace: str, name: str) -> RunningPod | None:
        with self._lock:
            return self.pods.get((namespace, name)) or next(
                (p for p in self.draining if p.key == (namespace, name)), None)

    def exec(self, namespace: str, name: str, container: str, command: list[str]) -> Completed:
        running = self.find(namespace, name)
        made = running.programs.get(container) if running else None
        if running is None or made is None:
            return Completed(command, 255, "", f"exec into {namespace}/{name}: no running container {container}")
        user = [] if not made.uid else ["setpriv", f"--reuid={made.uid}", f"--regid={made.gid or made.uid}",
                                        "--clear-groups"]
        try:
            proc = subprocess.run([*running.netns.prefix(), *user, *command], capture_output=True, text=True,
                                  env=made.env, cwd=running.root / container, timeout=EXEC_TIMEOUT)
        except subprocess.TimeoutExpired:
            return Completed(command, 255, "", f"exec into {namespace}/{name}: no exit within {EXEC_TIMEOUT:.0f} s")
        except OSError as exc:
            return Completed(command, 255, "", f"exec into {namespace}/{name}: {exc}")
        return Completed(command, proc.returncode, proc.stdout, proc.stderr)

    def log_of(self, namespace: str, name: str, container: str) -> Path | None:
        log = self.supervisor.log_dir / f"pod.{namespace}.{name}.{container}.log"
        return log if log.is_file() else None

    def admin_get(self, namespace: str, name: str, path: str) -> Completed:
        """GET on the Envoy admin (127.0.0.1:15000) inside the pod, as the proxy's own tools do."""
        running = self.find(namespace, name)
        if running is None or not running.has_proxy:
            return Completed([path], 255, "", f"no running proxy in {namespace}/{name}")
        try:
            proc = subprocess.run([*running.netns.prefix(), "curl", "-sS", "-m", "10", "-f",
                                   f"http://127.0.0.1:15000{path}"], capture_output=True, text=True, timeout=20)
        except subprocess.TimeoutExpired:
            return Completed([path], 255, "", "no answer within 20 s")
        return Completed([path], proc.returncode, proc.stdout, proc.stderr.strip())

    def rejections(self) -> dict[str, dict[str, int]]:
        """Per proxy (namespace/pod), each xDS type Envoy rejected config of and how often: Envoy's
        `<type>.update_rejected` counters (cluster_manager.cds, listener_manager.lds, and the per-resource
        rds/eds/sds counters) read from its admin /stats inside the pod."""
        with self._lock:
            proxies = [p for p in self.pods.values() if p.has_proxy and p.ready]
        found: dict[str, dict[str, int]] = {}
        for pod in proxies:
            proc = subprocess.run([*pod.netns.prefix(), "curl", "-sS", "-m", "5",
                                   "http://127.0.0.1:15000/stats?filter=update_rejected"],
                                  capture_output=True, text=True, timeout=15)
            rejected = {}
            for line in proc.stdout.splitlines():
                name, _, value = line.partition(": ")
                if value.strip().isdigit() and int(value) > 0:
                    rejected[name.strip()] = int(value)
            if proc.returncode != 0:
                rejected["admin unreachable"] = 1
            if rejected:
                found[f"{pod.namespace}/{pod.name}"] = rejected
        return found

    def describe(self) -> list[str]:
        with self._lock:
            return [f"{p.namespace}/{p.name} {p.ip}: {'ready' if p.ready else p.problem or 'starting'}"
                    for p in self.pods.values()]


def _await_exit(managed: Managed, timeout: float) -> str:
    try:
        code = managed.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return f"did not finish within {timeout:.0f} s: {managed.tail(3)}"
    return "" if code == 0 else f"exited {code}: {managed.tail(5)}"


def _port_open(netns: str, port: int) -> bool:
    """Whether something listens on the port inside the pod's namespace (a short-lived thread enters it)."""
    result = [False]

    def probe() -> None:
        try:
            enter_netns(netns)
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                result[0] = True
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(2)
    return result[0]
