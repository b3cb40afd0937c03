"""Release downloads from a local HTTP mirror: verified, cached, refused on mismatch or no answer."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from multirev.errors import EnvironmentProblem, UsageError
from multirev.istio.release import archive_name, ensure_release
from multirev.istio.versions import IstioVersion
from multirev.kind.binary import binary_name, ensure_kind

VERSION = IstioVersion.parse("1.30.3")


def make_archive(version: IstioVersion) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in {"bin/istioctl": "#!/bin/sh\necho 1.30.3\n", "samples/README.md": "samples\n"}.items():
            data = text.encode()
            info = tarfile.TarInfo(f"istio-{version}/{name}")
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "mirror"
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()


class SlowHandler(http.server.SimpleHTTPRequestHandler):
    """Serves archives and binaries after a pause, so that two downloads surely overlap."""

    def do_GET(self) -> None:
        if not self.path.endswith((".sha256", ".sha256sum")):
            time.sleep(1.0)
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "mirror"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(SlowHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()


def publish(root: Path, data: bytes, checksum: str | None = None) -> None:
    folder = root / str(VERSION)
    folder.mkdir(parents=True, exist_ok=True)
    name = archive_name(VERSION)
    (folder / name).write_bytes(data)
    digest = checksum or hashlib.sha256(data).hexdigest()
    (folder / f"{name}.sha256").write_text(f"{digest} {name}\n")  # one space, as release-builder writes it


def test_verified_archive_is_unpacked_and_cached(mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, root = mirror
    publish(root, make_archive(VERSION))
    release = ensure_release(VERSION, mirror=url, cache=tmp_path / "cache")
    assert release.istioctl.read_text().startswith("#!/bin/sh")
    assert release.samples.is_dir()
    (root / str(VERSION)).rename(root / "gone")  # a second call is served from the cache
    assert ensure_release(VERSION, mirror=url, cache=tmp_path / "cache") == release


def test_directory_mirror_works(mirror: tuple[str, Path], tmp_path: Path) -> None:
    _, root = mirror
    publish(root, make_archive(VERSION))
    assert ensure_release(VERSION, mirror=str(root), cache=tmp_path / "c").istioctl.exists()


def test_checksum_mismatch_keeps_nothing(mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, root = mirror
    publish(root, make_archive(VERSION), checksum="0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(EnvironmentProblem, match="sha256 mismatch") as caught:
        ensure_release(VERSION, mirror=url, cache=cache)
    assert "\n" not in str(caught.value)
    assert not any(p.is_file() and not p.name.endswith(".lock") for p in cache.rglob("*"))


def test_missing_version_and_unreachable_mirror(mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = mirror
    with pytest.raises(UsageError, match="HTTP 404"):
        ensure_release(VERSION, mirror=url, cache=tmp_path / "c")
    with pytest.raises(EnvironmentProblem, match="cannot reach 127.0.0.1:9"):
        ensure_release(VERSION, mirror="http://127.0.0.1:9", cache=tmp_path / "c")


def test_kind_binary_verified_with_two_space_checksum(mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, root = mirror
    name = binary_name()
    folder = root / "v0.32.0"
    folder.mkdir(parents=True)
    (folder / name).write_bytes(b"kind-binary")
    (folder / f"{name}.sha256sum").write_text(f"{hashlib.sha256(b'kind-binary').hexdigest()}  {name}\n")
    path = ensure_kind("v0.32.0", cache=tmp_path / "c", mirror=url)
    assert path.read_bytes() == b"kind-binary" and path.stat().st_mode & 0o111


def test_archive_names_per_platform() -> None:
    assert archive_name(VERSION, "Linux", "x86_64") == "istio-1.30.3-linux-amd64.tar.gz"
    assert archive_name(VERSION, "Darwin", "arm64") == "istio-1.30.3-osx-arm64.tar.gz"
    assert archive_name(IstioVersion.parse("1.18.5"), "Darwin", "x86_64") == "istio-1.18.5-osx.tar.gz"


FILL_CACHE = """
import sys
from pathlib import Path
from multirev.istio.release import ensure_release
from multirev.istio.versions import IstioVersion
from multirev.kind.binary import ensure_kind
cache, mirror = Path(sys.argv[1]), sys.argv[2]
print(ensure_release(IstioVersion.parse("1.30.3"), mirror=mirror, cache=cache).istioctl)
print(ensure_kind("v0.33.0", cache=cache, mirror=mirror))
"""


def test_two_processes_fill_one_cache(slow_mirror: tuple[str, Path], tmp_path: Path) -> None:
    """Two pytest workers on an empty cache: both get the release and kind, neither trips over the other."""
    url, root = slow_mirror
    publish(root, make_archive(VERSION))
    name = binary_name()
    (root / "v0.33.0").mkdir()
    binary = b"#!/bin/sh\n"
    (root / "v0.33.0" / name).write_bytes(binary)
    (root / "v0.33.0" / f"{name}.sha256sum").write_text(f"{hashlib.sha256(binary).hexdigest()}  {name}\n")
    cache = tmp_path / "cache"
    workers = [subprocess.Popen([sys.executable, "-c", FILL_CACHE, str(cache), url], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [worker.communicate(timeout=60) for worker in workers]
    for worker, (out, err) in zip(workers, results, strict=True):
        assert worker.returncode == 0, err
        assert out.split() == [str(cache / "istio-1.30.3" / "bin" / "istioctl"),
                               str(cache / "kind-v0.33.0" / name)]
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == ["istio-1.30.3", "kind-v0.33.0"]
