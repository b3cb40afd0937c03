"""The existing-cluster backend: a cluster the user already has, touched only where the run created things."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from multirev.backends.base import Backend, BackendInfo, Cluster, Endpoint
from multirev.backends.kube import KubeCluster, load_api_client, server_of, unreachable_cause
from multirev.cleanup import cleanup_command, refuse_or_remove_dead_runs, run_labelled_kinds
from multirev.clock import Clock
from multirev.commands import Runner
from multirev.errors import EnvironmentProblem, UsageError
from multirev.footprint import Footprint
from multirev.helmcli import DEFAULT_HELM_MIRROR, HELM_VERSION, ensure_helm
from multirev.istio.gateway_api import RELEASE_MIRROR, GatewayApiModule, ensure_release_manifest
from multirev.istio.helm import Helm
from multirev.istio.installed import certified_profile, find_installed
from multirev.istio.istioctl import Istioctl, KubeTarget
from multirev.istio.release import ensure_release
from multirev.istio.versions import IstioVersion
from multirev.kube import kinds
from multirev.plan import RUN_ID_LABEL, MeshPlan
from multirev.profile import Profile
from multirev.progress import step
from multirev.rbac import Permission, judge, roles
from multirev.runrecord import record_namespace
from multirev.waits import Observation, wait_for

NAMESPACE_DELETE_TIMEOUT = 300.0
PREFLIGHT_TIMEOUT = (5.0, 10.0)  # connect, read: an unreachable cluster is one line within seconds
GATEWAY_HTTP_PORT = "http2"  # the port name the suite's IstioOperator gives the gateway's port 80


@dataclass
class ExistingOptions:
    kubeconfig: str | None
    context: str | None
    run_id: str
    allow_destructive: bool
    cache: Path
    istio_mirror: str
    gateway_host: str | None  # --gateway-host: where the gateways' NodePorts are reached (default: a node's IP)
    gateway_endpoints: dict[str, Endpoint]  # --gateway-endpoint ROLE=HOST:PORT, taken as given
    gateway_services: dict[str, tuple[str, str]]  # role -> (namespace, Service) of its ingress gateway
    helm_mirror: str = DEFAULT_HELM_MIRROR  # --installer helm: where the pinned Helm archive comes from
    gateway_api_mirror: str = RELEASE_MIRROR  # the gateway-api feature: where the pinned standard-install.yaml is
    helm_bin: str | None = None  # --helm-bin: the user's own Helm (its version is checked)
    allow_purge: bool = False  # --allow-purge: a purge may remove the Istio the cluster had before the run


class ExistingBackend(Backend):
    name = "existing"

    def __init__(self, runner: Runner, clock: Clock, options: ExistingOptions) -> None:
        super().__init__(runner, clock)
        self.options = options
        self._cluster: KubeCluster | None = None
        self._keep_record: str | None = None  # why teardown left the run record (keep_record)
        self._installs = True  # False with --installed: the run then makes no Secret, and never lists any

    def preflight(self) -> None:
        api = load_api_client(self.options.kubeconfig, self.options.context)
        self._cluster = KubeCluster(api, self.clock, extra_labels={RUN_ID_LABEL: self.options.run_id})
        try:
            self._cluster.kubernetes_version(timeout=PREFLIGHT_TIMEOUT)
        except Exception as exc:
            where = self.options.kubeconfig or "the default kubeconfig"
            context = f", context {self.options.context}" if self.options.context else ""
            raise UsageError(f"cannot reach the cluster at {server_of(api)} ({where}{context}): "
                             f"{unreachable_cause(exc)}") from exc

    def refuse_plan(self, plan: MeshPlan) -> None:
        if self._cluster is None:
            self.preflight()
        assert self._cluster is not None
        # First: a killed run's leftovers would otherwise be refused below as someone's revision or namespace.
        refuse_or_remove_dead_runs(self._cluster, allow_destructive=self.options.allow_destructive,
                                   connection=self.connection_options())
        problems = Footprint.survey(self._cluster, plan).refusals(
            self._cluster, plan, allow_destructive=self.options.allow_destructive)
        if problems:
            raise UsageError(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))

    def refuse_installed(self) -> None:
        """The cluster's revisions are what --installed certifies."""

    def installed_profile(self, profile: Profile) -> Profile:
        if self._cluster is None:
            self.preflight()
        assert self._cluster is not None and profile.installed is not None
        self._installs = False
        self._check_permissions(self._cluster)
        certified = certified_profile(profile, find_installed(self._cluster, dict(profile.installed)))
        plan = MeshPlan(certified, self.options.run_id)
        self.options.gateway_services = {p.role: (p.gateway_service_namespace, p.gateway_name) for p in plan.planes}
        return certified

    def _check_permissions(self, cluster: KubeCluster) -> None:
        """--installed runs under the ClusterRoles of manifests/rbac/certify-installed.yaml: refused in one line if
        the account lacks one the run needs, the feature skipped if it lacks one only that feature needs."""
        def allowed(permission: Permission) -> bool:
            return cluster.allowed(permission.review())

        verdict = judge(allowed, roles())
        refusal = verdict.refusal(cluster.username())
        if refusal:
            raise UsageError(refusal)
        self.features_withheld.update(verdict.withheld)

    def connection_options(self) -> list[str]:
        """The options that reach this cluster, for a command the user is told to run."""
        return [*(["--kubeconfig", self.options.kubeconfig] if self.options.kubeconfig else []),
                *(["--context", self.options.context] if self.options.context else [])]

    def start(self) -> Cluster:
        if self._cluster is None:
            self.preflight()
        assert self._cluster is not None
        return self._cluster

    def keep_record(self, why: str) -> None:
        self._keep_record = why

    def stop(self) -> None:
        """Remove exactly the objects labelled with this run's id; namespaces last, and the run record
        (multirev/runrecord.py) after them: a teardown killed before it ends still leaves the record to be found.
        The record also stays when teardown could not give everything back (`keep_record`): `./run cleanup` then
        finishes the job from it, and the line printed here says how."""
        if self._cluster is None:
            return
        cluster = self._cluster
        cluster.stop_forwarding()
        selector = {RUN_ID_LABEL: self.options.run_id}
        record = record_namespace(self.options.run_id)
        for kind in run_labelled_kinds(installs=self._installs):
            for obj in cluster.list(kind, labels=selector):
                if obj["metadata"].get("namespace") != record:  # the record's copies go with it, or stay with it
                    cluster.delete(kind, obj["metadata"]["name"], obj["metadata"].get("namespace"))
        namespaces = [ns["metadata"]["name"] for ns in cluster.list(kinds.NAMESPACE, labels=selector)
                      if ns["metadata"]["name"] != record]
        for name in namespaces:
            cluster.delete(kinds.NAMESPACE, name)
        self._await_gone(namespaces)
        if self._keep_record is not None:
            command = cleanup_command(self.options.run_id, self.connection_options())
            print(f"[multirev] teardown did not give everything back ({self._keep_record}); the run record "
                  f"Namespace {record} stays: once this process has exited, `{command}` finishes the job",
                  file=sys.stderr, flush=True)
            return
        if cluster.delete(kinds.NAMESPACE, record):
            self._await_gone([record])

    def _await_gone(self, namespaces: list[str]) -> None:
        """A deleted namespace lingers as Terminating while its contents go; the next run would collide with it."""
        cluster = self._cluster
        assert cluster is not None

        def remaining() -> Observation[None]:
            left = [n for n in namespaces if cluster.get(kinds.NAMESPACE, n) is not None]
            return Observation(not left, None, f"still terminating: {', '.join(left)}")

        with step(f"await deletion of namespaces {', '.join(namespaces)}"):
            wait_for("the run's namespaces to be deleted", remaining, clock=self.clock,
                     timeout=NAMESPACE_DELETE_TIMEOUT)

    def istioctl(self, version: IstioVersion) -> Istioctl:
        with step(f"Istio {version} release (download and verify unless cached)"):
            release = ensure_release(version, mirror=self.options.istio_mirror, cache=self.options.cache)
        tool = Istioctl(str(release.istioctl), version, self.runner,
                        KubeTarget(self.options.kubeconfig, self.options.context))
        tool.verify_version()
        return tool

    def gateway_api_manifest(self, module: GatewayApiModule) -> Path:
        with step(f"Gateway API {module.version} standard-install.yaml (download and verify unless cached)"):
            return ensure_release_manifest(module.version, cache=self.options.cache,
                                           mirror=self.options.gateway_api_mirror)

    def service_endpoint(self, namespace: str, service: str, port_name: str) -> Endpoint:
        if self._cluster is None:
            self.start()
        assert self._cluster is not None
        return self._cluster.service_endpoint(namespace, service, port_name)

    def samples_dir(self, version: IstioVersion) -> Path:
        return ensure_release(version, mirror=self.options.istio_mirror, cache=self.options.cache).samples

    def helm(self, work_dir: Path) -> Helm:
        with step(f"Helm {HELM_VERSION} (download and verify unless cached)"):
            binary = self.options.helm_bin or ensure_helm(cache=self.options.cache, mirror=self.options.helm_mirror)
        tool = Helm(str(binary), self.runner, KubeTarget(self.options.kubeconfig, self.options.context), work_dir)
        tool.verify_version(HELM_VERSION)
        return tool

    def gateway_endpoint(self, role: str) -> Endpoint:
        """As given with --gateway-endpoint, else the gateway Service's load-balancer address (port 80), else its
        HTTP NodePort on --gateway-host or the first node's InternalIP (docs/backends.md#existing)."""
        if role in self.options.gateway_endpoints:
            return self.options.gateway_endpoints[role]
        if self._cluster is None:
            self.start()
        assert self._cluster is not None
        namespace, name = self.options.gateway_services[role]
        service = self._cluster.get(kinds.SERVICE, name, namespace)
        if service is None:
            raise EnvironmentProblem(f"the {role} gateway Service {namespace}/{name} does not exist, so its address is "
                                     f"unknown; pass --gateway-endpoint {role}=HOST:PORT")
        http = next((p for p in service["spec"].get("ports", []) if p.get("name") == GATEWAY_HTTP_PORT), None)
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if http is not None and ingress and (ingress[0].get("ip") or ingress[0].get("hostname")):
            return Endpoint(ingress[0].get("ip") or ingress[0]["hostname"], int(http["port"]))
        if http is None or not http.get("nodePort"):
            raise EnvironmentProblem(f"the {role} gateway Service {namespace}/{name} has no load-balancer address and "
                                     f"no NodePort for port {GATEWAY_HTTP_PORT}; "
                                     f"pass --gateway-endpoint {role}=HOST:PORT")
        return Endpoint(self.options.gateway_host or self._node_address(), int(http["nodePort"]))

    def _node_address(self) -> str:
        assert self._cluster is not None
        for node in self._cluster.list(kinds.NODE):
            for address in (node.get("status") or {}).get("addresses", []):
                if address.get("type") == "InternalIP":
                    return address["address"]
        raise EnvironmentProblem("no node reports an InternalIP to reach the gateways' NodePorts on; pass "
                                 "--gateway-host HOST or --gateway-endpoint ROLE=HOST:PORT")

    def info(self) -> BackendInfo:
        version = self._cluster.kubernetes_version() if self._cluster else ""
        return BackendInfo("existing", False, version, extra={"context": self.options.context or ""})

    def may_destroy_foreign(self) -> bool:
        return self.options.allow_destructive

    def may_purge_foreign(self) -> bool:
        return self.options.allow_purge
