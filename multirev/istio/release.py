"""Istio release archives: download, verify against the published .sha256, unpack and cache."""

from __future__ import annotations

import platform
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from multirev.cachelock import cache_entry_lock
from multirev.download import download_verified, is_url
from multirev.errors import EnvironmentProblem, UsageError
from multirev.istio.versions import IstioVersion

# istio@1.30.3:release/downloadIstioCandidate.sh
DEFAULT_MIRROR = "https://github.com/istio/istio/releases/download"


@dataclass(frozen=True)
class IstioRelease:
    version: IstioVersion
    root: Path

    @property
    def istioctl(self) -> Path:
        return self.root / "bin" / "istioctl"

    @property
    def samples(self) -> Path:
        return self.root / "samples"


def archive_name(version: IstioVersion, system: str | None = None, machine: str | None = None) -> str:
    """istio-<V>-<os>-<arch>.tar.gz; OS `linux` or `osx`, arch amd64/arm64/armv7
    (istio/release-builder pkg/build/archive.go). 1.18 built macOS amd64 only as plain `osx`."""
    system = (system or platform.system()).lower()
    machine = (machine or platform.machine()).lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "armv7"}.get(machine)
    if arch is None:
        raise UsageError(f"Istio publishes no archive for CPU '{machine}'")
    if system == "linux":
        osext = f"linux-{arch}"
    elif system == "darwin":
        osext = "osx-arm64" if arch == "arm64" else ("osx" if version.minor_line < (1, 19) else "osx-amd64")
    else:
        raise UsageError(f"the suite runs istioctl on Linux or macOS, not {system}")
    return f"istio-{version}-{osext}.tar.gz"


def location(mirror: str, version: IstioVersion, name: str) -> str:
    if is_url(mirror):
        return f"{mirror.rstrip('/')}/{version}/{name}"
    folder = Path(mirror)
    nested = folder / str(version) / name
    return str(nested if nested.exists() or not (folder / name).exists() else folder / name)


DOWNLOAD_LOCK_TIMEOUT = 900.0  # a release archive is ~30 MB; a slow mirror still finishes well within this


def ensure_release(version: IstioVersion, *, mirror: str = DEFAULT_MIRROR, cache: Path) -> IstioRelease:
    root = cache / f"istio-{version}"
    release = IstioRelease(version, root)
    if release.istioctl.exists():
        return release
    with cache_entry_lock(root, timeout=DOWNLOAD_LOCK_TIMEOUT, what=f"downloading Istio {version}"):
        if not release.istioctl.exists():  # another process may have filled it while we waited
            _download_release(version, mirror, cache, root)
    return release


def _download_release(version: IstioVersion, mirror: str, cache: Path, root: Path) -> None:
    name = archive_name(version)
    if root.exists():  # a folder without bin/istioctl is no release (emptied by hand?); we hold the lock
        shutil.rmtree(root)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        archive = download_verified(location(mirror, version, name), location(mirror, version, name + ".sha256"),
                                    Path(tmp) / name)
        with tarfile.open(archive) as tar:
            top = f"istio-{version}/"
            members = [m for m in tar.getmembers() if m.name.startswith(top)]
            if not members:
                raise EnvironmentProblem(f"{name} has no {top} folder")
            tar.extractall(tmp, members=members, filter="data")
        if not (Path(tmp) / f"istio-{version}" / "bin" / "istioctl").exists():
            raise EnvironmentProblem(f"{name} holds no bin/istioctl")
        (Path(tmp) / f"istio-{version}").rename(root)
