"""Real istiod behind KWOK's fake istiod pods.

istioctl installs each revision as usual; KWOK gives its `istiod-<rev>` pod an IP and marks it ready.
This watcher then starts that version's real pilot-discovery as a process bound to the pod IP, with
the environment and arguments of the pod's own container (what `istioctl install` rendered for that
revision), so the API server's webhook calls to the pod IP reach the real istiod. Which binary runs
follows the pod's image tag, which istioctl derives from its own version: a revision installed by
the wrong istioctl gets the wrong istiod, as on a real cluster. When the pod goes, the process stops.
"""

from __future__ import annotations

import base64
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from multirev.backends.local.netns import http_status_inside
from multirev.backends.local.processes import Managed, Supervisor
from multirev.istio import facts
from multirev.kube import kinds
from multirev.kube.objects import Obj

ISTIOD_SELECTOR = {"app": "istiod"}  # istio-discovery chart: deployment.yaml pod labels (@1.30.3)
POLL = 1.0
# pilot/cmd/pilot-discovery/app/cmd.go@1.30.3 and pkg/ctrlz/options.go@1.30.3: every listener istiod
# opens, bound to the pod IP so two revisions share the namespace without clashing.
ADDRESS_FLAGS = {"--httpAddr": 8080, "--httpsAddr": 15017, "--grpcAddr": 15010, "--secureGRPCAddr": 15012,
                 "--monitoringAddr": 15014}
# Out of a pod these would make istiod dial out or read the host; none is in the chart's env
# (pilot/pkg/security/authn/policy_applier.go and pilot/pkg/model/network.go@1.30.3).
SAFE_ENV = {"RESOLVE_HOSTNAME_GATEWAYS": "false", "PILOT_JWT_ENABLE_REMOTE_JWKS": "envoy"}
_BINARY_FLAG = re.compile(r"^--(httpAddr|httpsAddr|grpcAddr|secureGRPCAddr|monitoringAddr|ctrlz_address|"
                          r"ctrlz_port|kubeconfig)(=|$)")


@dataclass
class IstiodProcess:
    pod: str
    namespace: str
    ip: str
    version: str
    managed: Managed


def image_tag(image: str) -> str:
    """The Istio version an image asks for; a `-distroless` or `-debug` variant runs the same build here."""
    return facts.image_version(image)


_BRACKETED = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


def field_value(pod: Obj, path: str) -> str:
    """A downward-API fieldPath: a dotted path (metadata.name, spec.serviceAccountName, status.podIP) or
    metadata.labels['key'] / metadata.annotations['key']."""
    if bracketed := _BRACKETED.match(path):
        value = ((pod.get("metadata") or {}).get(bracketed.group(1)) or {}).get(bracketed.group(2))
    else:
        value = pod
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def container_env(pod: Obj, container: Obj) -> dict[str, str]:
    """The container's env as the kubelet would resolve it (literal values and fieldRefs)."""
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif (ref := (item.get("valueFrom") or {}).get("fieldRef")) is not None:
            env[item["name"]] = field_value(pod, ref["fieldPath"])
        # resourceFieldRef (GOMAXPROCS from limits.cpu) and secret/configMap refs are left out
    return env


def istiod_command(binary: Path, pod: Obj, kubeconfig: Path) -> tuple[list[str], dict[str, str]]:
    spec = pod["spec"]
    container = next((c for c in spec["containers"] if c["name"] == "discovery"), spec["containers"][0])
    ip = pod["status"]["podIP"]
    args = [a for a in container.get("args") or [] if not _BINARY_FLAG.match(a)]
    if args and args[0] == "discovery":
        args = args[1:]
    args += [f"{flag}={ip}:{port}" for flag, port in ADDRESS_FLAGS.items()]
    args += [f"--ctrlz_address={ip}", f"--kubeconfig={kubeconfig}"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **container_env(pod, container), **SAFE_ENV}
    env.pop("KUBECONFIG", None)  # the chart points it at a remote-secret path; --kubeconfig wins anyway
    env["GOMAXPROCS"] = "2"
    return [str(binary), "discovery", *args], env


def mount_secrets(pod: Obj, container: Obj, root: Path, get_secret: Callable[[str, str], Obj | None]) -> None:
    """Secret volumes as the kubelet mounts them, under `root` instead of `/`: istiod reads its plugged-in CA
    from the relative ./etc/cacerts (ROOT_CA_DIR, pilot/pkg/bootstrap/istio_ca.go@1.30.3), which the chart
    mounts from the optional Secret `cacerts` (istio-discovery templates/deployment.yaml@1.30.3)."""
    namespace = pod["metadata"]["namespace"]
    volumes = {v["name"]: v["secret"] for v in pod["spec"].get("volumes") or [] if "secret" in v}
    for mount in container.get("volumeMounts") or []:
        source = volumes.get(mount["name"])
        if source is None:
            continue
        secret = get_secret(namespace, source["secretName"])
        if secret is None:
            continue  # optional: true in the chart; a missing Secret is an empty folder
        folder = root / mount["mountPath"].lstrip("/")
        folder.mkdir(parents=True, exist_ok=True)
        for key, value in (secret.get("data") or {}).items():
            (folder / key).write_bytes(base64.b64decode(value))
            (folder / key).chmod(0o600)


