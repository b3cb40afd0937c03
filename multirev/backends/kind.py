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
from multirev.compat import KubeRange
from multirev.errors import CommandFailed, EnvironmentProblem, UsageError
from multirev.helmcli import DEFAULT_HELM_MIRROR, HELM_VERSION, ensure_helm
from multirev.istio.facts import REV_LABEL
from multirev.istio.gateway_api import RELEASE_MIRROR, GatewayApiModule, ensure_release_manifest
from multirev.istio.helm import Helm
from multirev.istio.istioctl import Istioctl, KubeTarget
from multirev.istio.release import ensure_release
from multirev.istio.versions import IstioVersion, KubeVersion
from multirev.kind.binary import ensure_kind
from multirev.kind.config import cluster_config, host_ports
from multirev.kind.images import NodeImage
from multirev.kube.kinds import MUTATING_WEBHOOK, NAMESPACE
from multirev.kube.objects import labels_of
from multirev.plan import RUN_ID_LABEL
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
    work_dir: Path  # inside reports/: the kind config, for people reading a run
    istio_mirror: str
    host_port_base: int
    credentials_dir: Path  # outside reports/ (uploaded by CI): the kubeconfig holds the admin client key
    name_chosen: bool = False  # --cluster-name given: never replace a cluster of that name, refuse instead
    helm_mirror: str = DEFAULT_HELM_MIRROR  # --installer helm: where the pinned Helm archive comes from
    gateway_api_mirror: str = RELEASE_MIRROR  # the gateway-api feature: where the pinned standard-install.yaml is
    helm_bin: str | None = None  # --helm-bin: the user's own Helm (its version is checked)
    # The Kubernetes minors both Istio versions support (multirev/compat.py): a kept cluster outside it is refused.
    kubernetes_range: KubeRange | None = None


