"""A stand-in for the cluster DNS (CoreDNS's `kubernetes` plugin), inside the run's namespace.

Pods' resolv.conf names the cluster DNS Service address (network.py). Istio's DNS proxy in each
sidecar answers what istiod told it and forwards the rest here, and gateways' Envoys resolve DNS
clusters (the egress ServiceEntry's endpoint) here. It answers A queries the way CoreDNS does for a
cluster (coredns plugin/kubernetes, the records of the Kubernetes DNS specification,
kubernetes/dns docs/specification.md): `<service>.<namespace>.svc.cluster.local` is the Service's
ClusterIP, or for a headless Service its ready endpoints' addresses; anything else is NXDOMAIN.
Nothing is forwarded anywhere. It is a stand-in because CoreDNS is not built here.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from multirev.backends.local.netns import enter_netns
from multirev.backends.local.pods.network import CLUSTER_DNS_IP, CLUSTER_DOMAIN

TTL = 5  # short, like CoreDNS's default 5 s for cluster records
REFRESH = 1.0


class ClusterDns:
    def __init__(self, run_netns: str, records: Callable[[], dict[str, list[str]]]) -> None:
        self.run_netns = run_netns
        self.records = records  # fqdn (with the trailing dot) -> IPv4 addresses
        self._cache: dict[str, list[str]] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        # Records are fetched by a thread in the host's namespace: the API server is reached through the host's
        # loopback forwarder, which a thread inside the run's namespace cannot see.
        self._refresh()
        threading.Thread(target=self._refresh_loop, name="local-dns-records", daemon=True).start()
        self._thread = threading.Thread(target=self._serve, name="local-dns", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error

    def _refresh(self) -> None:
        # The API server may be going away at teardown: answer from what is known.
        with contextlib.suppress(Exception):
            self._cache = self.records()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(REFRESH):
            self._refresh()

    def _serve(self) -> None:
        try:
            enter_netns(self.run_netns)
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((CLUSTER_DNS_IP, 53))  # inside the Service range, a local route of the run's namespace
            sock.settimeout(0.5)
        except OSError as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        with sock:
            while not self._stop.is_set():
                try:
                    data, peer = sock.recvfrom(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                reply = self.answer(data)
                if reply is not None:
                    sock.sendto(reply, peer)

    def _lookup(self, name: str) -> list[str] | None:
        return self._cache.get(name.lower())

    def answer(self, data: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        name = question.name.to_text()
        addresses = self._lookup(name) if name.lower().endswith(f".{CLUSTER_DOMAIN}.") else None
        if addresses is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.A and addresses:
            response.answer.append(dns.rrset.from_text_list(question.name, TTL, dns.rdataclass.IN, dns.rdatatype.A,
                                                            addresses))
        return response.to_wire()  # a known name without A records (AAAA asked) is an empty NOERROR

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def service_records(services: list[dict], slices: list[dict]) -> dict[str, list[str]]:
    """fqdn -> addresses for Services (ClusterIP) and headless Services (ready endpoint addresses)."""
    ready: dict[tuple[str, str], list[str]] = {}
    for endpoint_slice in slices:
        meta = endpoint_slice["metadata"]
        service = (meta.get("labels") or {}).get("kubernetes.io/service-name")
        for endpoint in endpoint_slice.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready", True):
                ready.setdefault((meta["namespace"], service or ""), []).extend(endpoint.get("addresses") or [])
    records = {}
    for service in services:
        meta, spec = service["metadata"], service.get("spec") or {}
        fqdn = f"{meta['name']}.{meta['namespace']}.svc.{CLUSTER_DOMAIN}.".lower()
        cluster_ip = spec.get("clusterIP")
        if cluster_ip and cluster_ip != "None":
            records[fqdn] = [cluster_ip]
        else:
            records[fqdn] = sorted(set(ready.get((meta["namespace"], meta["name"]), [])))
    return records
