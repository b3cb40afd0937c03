"""The kind cluster configuration: one node, both ingress gateways reachable from the host."""

from __future__ import annotations

from typing import Any

from multirev.plan import NODE_PORTS


def host_ports(base: int) -> dict[str, dict[str, int]]:
    """Host ports for each revision's gateway: base+0/1 (stable http/https), base+2/3 (canary)."""
    return {"stable": {"http": base, "https": base + 1}, "canary": {"http": base + 2, "https": base + 3}}


def cluster_config(node_image: str, host_port_base: int) -> dict[str, Any]:
    """kind.x-k8s.io/v1alpha4 Cluster (kind@v0.32.0:pkg/apis/config/v1alpha4/types.go); kind decodes it
    strictly, so only known fields appear. extraPortMappings map each gateway's fixed NodePort to the host."""
    mappings = []
    hosts = host_ports(host_port_base)
    for role, ports in NODE_PORTS.items():
        for scheme, node_port in ports.items():
            mappings.append({"containerPort": node_port, "hostPort": hosts[role][scheme],
                             "listenAddress": "127.0.0.1", "protocol": "TCP"})
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "nodes": [{"role": "control-plane", "image": node_image, "extraPortMappings": mappings}],
    }