class KindBackend(Backend):
    name = "kind"
    pins_node_ports = True  # extraPortMappings send the host ports to fixed NodePorts (multirev/kind/config.py)

    def __init__(self, runner: Runner, clock: Clock, options: KindOptions) -> None:
        super().__init__(runner, clock)
        self.options = options
        self.kubeconfig = options.credentials_dir / f"{options.cluster_name}.kubeconfig"
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
        name = self.options.cluster_name
        self.options.work_dir.mkdir(parents=True, exist_ok=True)
        self.options.credentials_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        config_file = self.options.work_dir / f"{name}.kind.yaml"
        config_file.write_text(yaml.safe_dump(cluster_config(self.options.node_image.image,
                                                             self.options.host_port_base)))
        if self._exists():
            if self.options.keep_cluster:
                self.runner.run([kind, "export", "kubeconfig", "--name", name,
                                 "--kubeconfig", str(self.kubeconfig)], timeout=60).check()
                self._cluster = KubeCluster(load_api_client(str(self.kubeconfig), None), self.clock)
                refuse_kept(self._cluster, name, self.options.kubernetes_range)
                return self._cluster
            self._replace_leftover(kind)
        # Flags: kind@v0.32.0:pkg/cmd/kind/create/cluster/createcluster.go (--wait needs units).
        with step(f"kind create cluster {name}"):
            # kind deletes nodes itself only when create returns an error (kind@v0.32.0:pkg/cluster/internal/create/
            # create.go, unless --retain); a create we kill at CREATE_TIMEOUT leaves them, so stop() deletes.
            self._created = True
            self._create(kind, config_file)
        self._cluster = KubeCluster(load_api_client(str(self.kubeconfig), None), self.clock)
        return self._cluster

    def _replace_leftover(self, kind: str) -> None:
        """`kind create` refuses a name whose nodes exist (kind@v0.32.0:pkg/cluster/internal/create/create.go,
        alreadyExists). A leftover of the suite's own default name is replaced; a name the user chose is not."""
        name = self.options.cluster_name
        if self.options.name_chosen:
            raise UsageError(f"kind cluster {name} already exists; pass --keep-cluster to run on it, or delete it "
                             f"with `kind delete cluster --name {name}`")
        print(f"[multirev] kind cluster {name} already exists (left by an earlier run?): deleting it to start "
              "fresh; pass --keep-cluster to reuse it instead", flush=True)
        self._delete(kind)

    def _create(self, kind: str, config_file: Path) -> None:
        self.runner.run([kind, "create", "cluster", "--name", self.options.cluster_name,
                         "--image", self.options.node_image.image, "--config", str(config_file),
                         "--kubeconfig", str(self.kubeconfig), "--wait", "120s"],
                        timeout=CREATE_TIMEOUT).check()
        self.kubeconfig.chmod(0o600)

    def _delete(self, kind: str) -> None:
        try:
            self.runner.run([kind, "delete", "cluster", "--name", self.options.cluster_name,
                             "--kubeconfig", str(self.kubeconfig)], timeout=300).check()
        except CommandFailed as exc:
            raise EnvironmentProblem(f"could not delete kind cluster {self.options.cluster_name}: {exc}") from exc

    def stop(self) -> None:
        if self._cluster is not None:
            self._cluster.stop_forwarding()
        if self.options.keep_cluster or not self._created:
            return
        self._delete(self._kind_binary())
        self.kubeconfig.unlink(missing_ok=True)

    def istioctl(self, version: IstioVersion) -> Istioctl:
        with step(f"Istio {version} release (download and verify unless cached)"):
            release = ensure_release(version, mirror=self.options.istio_mirror, cache=self.options.cache)
        tool = Istioctl(str(release.istioctl), version, self.runner, KubeTarget(str(self.kubeconfig)))
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
        tool = Helm(str(binary), self.runner, KubeTarget(str(self.kubeconfig)), work_dir)
        tool.verify_version(HELM_VERSION)
        return tool

    def gateway_endpoint(self, role: str) -> Endpoint:
        return Endpoint("127.0.0.1", host_ports(self.options.host_port_base)[role]["http"])

    def info(self) -> BackendInfo:
        version = self._cluster.kubernetes_version() if self._cluster else ""
        return BackendInfo("kind", False, version, self.options.node_image.image, self.options.node_image.kind_version)


def refuse_kept(cluster: KubeCluster, name: str, supported: KubeRange | None) -> None:
    """--keep-cluster on a cluster that exists: one line, before anything is installed, if it runs a Kubernetes the
    profile's Istio versions do not both support (it was made for another profile), or if it still holds a mesh (an
    earlier run's, kept with it: `istioctl tag set` of the same tag refuses without --overwrite,
    istio@1.30.3: istioctl/pkg/tag/generate.go checkTagDuplicate)."""
    fix = f"delete it with `kind delete cluster --name {name}`, or run without --keep-cluster to start a new one"
    found = cluster.kubernetes_version()
    version = KubeVersion.parse(found.lstrip("v").split("+", 1)[0]) if found else None
    if supported is not None and version is not None and version not in supported:
        raise UsageError(f"kind cluster {name} (--keep-cluster) runs Kubernetes {found}, outside {supported}, which "
                         f"the profile's Istio versions both support; {fix}")
    revisions = sorted({labels_of(h).get(REV_LABEL, "") for h in cluster.list(MUTATING_WEBHOOK)
                        if REV_LABEL in labels_of(h)})
    runs = sorted({labels_of(ns).get(RUN_ID_LABEL, "") for ns in cluster.list(NAMESPACE)
                   if RUN_ID_LABEL in labels_of(ns)})
    if revisions or runs:
        held = ", ".join([*(f"revision {r}" for r in revisions), *(f"namespaces of run {r}" for r in runs)])
        raise UsageError(f"kind cluster {name} (--keep-cluster) still holds an earlier mesh ({held}), on which this "
                         f"run's installs and tags would collide; {fix}")
