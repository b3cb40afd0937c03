"""Fetch a file from a URL or a local mirror directory, and verify it against a published sha256."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import requests

from multirev.errors import EnvironmentProblem, UsageError

TIMEOUT = (10, 120)  # connect, read


def is_url(location: str) -> bool:
    return urlparse(location).scheme in ("http", "https")


def fetch_text(location: str) -> str:
    if not is_url(location):
        try:
            return Path(location).read_text()
        except OSError as exc:
            raise EnvironmentProblem(f"cannot read {location}: {exc.strerror}") from exc
    response = _get(location, stream=False)
    return response.text


def fetch_file(location: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if not is_url(location):
        try:
            shutil.copyfile(location, target)
        except OSError as exc:
            raise EnvironmentProblem(f"cannot read {location}: {exc.strerror}") from exc
        return
    with _get(location, stream=True) as response, target.open("wb") as out:
        for chunk in response.iter_content(chunk_size=1 << 20):
            out.write(chunk)


def _get(url: str, *, stream: bool) -> requests.Response:
    try:
        response = requests.get(url, stream=stream, timeout=TIMEOUT)
    except requests.RequestException as exc:
        host = urlparse(url).netloc
        raise EnvironmentProblem(f"cannot reach {host} to download {url}: {type(exc).__name__}") from exc
    if response.status_code == 404:
        raise UsageError(f"not found (HTTP 404): {url}")
    if response.status_code != 200:
        raise EnvironmentProblem(f"download failed (HTTP {response.status_code}): {url}")
    return response


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_checksum(text: str, filename: str) -> str:
    """`<hex> <name>` (Istio: one space) or `<hex>  <name>` (kind, shasum: two spaces)."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].lstrip("*").rsplit("/", 1)[-1] == filename:
            return parts[0].lower()
        if len(parts) == 1 and len(parts[0]) == 64:
            return parts[0].lower()
    raise EnvironmentProblem(f"checksum file for {filename} names no sha256 for it")


def download_verified(location: str, checksum_location: str, target: Path) -> Path:
    """Download to a temporary file, verify against the published checksum file, then move into place."""
    return download_pinned(location, parse_checksum(fetch_text(checksum_location), target.name), target)


def download_pinned(location: str, expected: str, target: Path) -> Path:
    """Download to a temporary file, verify against a known sha256, then move into place; a mismatch keeps
    nothing."""
    with tempfile.TemporaryDirectory(dir=target.parent if target.parent.exists() else None) as tmp:
        partial = Path(tmp) / target.name
        fetch_file(location, partial)
        actual = sha256_of(partial)
        if actual != expected:
            raise EnvironmentProblem(
                f"sha256 mismatch for {location}: published {expected[:16]}..., got {actual[:16]}...; nothing kept"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(partial), target)
    return target
