"""KindBackend driving a fake `kind` script (which logs argv) and a local API-server stand-in."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
import yaml
from apiserver import GIT_VERSION, ServerState

from multirev.backends.base import Endpoint
from multirev.backends.kind import KindBackend, KindOptions
from multirev.clock import WallClock
from multirev.commands import RecordingRunner, SubprocessRunner, Transcript
from multirev.compat import KubeRange
from multirev.errors import CommandFailed, EnvironmentProblem, UsageError
from multirev.istio.versions import KubeVersion
from multirev.kind.images import NODE_IMAGES
from multirev.kube import kinds

NAME = "mr-test"
BASE = 18080
NODE_IMAGE = NODE_IMAGES[KubeVersion(1, 35)]


class FakeKind:
    """A bash `kind` on disk: logs argv (one JSON array a line); create/export copy the stand-in's kubeconfig
    to --kubeconfig; `get clusters` prints clusters.txt if present (nothing by default)."""

    def __init__(self, directory: Path, standin_kubeconfig: Path) -> None:
        self.dir = directory
        self.path = directory / "kind"
        self.log = directory / "kind-argv.log"
        self.clusters = directory / "clusters.txt"
        self.fail_delete = directory / "fail-delete"
        self.fail_create = directory / "fail-create"
        logger = "import json, sys; print(json.dumps(sys.argv[1:]))"
        q = shlex.quote
        self.path.write_text(f"""#!/usr/bin/env bash
{q(sys.executable)} -c {q(logger)} "$@" >> {q(str(self.log))}
kubeconfig=""
prev=""
for arg in "$@"; do
  if [ "$prev" = "--kubeconfig" ]; then kubeconfig="$arg"; fi
  prev="$arg"
done
case "$1 $2" in
  "get clusters")
    if [ -f {q(str(self.clusters))} ]; then cat {q(str(self.clusters))}; else echo "No kind clusters found." >&2; fi ;;
  "create cluster"|"export kubeconfig")
    if [ "$1" = create ] && [ -f {q(str(self.fail_create))} ]; then
      echo "ERROR: failed to create cluster: timed out waiting for the control plane" >&2; exit 1
    fi
    cp {q(str(standin_kubeconfig))} "$kubeconfig" ;;
  "delete cluster")
    if [ -f {q(str(self.fail_delete))} ]; then echo "ERROR: failed to delete cluster" >&2; exit 1; fi ;;
esac
exit 0
""")
        self.path.chmod(0o755)

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


def _backend(tmp_path: Path, fake: FakeKind | None, *, keep: bool, name_chosen: bool = False,
             supported: KubeRange | None = None) -> KindBackend:
    runner = RecordingRunner(SubprocessRunner(), Transcript(tmp_path / "t.jsonl"), "kind")
    options = KindOptions(
        cluster_name=NAME, node_image=NODE_IMAGE, keep_cluster=keep, kind_bin=str(fake.path) if fake else None,
        cache=tmp_path / "cache", work_dir=tmp_path / "work", istio_mirror=str(tmp_path / "mirror"),
        host_port_base=BASE, credentials_dir=tmp_path / "credentials", name_chosen=name_chosen,
        kubernetes_range=supported,
    )
    return KindBackend(runner, WallClock(), options)


@pytest.fixture
def fake_kind(tmp_path: Path, apiserver: tuple[str, ServerState]) -> FakeKind:
    _, state = apiserver
    assert state.kubeconfig is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    return FakeKind(bin_dir, state.kubeconfig)


def _kubeconfig(tmp_path: Path) -> str:
    return str(tmp_path / "credentials" / f"{NAME}.kubeconfig")


def _create_argv(tmp_path: Path) -> list[str]:
    work = tmp_path / "work"
    return ["create", "cluster", "--name", NAME, "--image", NODE_IMAGE.image,
            "--config", str(work / f"{NAME}.kind.yaml"), "--kubeconfig", _kubeconfig(tmp_path),
            "--wait", "120s"]


def test_node_image_is_pinned_by_digest() -> None:
    """The 1.35 row is a kindest/node v1.35 image pinned by sha256 digest."""
    assert NODE_IMAGE.image.startswith("kindest/node:v1.35.")
    assert "@sha256:" in NODE_IMAGE.image and len(NODE_IMAGE.image.split("@sha256:")[1]) == 64
    assert NODE_IMAGE.kubernetes == KubeVersion(1, 35)


def test_start_creates_when_no_cluster_of_that_name_exists(tmp_path: Path, fake_kind: FakeKind,
                                                            apiserver: tuple[str, ServerState]) -> None:
    """Without keep_cluster, start() asks `kind get clusters`, then runs `kind create cluster ...`."""
    backend = _backend(tmp_path, fake_kind, keep=False)
    backend.start()
    assert fake_kind.calls() == [["get", "clusters"], _create_argv(tmp_path)]


def test_a_leftover_cluster_of_the_default_name_is_replaced(tmp_path: Path, fake_kind: FakeKind,
                                                            apiserver: tuple[str, ServerState],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A cluster left by a killed run would make `kind create` fail: it is deleted first, saying so."""
    fake_kind.clusters.write_text(f"{NAME}\n")
    _backend(tmp_path, fake_kind, keep=False).start()
    assert [c[:2] for c in fake_kind.calls()] == [["get", "clusters"], ["delete", "cluster"], ["create", "cluster"]]
    assert "already exists (left by an earlier run?)" in capsys.readouterr().out


