"""The pinned Helm CLI for kind and existing clusters: downloaded once, verified against a sha256 pinned here.

The local backend builds the same version from its Go module (multirev/backends/local/pins.py HELM).
The sums are Helm's published `helm-<version>-<os>-<arch>.tar.gz.sha256sum` files, as Argo CD copies them into
its tree (argoproj/argo-cd: hack/installers/checksums/helm-v4.3.0-*.tar.gz.sha256, written by
add-helm-checksums.sh from those files). They are pinned, not fetched, so a changed archive is refused.
The archive holds `<os>-<arch>/helm`.
"""

from __future__ import annotations

import platform
import tarfile
import tempfile
from pathlib import Path

from multirev.cachelock import cache_entry_lock
from multirev.download import download_pinned
from multirev.errors import EnvironmentProblem, UsageError

HELM_VERSION = "v4.3.0"
DEFAULT_HELM_MIRROR = "https://get.helm.sh"  # helm@v4.3.0: scripts/get-helm-4 (HELM_DIST, DOWNLOAD_URL)
DOWNLOAD_LOCK_TIMEOUT = 600.0
SHA256 = {
    "linux-amd64": "86584a54def73570558f66f5111cc53dfed56689637ae32c1201205d494f54fb",
    "linux-arm64": "31c5794dd55c66a51e6b7d2e2ac7a114ae8b1de41ff1d9ba51748ac973b06a08",
    "darwin-amd64": "347a784877e0e20eac865e8d1c36a80f6bb0861d6f29abd34defb6570ef95d92",
    "darwin-arm64": "d3870437e1e95b67f8edbde964156c84a26503f560821d40c542441658934fba",
}


def platform_name() -> str:
    system = platform.system().lower()
    arches = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
    name = f"{system}-{arches.get(platform.machine().lower(), platform.machine().lower())}"
    if name not in SHA256:
        raise UsageError(f"--installer helm: no pinned Helm {HELM_VERSION} for {name} (pinned: {', '.join(SHA256)})")
    return name


def archive_name(name: str) -> str:
    return f"helm-{HELM_VERSION}-{name}.tar.gz"


def ensure_helm(*, cache: Path, mirror: str = DEFAULT_HELM_MIRROR) -> Path:
    """The helm binary in the cache: the archive downloaded (or copied from a mirror directory), its sha256
    checked against the pin, and `<os>-<arch>/helm` taken out of it."""
    name = platform_name()
    target = cache / f"helm-{HELM_VERSION}" / "helm"
    if target.exists():
        return target
    with cache_entry_lock(target, timeout=DOWNLOAD_LOCK_TIMEOUT, what=f"downloading Helm {HELM_VERSION}"):
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            archive = download_pinned(f"{mirror.rstrip('/')}/{archive_name(name)}", SHA256[name],
                                      Path(tmp) / archive_name(name))
            with tarfile.open(archive) as tar:
                member = f"{name}/helm"
                try:
                    tar.extract(member, tmp, filter="data")
                except KeyError as exc:
                    raise EnvironmentProblem(f"{archive_name(name)} holds no {member}") from exc
            extracted = Path(tmp) / member
            extracted.chmod(0o755)
            extracted.rename(target)
    return target
