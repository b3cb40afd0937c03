"""The kind backend: a local cluster in Docker, created for the run (or kept with --keep-cluster)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from multirev.backends.base import Backend, BackendInfo, Cluster, Endpoint
from multirev.backends.kube import KubeCluster, load_api_client
from multirev.clock import Clock
from multirev.commands import Runner
from multirev.errors import CommandFailed, EnvironmentProblem
from multirev.istio.istioctl import Istioctl, KubeTarget
from multirev.istio.release import ensure_release
from multirev.istio.versions import IstioVersion
from multirev.kind.binary import ensure_kind
from multirev.kind.config import cluster_config, host_ports
from multirev.kind.images import NodeImage
from multirev.progress import step

DOCKER_CHECK_TIMEOUT = 8.0
CREATE_TIMEOUT = 600.0


@dataclass
class KindOptions:
    cluster_name: str
    node_image: NodeImage
    keep_cluster: bool
    kind_bin: str | None
    cache: Path
    work_dir: Path
    istio_mirror: str
    host_port_base: int


class KindBackend(Backend):
    name = "kind"

    def __init__(self, runner: Runner, clock: Clock, options: KindOptions) -> None:
        super().__init__(runner, clock)
        self.options = options
        self.kubeconfig = options.work_dir / f"{options.cluster_name}.kubeconfig"
        self._kind: str | None = options.kind_bin
        self._created = False
        self._cluster: KubeCluster | None = None

    def preflight(self) -> None:
        if shutil.which("docker") is None:
            raise EnvironmentProblem(
                "the kind backend needs Docker, and no `docker` command is installed; "
                "to dry-run here use --backend simulated, or --backend local --profile local-dev for a real control "
                "plane without Docker (docs/backends.md)"
            )
        result = self.runner.run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=DOCKER_CHECK_TIMEOUT)
        if result.returncode != 0:
            reason = (result.stderr.strip().splitlines() or ["no answer"])[-1]
            raise EnvironmentProblem(
                f"the kind backend needs a running Docker engine, and `docker info` failed ({reason}); "
                "to dry-run here use --backend simulated, or --backend local --profile local-dev for a real control "
                "plane without Docker (docs/backends.md)"
            )

    def _kind_binary(self) -> str:
        if self._kind is None:
            with step(f"kind {self.options.node_image.kind_version} binary (download and verify unless cached)"):
                self._kind = str(ensure_kind(self.options.node_image.kind_version, cache=self.options.cache))
        return self._kind

    def _exists(self) -> bool:
        # `kind get clusters` prints one name per line; "No kind clusters found." goes to stderr
        # (kind@v0.32.0:pkg/cmd/kind/get/clusters/clusters.go).
        out = self.runner.run([self._kind_binary(), "get", "clusters"], timeout=60).check().stdout
        return self.options.cluster_name in out.split()

    def start(self) -> Cluster:
        kind = self._kind_binary()
        self.options.work_dir.mkdir(parents=True, exist_ok=True)
        config_file = self.options.work_dir / f"{self.options.cluster_name}.kind.yaml"
        config_file.write_text(yaml.safe_dump(cluster_config(self.options.node_image.image,
                                                             self.options.host_port_base)))
        if not (self.options.keep_cluster and self._exists()):
            # Flags: kind@v0.32.0:pkg/cmd/kind/create/cluster/createcluster.go (--wait needs units).
            with step(f"kind create cluster {self.options.cluster_name}"):
                self._create(kind, config_file)
            self._created = True
        else:
            self.runner.run([kind, "export", "kubeconfig", "--name", self.options.cluster_name,
                             "--kubeconfig", str(self.kubeconfig)], timeout=60).check()
        self._cluster = KubeCluster(load_api_client(str(self.kubeconfig), None), self.clock)
        return self._cluster

    def _create(self, kind: str, config_file: Path) -> None:
        self.runner.run([kind, "create", "cluster", "--name", self.options.cluster_name,
                         "--image", self.options.node_image.image, "--config", str(config_file),
                         "--kubeconfig", str(self.kubeconfig), "--wait", "120s"],
                        timeout=CREATE_TIMEOUT).check()

    def stop(self) -> None:
        if self.options.keep_cluster or not self._created:
            return
        try:
            self.runner.run([self._kind_binary(), "delete", "cluster", "--name", self.options.cluster_name,
                             "--kubeconfig", str(self.kubeconfig)], timeout=300).check()
        except CommandFailed as exc:
            raise EnvironmentProblem(f"could not delete kind cluster {self.options.cluster_name}: {exc}") from exc

    def istioctl(self, version: IstioVersion) -> Istioctl:
        with step(f"Istio {version} release (download and verify unless cached)"):
            release = ensure_release(version, mirror=self.options.istio_mirror, cache=self.options.cache)
        tool = Istioctl(str(release.istioctl), version, self.runner, KubeTarget(str(self.kubeconfig)))
        tool.verify_version()
        return tool

    def samples_dir(self, version: IstioVersion) -> Path:
        return ensure_release(version, mirror=self.options.istio_mirror, cache=self.options.cache).samples

    def gateway_endpoint(self, role: str) -> Endpoint:
        return Endpoint("127.0.0.1", host_ports(self.options.host_port_base)[role]["http"])

    def info(self) -> BackendInfo:
        version = self._cluster.kubernetes_version() if self._cluster else ""
        return BackendInfo("kind", False, version, self.options.node_image.image, self.options.node_image.kind_version)