class IstiodRunner:
    """Polls for istiod pods and keeps one pilot-discovery process per pod with an IP."""

    def __init__(self, list_pods: Callable[[], list[Obj]], binaries: dict[str, Path], supervisor: Supervisor,
                 prefix: list[str], kubeconfig: Path, work_dir: Path,
                 get_secret: Callable[[str, str], Obj | None] = lambda namespace, name: None,
                 mark_ready: Callable[[str, str], None] | None = None) -> None:
        self.list_pods = list_pods
        # Where KWOK leaves pods not ready (a data plane runs), the pod turns Ready once its istiod answers
        # /ready, as the chart's readinessProbe would have it (templates/deployment.yaml@1.30.3).
        self.mark_ready = mark_ready
        self.marked: set[tuple[str, str]] = set()
        self.get_secret = get_secret
        self.binaries = binaries  # version -> pilot-discovery
        self.supervisor = supervisor
        self.prefix = prefix
        self.kubeconfig = kubeconfig
        self.work_dir = work_dir
        self.processes: dict[tuple[str, str], IstiodProcess] = {}
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        # A long-lived thread: children die with the thread that forked them (PR_SET_PDEATHSIG).
        self._thread = threading.Thread(target=self._loop, name="local-istiod", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(POLL):
            try:
                self.sync()
                self._mark_ready()
            except Exception as exc:
                self.problems = (self.problems + [f"istiod watcher: {type(exc).__name__}: {exc}"])[-20:]
        with self._lock:
            for key in list(self.processes):
                self._stop_process(key)

    def sync(self) -> None:
        pods = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in self.list_pods()
                if (p.get("status") or {}).get("podIP") and not p["metadata"].get("deletionTimestamp")}
        with self._lock:
            for key in [k for k in self.processes if k not in pods]:
                self._stop_process(key)
            for key in [k for k, p in self.processes.items() if not p.managed.alive()]:
                # The container restarts, as the kubelet restarts it (restartPolicy Always): e.g. its pod IP was
                # still held by a pod that was going away when it first started.
                self._stop_process(key)
            for key, pod in pods.items():
                if key not in self.processes:
                    self._start_process(pod)

    def _mark_ready(self) -> None:
        if self.mark_ready is None:
            return
        with self._lock:
            waiting = [p for key, p in self.processes.items() if key not in self.marked]
        for process in waiting:
            if http_status_inside(self.prefix[-1], process.ip, ADDRESS_FLAGS["--httpAddr"], "/ready") == 200:
                self.mark_ready(process.namespace, process.pod)
                self.marked.add((process.namespace, process.pod))

    def _start_process(self, pod: Obj) -> None:
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        container = next((c for c in pod["spec"]["containers"] if c["name"] == "discovery"),
                         pod["spec"]["containers"][0])
        version = image_tag(container.get("image", ""))
        binary = self.binaries.get(version)
        if binary is None:
            problem = (f"Pod {namespace}/{name} asks for istiod {version or '?'} ({container.get('image')}), "
                       f"and the local backend built only {', '.join(sorted(self.binaries))}")
            if problem not in self.problems:
                self.problems.append(problem)
            return
        ip = pod["status"]["podIP"]
        argv, env = istiod_command(binary, pod, self.kubeconfig)
        cwd = self.work_dir / f"{namespace}.{name}"
        cwd.mkdir(parents=True, exist_ok=True)  # no mesh or injector files: istiod reads those from the API
        mount_secrets(pod, container, cwd, self.get_secret)
        managed = self.supervisor.start(f"istiod.{namespace}.{name}", [*self.prefix, *argv], env=env, cwd=cwd)
        self.processes[(namespace, name)] = IstiodProcess(name, namespace, ip, version, managed)

    def _stop_process(self, key: tuple[str, str]) -> None:
        process = self.processes.pop(key)
        self.marked.discard(key)
        self.supervisor.stop(process.managed.name)

    def log_of(self, namespace: str, pod: str) -> Path | None:
        process = self.processes.get((namespace, pod))
        if process is not None:
            return process.managed.log
        stopped = self.supervisor.log_dir / f"istiod.{namespace}.{pod}.log"
        return stopped if stopped.is_file() else None

    def ready_problems(self, netns: str) -> list[str]:
        """istiod processes whose /ready (on the pod IP's 8080) does not answer 200 yet, and watcher problems."""
        with self._lock:
            processes = list(self.processes.values())
        problems = []
        for process in processes:
            status = http_status_inside(netns, process.ip, ADDRESS_FLAGS["--httpAddr"], "/ready")
            if status != 200:
                alive = "running" if process.managed.alive() else f"exited: {process.managed.tail(2)}"
                problems.append(f"istiod {process.namespace}/{process.pod} /ready: {status} ({alive})")
        return problems + [p for p in self.problems if p not in problems]

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)


def list_istiod_pods(cluster) -> list[Obj]:
    return cluster.list(kinds.POD, labels=ISTIOD_SELECTOR)

