"""etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK as processes in the run's namespace.

All of them listen on 127.0.0.1 inside the namespace. KWOK fakes one node whose pods become
Running/Ready with an IP from the node's podCIDR, which is a local range of the namespace.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from multirev.backends.local.certs import Pki, make_pki, write_kubeconfig
from multirev.backends.local.processes import Managed, Supervisor
from multirev.errors import EnvironmentProblem

POD_CIDR = "10.244.0.0/16"
NODE_POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # first address of the Service range: the `kubernetes` Service
APISERVER_PORT = 6443
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
NODE_NAME = "kwok-node-0"
# Only variables a process needs; proxies and cluster hints from the host never leak in.
_PASS_ENV = ("PATH", "HOME", "LANG", "TZ")


def base_env(**extra: str) -> dict[str, str]:
    return {**{k: os.environ[k] for k in _PASS_ENV if k in os.environ}, **extra}


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kwok: Path
    kwok_stages: list[Path]
    kube_proxy: Path | None = None  # with a data plane: Services' ClusterIPs answer, as on a node


def etcd_argv(binary: Path, data_dir: Path) -> list[str]:
    # server/embed/config.go@v3.6.5: flags; --unsafe-no-fsync is fine for a store that dies with the run.
    client = f"http://127.0.0.1:{ETCD_CLIENT_PORT}"
    peer = f"http://127.0.0.1:{ETCD_PEER_PORT}"
    return [str(binary), "--name", "local", "--data-dir", str(data_dir),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"local={peer}", "--unsafe-no-fsync", "--log-level", "warn"]


def audit_policy(users: tuple[str, ...]) -> dict:
    """Metadata (who, verb, resource, namespace, name, decision; no bodies) for the requests of `users` only
    (k8s.io/apiserver@v0.35.3 pkg/apis/audit/v1/types.go Policy, PolicyRule.Users; rules apply in order)."""
    return {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
            "rules": [{"level": "Metadata", "users": list(users)}, {"level": "None"}]}


def audit_argv(policy: Path, log: Path) -> list[str]:
    # cmd/kube-apiserver/app/options@v1.35.4 (k8s.io/apiserver pkg/server/options/audit.go): the log backend
    # writes one JSON event per line, blocking, so an event is on disk once its request has been answered.
    return [f"--audit-policy-file={policy}", f"--audit-log-path={log}", "--audit-log-format=json",
            "--audit-log-mode=blocking", "--audit-log-maxbackup=0"]


def apiserver_argv(binary: Path, pki: Pki) -> list[str]:
    # cmd/kube-apiserver/app/options@v1.35.4. Aggregator routing makes admission webhooks dial a
    # Service's endpoint (pod IP:targetPort) instead of its ClusterIP, which nothing would answer here.
    # The `kubernetes` Service's endpoint reconciler is off: its endpoint would be loopback, which
    # Endpoints validation refuses.
    return [str(binary),
            f"--etcd-servers=http://127.0.0.1:{ETCD_CLIENT_PORT}",
            "--bind-address=127.0.0.1", f"--secure-port={APISERVER_PORT}", "--advertise-address=127.0.0.1",
            f"--tls-cert-file={pki.serving_cert}", f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--service-account-key-file={pki.sa_pub}", f"--service-account-signing-key-file={pki.sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=RBAC", "--enable-aggregator-routing=true",
            "--endpoint-reconciler-type=none", "--allow-privileged=true", "--profiling=false"]


def controller_manager_argv(binary: Path, pki: Pki, kubeconfig: Path) -> list[str]:
    # cmd/kube-controller-manager/app/options@v1.35.4; --secure-port=0 serves nothing. The admin client
    # certificate (system:masters) covers every controller, so no per-controller credentials. All default
    # controllers run (node-lifecycle removes the not-ready taint TaintNodesByCondition puts on a new node),
    # except taint-based eviction: a fake node has nothing to evict for.
    return [str(binary), f"--kubeconfig={kubeconfig}", "--leader-elect=false", "--secure-port=0",
            f"--service-account-private-key-file={pki.sa_key}", f"--root-ca-file={pki.ca_cert}",
            "--use-service-account-credentials=false", "--controllers=*,-taint-eviction-controller",
            "--profiling=false"]


def scheduler_argv(binary: Path, kubeconfig: Path) -> list[str]:
    # cmd/kube-scheduler/app/options@v1.35.4
    return [str(binary), f"--kubeconfig={kubeconfig}", "--leader-elect=false", "--secure-port=0",
            "--profiling=false"]


def kwok_argv(binary: Path, kubeconfig: Path, stages: list[Path]) -> list[str]:
    # kwok@v0.8.0: pkg/kwok/cmd/root.go flags. It has no built-in stages (it exits "no stages found"), so
    # kwokctl's defaults are passed (kustomize/stage/fast/kustomization.yaml). The lease-based heartbeat
    # needs --node-lease-duration-seconds, as kwokctl sets it (pkg/kwokctl/runtime/cluster.go), or the
    # node-lifecycle controller marks the node unreachable. Without --server-address or --node-port kwok
    # opens no port. --node-ip is the node's InternalIP: loopback, so nothing dials out for it.
    argv = [str(binary), f"--kubeconfig={kubeconfig}", f"--manage-single-node={NODE_NAME}",
            "--node-lease-duration-seconds=40", "--node-ip=127.0.0.1"]
    for stage in stages:
        argv.append(f"--config={stage}")
    return argv


def kube_proxy_argv(binary: Path, kubeconfig: Path) -> list[str]:
    # cmd/kube-proxy/app/options.go@v1.35.4. iptables mode in the run's namespace, where pod traffic is routed:
    # a pod's request to a ClusterIP is DNATed to a ready endpoint, as on a node. Conntrack sizes and timeouts
    # are left alone (0), health and metrics on loopback.
    return [str(binary), f"--kubeconfig={kubeconfig}", f"--hostname-override={NODE_NAME}", "--proxy-mode=iptables",
            f"--cluster-cidr={POD_CIDR}", "--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0s",
            "--conntrack-tcp-timeout-close-wait=0s", "--healthz-bind-address=127.0.0.1:10256",
            "--metrics-bind-address=127.0.0.1:10249", "--iptables-min-sync-period=0s"]


def node_manifest(kubelet_version: str) -> dict:
    # kwok@v0.8.0: kwok never creates nodes (kwokctl does, from kustomize/kwokctl/resource/node.yaml);
    # node-initialize fills in the rest of the status and keeps what is set. Pod IPs come from
    # spec.podCIDRs (pod_controller.go). The kubelet version stands for the same release as the control
    # plane, as on kind: istiod's injector reads it to decide on native sidecars
    # (istio@1.30.3:pkg/kube/inject/webhook.go, minor >= 33), and KWOK's default ("kwok-v0.8.0") does not parse.
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NODE_NAME, "annotations": {"kwok.x-k8s.io/node": "fake"},
                     "labels": {"kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux",
                                "kubernetes.io/arch": "amd64", "type": "kwok"}},
        "spec": {"podCIDR": NODE_POD_CIDR, "podCIDRs": [NODE_POD_CIDR]},
        "status": {"nodeInfo": {"kubeletVersion": kubelet_version, "kubeProxyVersion": kubelet_version,
                                "architecture": "amd64", "operatingSystem": "linux"},
                   "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                   "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"}},
    }


@dataclass
class ControlPlane:
    supervisor: Supervisor
    prefix: list[str]
    folder: Path
    binaries: Binaries
    pki: Pki | None = None
    kubeconfig: Path | None = None  # for processes inside the namespace
    audit_users: tuple[str, ...] = ()  # whose requests the API server logs to `audit_log`
    audit_log: Path | None = None

    def start_store_and_apiserver(self) -> None:
        self.pki = make_pki(self.folder / "pki", SERVICE_IP)
        self.kubeconfig = write_kubeconfig(self.folder / "inside.kubeconfig", self.pki,
                                           f"https://127.0.0.1:{APISERVER_PORT}")
        self._start("etcd", etcd_argv(self.binaries.etcd, self.folder / "etcd"))
        argv = apiserver_argv(self.binaries.kube_apiserver, self.pki)
        if self.audit_users:
            assert self.audit_log is not None, "audit_users needs audit_log"
            policy = self.folder / "audit-policy.yaml"
            policy.write_text(yaml.safe_dump(audit_policy(self.audit_users)))
            argv += audit_argv(policy, self.audit_log)
        self._start("kube-apiserver", argv)

    def start_controllers(self) -> None:
        assert self.pki is not None and self.kubeconfig is not None
        self._start("kube-controller-manager",
                    controller_manager_argv(self.binaries.kube_controller_manager, self.pki, self.kubeconfig))
        self._start("kube-scheduler", scheduler_argv(self.binaries.kube_scheduler, self.kubeconfig))
        self._start("kwok", kwok_argv(self.binaries.kwok, self.kubeconfig, self.binaries.kwok_stages))
        if self.binaries.kube_proxy is not None:
            self._start("kube-proxy", kube_proxy_argv(self.binaries.kube_proxy, self.kubeconfig))

    def _start(self, name: str, argv: list[str]) -> Managed:
        return self.supervisor.start(name, [*self.prefix, *argv], env=base_env(), cwd=self.folder)

    def check_alive(self) -> None:
        for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kube-proxy"):
            managed = self.supervisor.get(name)
            if managed is not None and not managed.alive():
                raise EnvironmentProblem(f"{name} exited ({managed.proc.returncode}): {managed.tail()}")


def readyz(session: requests.Session, url: str) -> tuple[bool, str]:
    try:
        response = session.get(f"{url}/readyz", timeout=5)
    except requests.RequestException as exc:
        return False, f"{type(exc).__name__}: {str(exc)[-160:]}"
    return response.status_code == 200, f"HTTP {response.status_code} {response.text[:120]}"
