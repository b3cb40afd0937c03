"""Bad input and a missing Docker give one clear line, early, and create nothing."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
import yaml

from multirev.backends.kube import unreachable_cause
from multirev.paths import PROJECT_ROOT


def run_pytest(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, float]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider",
                           "--reports-dir", str(tmp_path / "reports"), "--istio-cache", str(tmp_path / "cache"),
                           *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("ERROR:")]


def test_kind_without_docker_fails_fast_and_creates_nothing(tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    docker = fake_bin / "docker"
    docker.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2\n"
                      "exit 1\n")
    docker.chmod(0o755)
    code, output, seconds = run_pytest(tmp_path, env={"PATH": f"{fake_bin}:{os.environ['PATH']}"})
    assert code != 0 and seconds < 10
    [line] = error_lines(output)
    assert "running Docker engine" in line and "--backend simulated" in line
    assert not (tmp_path / "cache").exists() and not (tmp_path / "reports" / "work").exists()


def test_kind_without_docker_installed(tmp_path: Path) -> None:
    python_dir = str(Path(sys.executable).parent)
    code, output, _ = run_pytest(tmp_path, env={"PATH": f"{python_dir}:/nonexistent"})
    [line] = error_lines(output)
    assert code != 0 and "no `docker` command is installed" in line


@pytest.mark.parametrize(("args", "expected"), [
    (["--backend", "simulated", "--istio-stable", "1.18.5", "--istio-canary", "1.30.3"],
     "no Kubernetes version runs both"),
    (["--backend", "simulated", "--istio-canary", "1.99.0"], "unknown Istio version 1.99.0"),
    (["--backend", "simulated", "--istio-canary", "banana"], "'banana' is not an Istio version"),
    (["--backend", "existing", "--kubeconfig", "/nonexistent/kubeconfig"], "no such file"),
    (["--backend", "docker-desktop"], "--backend must be one of"),
    (["--backend", "simulated", "--sim-fault", "no-such-fault"], "unknown --sim-fault no-such-fault"),
    (["--backend", "kind", "--sim-fault", "istiod-never-ready"], "--sim-fault works only with --backend simulated"),
    (["--backend", "simulated", "--layout", "diagonal"], "--layout must be one of"),
    (["--backend", "simulated", "--installer", "kustomize"], "--installer must be one of istioctl, helm"),
    (["--backend", "simulated", "--installer", "helm"], "the simulated backend models istioctl installs only"),
    (["--backend", "simulated", "--installed", "stable=1-30-3,canary=1-31-0"],
     "--installed certifies revisions already running on a cluster of yours; the simulated backend starts an empty "
     "one: use --backend existing"),
    (["--backend", "kind", "--installed", "stable=1-30-3,canary=1-31-0"],
     "the kind backend starts an empty one: use --backend existing"),
    (["--backend", "existing", "--installed", "stable=1-30-3"], "--installed stable=1-30-3: names no canary revision"),
    (["--backend", "existing", "--installed", "stable=a,canary=b", "--installer", "helm"],
     "--installed certifies revisions that are already installed; --installer does not apply"),
])
def test_bad_input_is_one_clear_line(tmp_path: Path, args: list[str], expected: str) -> None:
    code, output, _ = run_pytest(tmp_path, *args)
    [line] = error_lines(output)
    assert code != 0 and expected in line


@pytest.mark.parametrize(("args", "expected"), [
    (["--kind-image", "not an image"], "--kind-image 'not an image' is not a kind node image"),
    (["--kind-image", "kindest/node:v1.20.2"], "--kind-image kindest/node:v1.20.2 runs Kubernetes 1.20, which Istio"),
])
def test_a_kind_image_that_cannot_serve_is_one_clear_line(tmp_path: Path, args: list[str], expected: str) -> None:
    """Issue 27: a tag without a Kubernetes release gave an IndexError; one the pair does not support ran anyway."""
    code, output, _ = run_pytest(tmp_path, "--backend", "simulated", *args)
    [line] = error_lines(output)
    assert code != 0 and expected in line


def test_a_reports_dir_that_cannot_be_a_folder_is_one_clear_line(tmp_path: Path) -> None:
    """Issue 27: a file named by --reports-dir (or standing where a folder of it would go) gave a traceback."""
    a_file = tmp_path / "a-file"
    a_file.write_text("mine\n")
    for reports, expected in ((a_file, f"--reports-dir {a_file} is a file, not a folder"),
                              (a_file / "sub", f"--reports-dir {a_file}/sub: {a_file} is a file, not a folder")):
        proc = subprocess.run([sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider", "--backend",
                               "simulated", "--reports-dir", str(reports)], cwd=PROJECT_ROOT, capture_output=True,
                              text=True, timeout=60)
        [line] = error_lines(proc.stdout + proc.stderr)
        assert proc.returncode != 0 and expected in line
    assert a_file.read_text() == "mine\n"


def test_bad_kubeconfig_is_one_clear_line(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("clusters: [\n")
    code, output, _ = run_pytest(tmp_path, "--backend", "existing", "--kubeconfig", str(kubeconfig))
    [line] = error_lines(output)
    assert code != 0 and f"cannot use {kubeconfig}" in line


@pytest.mark.parametrize("version", [(3, 11, 3), (3, 10, 14)])
def test_run_refuses_python_before_3_11_4(tmp_path: Path, version: tuple[int, int, int]) -> None:
    """tarfile's extraction filters came in 3.11.4: ./run refuses an older Python with one line, before
    touching .venv (this machine's own Python, 3.11.4 or newer, is what every other self-test runs on)."""
    fake = tmp_path / "python3"
    pretend = f"import sys; sys.version_info = {(*version, 'final', 0)!r}; "
    fake.write_text(f"""#!/bin/sh
if [ "$1" = --version ]; then echo "Python {'.'.join(map(str, version))}"; exit 0; fi
if [ "$1" = -c ]; then shift; code="$1"; shift; exec {sys.executable} -c "{pretend}$code" "$@"; fi
exit 3
""")
    fake.chmod(0o755)
    proc = subprocess.run([str(PROJECT_ROOT / "run"), "lint", "--help"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHON": str(fake)}, cwd=tmp_path)
    found = ".".join(map(str, version))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: Python 3.11.4 or newer is needed (found: Python {found}); set PYTHON=..."


def _kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "unreachable.kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return path


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.fixture
def plain_http_port() -> Iterator[int]:
    """A port answering plain HTTP, so a TLS client's handshake fails."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("case", ["refused", "tls", "timeout"])
def test_unreachable_cluster_names_the_server_and_the_cause(tmp_path: Path, case: str, request: pytest.FixtureRequest,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """--backend existing on a cluster it cannot reach: one line naming the server URL and why."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    port = {"refused": _closed_port, "tls": lambda: request.getfixturevalue("plain_http_port"),
            "timeout": lambda: request.getfixturevalue("silent_port")}[case]()
    server = f"https://127.0.0.1:{port}"
    code, output, _ = run_pytest(tmp_path, "--backend", "existing", "--kubeconfig", str(_kubeconfig(tmp_path, server)))
    [line] = error_lines(output)
    cause = {"refused": "connection refused", "tls": "TLS handshake failed", "timeout": "timed out"}[case]
    assert code != 0 and f"cannot reach the cluster at {server}" in line and cause in line, line


def test_a_host_name_that_does_not_resolve_is_named_as_dns() -> None:
    """The DNS case, classified from the exception urllib3 raises (no lookup leaves this machine)."""
    failure = urllib3.exceptions.NameResolutionError("api.cluster.example", None,  # type: ignore[arg-type]
                                                     socket.gaierror(-2, "Name or service not known"))
    wrapped = urllib3.exceptions.MaxRetryError(None, "/version", failure)  # type: ignore[arg-type]
    assert unreachable_cause(wrapped) == "the host name does not resolve (DNS)"


def test_relative_paths_mean_the_folder_the_user_typed_them_in(tmp_path: Path) -> None:
    """Issue 27: `./run` works from the repository, so `--profile-file mine.yaml` was "No such file" and
    `--reports-dir out` wrote into the repository. Both now mean the caller's folder."""
    profile = yaml.safe_load((PROJECT_ROOT / "multirev" / "profiles" / "current.yaml").read_text())
    profile["name"] = "mine"
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(profile))
    proc = subprocess.run([str(PROJECT_ROOT / "run"), "conformance", "--backend", "simulated", "-p",
                           "no:cacheprovider", "--profile-file", "mine.yaml", "--reports-dir", "out", "-q", "-k",
                           "test_control_plane_installed_and_ready"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items() if k != "MULTIREV_CALLER_DIR"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = (tmp_path / "out" / "conformance.json").read_text()
    assert '"mine"' in report


def test_run_help_lists_every_command(tmp_path: Path) -> None:
    """Issue 27: `./run --help` printed one usage line. Now every command with what it does, exit 0, before any
    set-up; an unknown command says so and shows the same list (exit 2)."""
    proc = subprocess.run([str(PROJECT_ROOT / "run"), "--help"], capture_output=True, text=True, timeout=30,
                          cwd=tmp_path)
    assert proc.returncode == 0
    for command in ("conformance", "selftest", "lint", "build-local", "probe-modules", "cleanup"):
        assert f"./run {command}" in proc.stdout, proc.stdout
    unknown = subprocess.run([str(PROJECT_ROOT / "run"), "bogus"], capture_output=True, text=True, timeout=60,
                             cwd=tmp_path)
    assert unknown.returncode == 2 and unknown.stderr.startswith("./run: unknown command 'bogus'\n./run conformance")