def test_a_chosen_name_that_exists_is_refused(tmp_path: Path, fake_kind: FakeKind,
                                              apiserver: tuple[str, ServerState]) -> None:
    """With --cluster-name, an existing cluster is the user's: one line, nothing deleted or created."""
    fake_kind.clusters.write_text(f"{NAME}\n")
    with pytest.raises(UsageError, match=f"kind cluster {NAME} already exists; pass --keep-cluster"):
        _backend(tmp_path, fake_kind, keep=False, name_chosen=True).start()
    assert fake_kind.calls() == [["get", "clusters"]]


def test_a_failed_create_is_deleted_at_stop(tmp_path: Path, fake_kind: FakeKind,
                                            apiserver: tuple[str, ServerState]) -> None:
    """`kind create` that fails or times out may leave node containers: stop() still deletes the cluster."""
    fake_kind.fail_create.touch()
    backend = _backend(tmp_path, fake_kind, keep=False)
    with pytest.raises(CommandFailed):
        backend.start()
    backend.stop()
    assert fake_kind.calls()[-1][:4] == ["delete", "cluster", "--name", NAME]


def test_kubeconfig_stays_out_of_the_reports_tree(tmp_path: Path, fake_kind: FakeKind,
                                                  apiserver: tuple[str, ServerState]) -> None:
    """The kubeconfig kind writes holds the admin client key: private to the user, outside reports/, and
    removed with the cluster."""
    backend = _backend(tmp_path, fake_kind, keep=False)
    backend.start()
    kubeconfig = Path(_kubeconfig(tmp_path))
    assert (kubeconfig.stat().st_mode & 0o777, kubeconfig.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    assert not list((tmp_path / "work").rglob("*.kubeconfig"))
    backend.stop()
    assert not kubeconfig.exists()


def test_start_asks_first_when_keeping(tmp_path: Path, fake_kind: FakeKind,
                                       apiserver: tuple[str, ServerState]) -> None:
    """With keep_cluster, start() runs `kind get clusters` and, finding nothing, creates the cluster."""
    backend = _backend(tmp_path, fake_kind, keep=True)
    backend.start()
    assert fake_kind.calls() == [["get", "clusters"], _create_argv(tmp_path)]


def test_start_reuses_a_kept_cluster(tmp_path: Path, fake_kind: FakeKind,
                                     apiserver: tuple[str, ServerState]) -> None:
    """With keep_cluster and the cluster listed, start() exports its kubeconfig instead of creating one."""
    fake_kind.clusters.write_text(f"other\n{NAME}\n")
    backend = _backend(tmp_path, fake_kind, keep=True)
    cluster = backend.start()
    kubeconfig = _kubeconfig(tmp_path)
    assert fake_kind.calls() == [["get", "clusters"],
                                 ["export", "kubeconfig", "--name", NAME, "--kubeconfig", kubeconfig]]
    assert cluster.kubernetes_version() == GIT_VERSION
    backend.stop()
    assert len(fake_kind.calls()) == 2


def test_a_kept_cluster_of_another_kubernetes_is_refused(tmp_path: Path, fake_kind: FakeKind,
                                                         apiserver: tuple[str, ServerState]) -> None:
    """--keep-cluster on a cluster made for another profile: its Kubernetes is outside what both Istio versions
    support, said in one line before anything is installed."""
    fake_kind.clusters.write_text(f"{NAME}\n")
    supported = KubeRange(KubeVersion.parse("1.30"), KubeVersion.parse("1.34"))
    with pytest.raises(UsageError, match=rf"^kind cluster {NAME} \(--keep-cluster\) runs Kubernetes {GIT_VERSION}, "
                                         r"outside 1\.30-1\.34, which the profile's Istio versions both support; "
                                         rf"delete it with `kind delete cluster --name {NAME}`"):
        _backend(tmp_path, fake_kind, keep=True, supported=supported).start()


def test_a_kept_cluster_that_still_holds_a_mesh_is_refused(tmp_path: Path, fake_kind: FakeKind,
                                                           apiserver: tuple[str, ServerState]) -> None:
    """--keep-cluster after an earlier run: its revision and namespaces are still there, and `tag set` would refuse
    the same tag; said in one line naming what is there, before anything is installed."""
    _, state = apiserver
    fake_kind.clusters.write_text(f"{NAME}\n")
    state.store.put(kinds.MUTATING_WEBHOOK, {"metadata": {"name": "istio-sidecar-injector-1-29-6-istio-stable",
                                                          "labels": {"istio.io/rev": "1-29-6"}}})
    state.store.put(kinds.NAMESPACE, {"metadata": {"name": "app-stable",
                                                   "labels": {"conformance.multirev.io/run-id": "earlier"}}})
    with pytest.raises(UsageError, match=rf"^kind cluster {NAME} \(--keep-cluster\) still holds an earlier mesh "
                                         r"\(revision 1-29-6, namespaces of run earlier\)"):
        _backend(tmp_path, fake_kind, keep=True).start()


def test_kind_config_maps_gateway_node_ports_to_host_ports(tmp_path: Path, fake_kind: FakeKind,
                                                           apiserver: tuple[str, ServerState]) -> None:
    """The --config file is a v1alpha4 Cluster whose node maps NodePorts 30080-30083 to base..base+3."""
    _backend(tmp_path, fake_kind, keep=False).start()
    config = yaml.safe_load((tmp_path / "work" / f"{NAME}.kind.yaml").read_text())
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4" and config["kind"] == "Cluster"
    [node] = config["nodes"]
    assert node["role"] == "control-plane" and node["image"] == NODE_IMAGE.image
    mappings = {m["containerPort"]: m for m in node["extraPortMappings"]}
    assert {port: m["hostPort"] for port, m in mappings.items()} == {
        30080: BASE, 30081: BASE + 1, 30082: BASE + 2, 30083: BASE + 3}
    assert {(m["listenAddress"], m["protocol"]) for m in mappings.values()} == {("127.0.0.1", "TCP")}


def test_started_cluster_talks_to_the_written_kubeconfig(tmp_path: Path, fake_kind: FakeKind,
                                                         apiserver: tuple[str, ServerState]) -> None:
    """The cluster start() returns uses the kubeconfig kind wrote, and answers from the stand-in."""
    _, state = apiserver
    backend = _backend(tmp_path, fake_kind, keep=False)
    cluster = backend.start()
    assert cluster.kubernetes_version() == GIT_VERSION
    assert state.matching("GET", "/version")
    info = backend.info()
    assert (info.backend, info.kubernetes_version, info.node_image, info.kind_version) == (
        "kind", GIT_VERSION, NODE_IMAGE.image, NODE_IMAGE.kind_version)
    assert backend.gateway_endpoint("canary") == Endpoint("127.0.0.1", BASE + 2)


def test_stop_deletes_the_created_cluster(tmp_path: Path, fake_kind: FakeKind,
                                          apiserver: tuple[str, ServerState]) -> None:
    """stop() runs `kind delete cluster --name N --kubeconfig <file>` for a cluster this run created."""
    backend = _backend(tmp_path, fake_kind, keep=False)
    backend.start()
    backend.stop()
    kubeconfig = _kubeconfig(tmp_path)
    assert fake_kind.calls()[-1] == ["delete", "cluster", "--name", NAME, "--kubeconfig", kubeconfig]
    transcript = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert [e["argv"][1:] for e in transcript] == fake_kind.calls()
    assert {e["backend"] for e in transcript} == {"kind"}


def test_stop_keeps_the_cluster_when_asked(tmp_path: Path, fake_kind: FakeKind,
                                           apiserver: tuple[str, ServerState]) -> None:
    """With keep_cluster, stop() runs no `kind delete` even for a cluster it created."""
    backend = _backend(tmp_path, fake_kind, keep=True)
    backend.start()
    backend.stop()
    assert [c[0] for c in fake_kind.calls()] == ["get", "create"]


def test_stop_before_start_does_nothing(tmp_path: Path, fake_kind: FakeKind) -> None:
    """stop() on a backend that never created a cluster runs no command."""
    _backend(tmp_path, fake_kind, keep=False).stop()
    assert fake_kind.calls() == []


def test_failed_delete_is_an_environment_problem(tmp_path: Path, fake_kind: FakeKind,
                                                 apiserver: tuple[str, ServerState]) -> None:
    """A failing `kind delete cluster` is reported as EnvironmentProblem naming the cluster."""
    backend = _backend(tmp_path, fake_kind, keep=False)
    backend.start()
    fake_kind.fail_delete.touch()
    with pytest.raises(EnvironmentProblem, match=f"could not delete kind cluster {NAME}"):
        backend.stop()


def test_preflight_with_docker_daemon_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `docker` that cannot reach its daemon fails preflight with one line pointing at --backend simulated."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text("#!/bin/sh\n"
                      "echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                      "Is the docker daemon running?' >&2\n"
                      "exit 1\n")
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(EnvironmentProblem) as info:
        _backend(tmp_path, None, keep=False).preflight()
    message = str(info.value)
    assert "\n" not in message
    assert "Cannot connect to the Docker daemon" in message
    assert "--backend simulated" in message


def test_preflight_without_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no `docker` on PATH, preflight fails with one line pointing at --backend simulated."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(EnvironmentProblem) as info:
        _backend(tmp_path, None, keep=False).preflight()
    message = str(info.value)
    assert "\n" not in message
    assert "docker" in message and "--backend simulated" in message
    assert not (tmp_path / "t.jsonl").exists()  # nothing was run
