"""The existing-cluster backend: a cluster the user already has, touched only where the run created things."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from multirev.backends.base import Backend, BackendInfo, Cluster, Endpoint
from multirev.backends.kube import KubeCluster, load_api_client
from multirev.clock import Clock
from multirev.commands import Runner
from multirev.errors import UsageError
from multirev.istio.istioctl import Istioctl, KubeTarget
from multirev.istio.release import ensure_release
from multirev.istio.versions import IstioVersion
from multirev.kube import kinds
from multirev.plan import RUN_ID_LABEL
from multirev.progress import step

# Namespaced kinds the run may create, removed by run-id label at teardown (cluster-scoped ones too).
CLEANUP_KINDS = (*kinds.ISTIO_CONFIG, kinds.DEPLOYMENT, kinds.SERVICE, kinds.SERVICEACCOUNT, kinds.CONFIGMAP)


@dataclass
class ExistingOptions:
    kubeconfig: str | None
    context: str | None
    run_id: str
    allow_destructive: bool
    cache: Path
    istio_mirror: str
    gateway_host: str
    gateway_ports: dict[str, int]


class ExistingBackend(Backend):
    name = "existing"

    def __init__(self, runner: Runner, clock: Clock, options: ExistingOptions) -> None:
        super().__init__(runner, clock)
        self.options = options
        self._cluster: KubeCluster | None = None

    def preflight(self) -> None:
        api = load_api_client(self.options.kubeconfig, self.options.context)
        self._cluster = KubeCluster(api, self.clock, extra_labels={RUN_ID_LABEL: self.options.run_id})
        try:
            self._cluster.kubernetes_version()
        except Exception as exc:
            raise UsageError(f"cannot reach the cluster in {self.options.kubeconfig or 'the default kubeconfig'}: "
                             f"{type(exc).__name__}") from exc

    def start(self) -> Cluster:
        if self._cluster is None:
            self.preflight()
        assert self._cluster is not None
        return self._cluster

    def stop(self) -> None:
        """Remove exactly the objects labelled with this run's id; namespaces last."""
        if self._cluster is None:
            return
        selector = {RUN_ID_LABEL: self.options.run_id}
        for kind in CLEANUP_KINDS:
            for obj in self._cluster.list(kind, labels=selector):
                self._cluster.delete(kind, obj["metadata"]["name"], obj["metadata"].get("namespace"))
        for ns in self._cluster.list(kinds.NAMESPACE, labels=selector):
            self._cluster.delete(kinds.NAMESPACE, ns["metadata"]["name"])

    def istioctl(self, version: IstioVersion) -> Istioctl:
        with step(f"Istio {version} release (download and verify unless cached)"):
            release = ensure_release(version, mirror=self.options.istio_mirror, cache=self.options.cache)
        tool = Istioctl(str(release.istioctl), version, self.runner,
                        KubeTarget(self.options.kubeconfig, self.options.context))
        tool.verify_version()
        return tool

    def samples_dir(self, version: IstioVersion) -> Path:
        return ensure_release(version, mirror=self.options.istio_mirror, cache=self.options.cache).samples

    def gateway_endpoint(self, role: str) -> Endpoint:
        return Endpoint(self.options.gateway_host, self.options.gateway_ports[role])

    def info(self) -> BackendInfo:
        version = self._cluster.kubernetes_version() if self._cluster else ""
        return BackendInfo("existing", False, version, extra={"context": self.options.context or ""})

    def may_destroy_foreign(self) -> bool:
        return self.options.allow_destructive
