"""A network namespace per pod, wired to the run's namespace the way a CNI plugin would.

The run's namespace (R) holds the control plane. It gets one bridge with a link-local address, and
forwards between pods. Each pod gets a namespace of its own (P): a veth pair, `eth0` in P with the pod
IP KWOK assigned (/32), the other end on R's bridge, and a default route via the bridge address. In R
the pod's /32 is routed to the bridge in table `local`, where it beats R's `local 10.244.0.0/16 dev lo`
(netns.py): so traffic to a running pod's IP crosses a veth, as on a node, and Istio's capture rules see
it (they skip `lo`). The pod range stays local in R for istiod pods, which run there without a namespace
of their own. Nothing is routed out of R: it has no link but `lo` and this bridge.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from multirev.backends.local.netns import NETNS_DIR, NETNS_ETC, ip_command
from multirev.errors import EnvironmentProblem

BRIDGE = "mrbr0"
BRIDGE_ADDRESS = "169.254.1.1"  # link-local: never routed anywhere, only the pods' next hop
BRIDGE_MAC = "02:00:a9:fe:01:01"  # locally administered (the 02 bit), never seen outside the run
CLUSTER_DOMAIN = "cluster.local"
# kubelet's resolv.conf for ClusterFirst pods (pkg/kubelet/network/dns/dns.go@v1.35.4): the cluster DNS
# Service, the namespace's search list, ndots:5.
CLUSTER_DNS_IP = "10.96.0.10"


def _sysctl(netns: str, key: str, value: str) -> None:
    proc = subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-qw", f"{key}={value}"], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise EnvironmentProblem(f"sysctl {key}={value} in {netns} failed: {proc.stderr.strip()}")


@dataclass
class PodNetns:
    name: str  # the pod's network namespace
    veth: str  # R's end of its veth pair
    ip: str

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def apply_sysctls(self, pod: dict) -> None:
        """The pod's `securityContext.sysctls` of the network namespace (`net.*`), as the container runtime sets
        them in the pod's sandbox (kubernetes pkg/kubelet/kuberuntime/kuberuntime_sandbox.go@v1.35.4 passes them
        to the runtime). A Gateway API gateway's pod asks net.ipv4.ip_unprivileged_port_start=0 so that its proxy,
        uid 1337, binds port 80 itself (istio@1.30.3 manifests/charts/istio-control/istio-discovery/files/
        kube-gateway.yaml)."""
        for sysctl in ((pod.get("spec") or {}).get("securityContext") or {}).get("sysctls") or []:
            if str(sysctl.get("name", "")).startswith("net."):
                _sysctl(self.name, sysctl["name"], str(sysctl.get("value", "")))


class PodNetwork:
    """Creates and removes pod namespaces inside one run namespace; thread-safe."""

    def __init__(self, run_netns: str) -> None:
        self.run_netns = run_netns
        self.pods: dict[str, PodNetns] = {}  # pod IP -> its namespace
        self._next = 0
        self._lock = threading.Lock()
        self._bridge_up = False

    def setup_bridge(self) -> None:
        r = self.run_netns
        # A fixed MAC: a bridge without one takes the lowest of its ports' and changes it as pods come and go,
        # and pods still sending to the old one lose their next hop (seen: a gateway unreachable for minutes).
        ip_command("-n", r, "link", "add", BRIDGE, "address", BRIDGE_MAC, "type", "bridge")
        ip_command("-n", r, "addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", BRIDGE)
        ip_command("-n", r, "link", "set", BRIDGE, "up")
        _sysctl(r, "net.ipv4.ip_forward", "1")
        # Pods and their next hop share the bridge: no ICMP redirects telling a pod to go direct.
        _sysctl(r, "net.ipv4.conf.all.send_redirects", "0")
        _sysctl(r, f"net.ipv4.conf.{BRIDGE}.send_redirects", "0")
        self._bridge_up = True

    def add(self, ip: str, namespace: str, hosts: str = "") -> PodNetns:
        """A namespace for the pod with this IP, its resolv.conf as kubelet writes it for `namespace`."""
        with self._lock:
            if ip in self.pods:
                raise EnvironmentProblem(f"pod IP {ip} is already wired")
            self._next += 1
            pod = PodNetns(f"{self.run_netns}-p{self._next}", f"mrp{self._next}", ip)
            self.pods[ip] = pod
        etc = NETNS_ETC / pod.name
        etc.mkdir(parents=True, exist_ok=True)
        search = f"{namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}"
        (etc / "resolv.conf").write_text(f"search {search}\nnameserver {CLUSTER_DNS_IP}\noptions ndots:5\n")
        (etc / "hosts").write_text(f"127.0.0.1 localhost\n{ip} {hosts}\n" if hosts else "127.0.0.1 localhost\n")
        r, p = self.run_netns, pod.name
        ip_command("netns", "add", p)
        ip_command("-n", r, "link", "add", pod.veth, "type", "veth", "peer", "name", "eth0", "netns", p)
        ip_command("-n", r, "link", "set", pod.veth, "master", BRIDGE, "up")
        ip_command("-n", p, "addr", "add", f"{ip}/32", "dev", "eth0")
        ip_command("-n", p, "link", "set", "lo", "up")
        ip_command("-n", p, "link", "set", "eth0", "up")
        ip_command("-n", p, "route", "add", BRIDGE_ADDRESS, "dev", "eth0", "scope", "link")
        ip_command("-n", p, "route", "add", "default", "via", BRIDGE_ADDRESS, "dev", "eth0")
        ip_command("-n", r, "route", "add", f"{ip}/32", "dev", BRIDGE, "table", "local")
        return pod

    def remove(self, ip: str) -> None:
        with self._lock:
            pod = self.pods.pop(ip, None)
        if pod is None:
            return
        errors = []
        for args in (("-n", self.run_netns, "route", "del", f"{ip}/32", "dev", BRIDGE, "table", "local"),
                     ("-n", self.run_netns, "link", "del", pod.veth), ("netns", "delete", pod.name)):
            try:
                if args[0] != "netns" or (NETNS_DIR / pod.name).exists():
                    ip_command(*args)
            except EnvironmentProblem as exc:
                errors.append(str(exc))
        shutil.rmtree(NETNS_ETC / pod.name, ignore_errors=True)
        # A veth goes with either end's namespace; a leftover route or link is only an error if still there.
        if errors and (NETNS_DIR / pod.name).exists():
            raise EnvironmentProblem("; ".join(errors))

    def remove_all(self) -> None:
        for ip in list(self.pods):
            self.remove(ip)


def pod_namespaces_of(run_netns: str) -> list[str]:
    """Pod namespaces a run namespace's data plane made (for leftover checks and reaping)."""
    return sorted(p.name for p in NETNS_DIR.glob(f"{run_netns}-p*")) if NETNS_DIR.is_dir() else []


def etc_folder(name: str) -> Path:
    return NETNS_ETC / name
