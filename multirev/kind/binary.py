"""The pinned kind binary: downloaded once per version, verified against its .sha256sum."""

from __future__ import annotations

import platform
from pathlib import Path

from multirev.cachelock import cache_entry_lock
from multirev.download import download_verified
from multirev.errors import UsageError

# kind@v0.32.0:site/layouts/index.redirects sends /dl/<ver>/... to the GitHub release assets;
# kind@v0.32.0:hack/release/build/cross.sh writes <binary>.sha256sum next to each binary.
DEFAULT_KIND_MIRROR = "https://kind.sigs.k8s.io/dl"
DOWNLOAD_LOCK_TIMEOUT = 600.0


def binary_name() -> str:
    system = platform.system().lower()
    arches = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
    machine = arches.get(platform.machine().lower())
    if system not in ("linux", "darwin") or machine is None:
        raise UsageError(f"kind publishes no binary for {system}/{platform.machine()}")
    return f"kind-{system}-{machine}"


def ensure_kind(version: str, *, cache: Path, mirror: str = DEFAULT_KIND_MIRROR) -> Path:
    name = binary_name()
    target = cache / f"kind-{version}" / name
    if target.exists():
        return target
    url = f"{mirror.rstrip('/')}/{version}/{name}"
    with cache_entry_lock(target, timeout=DOWNLOAD_LOCK_TIMEOUT, what=f"downloading kind {version}"):
        if not target.exists():  # another process may have fetched it while we waited
            download_verified(url, url + ".sha256sum", target)
            target.chmod(0o755)
    return target
