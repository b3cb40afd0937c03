"""Self-tests of the local backend: they need root, iproute2 and the built binaries.

Without them the tests are skipped with the reason, except under CI=true, where `.ci/run` builds the
binaries first and a missing one is a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from multirev.backends.local import build
from multirev.backends.local.backend import LocalBackend, LocalOptions, leftovers
from multirev.clock import WallClock
from multirev.commands import RecordingRunner, SubprocessRunner, Transcript
from multirev.plan import MeshPlan
from multirev.profile import load_profile

PROFILE = "local-dev"  # the pair whose modules the module proxy serves here (docs/backends.md)


def local_versions() -> list[str]:
    profile = load_profile(PROFILE)
    return sorted({str(profile.stable.version), str(profile.canary.version)})


def unavailable(istio_versions: list[str]) -> str | None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return "the local backend needs root and iproute2"
    missing = [f"{r.component} {r.version}" for r in build.recipes_for(istio_versions)
               if not build.is_built(r, build.default_bin_cache())]
    if missing:
        return f"not built: {', '.join(missing)} (run ./run build-local --profile {PROFILE})"
    return None


def require(istio_versions: list[str]) -> None:
    reason = unavailable(istio_versions)
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must exercise the local backend, but {reason}", pytrace=False)
    pytest.skip(reason)


def nothing_left(run_id: str) -> dict[str, list[str]]:
    """What the run `run_id` left behind (other runs may be going on in parallel)."""
    return {what: items for what, items in leftovers(run_id).items() if items}


@pytest.fixture
def make_backend(tmp_path: Path) -> Iterator:
    made: list[LocalBackend] = []

    def make(istio_versions: list[str], run_id: str = "selftest") -> LocalBackend:
        require(istio_versions)
        runner = RecordingRunner(SubprocessRunner(), Transcript(tmp_path / "transcript.jsonl"), "local")
        backend = LocalBackend(runner, WallClock(), LocalOptions(
            run_id=run_id, worker=os.environ.get("PYTEST_XDIST_WORKER", "main"), istio_versions=istio_versions,
            bin_cache=build.default_bin_cache(), work_dir=tmp_path / "work"))
        backend.preflight()
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.stop()


def local_backend(work: Path, run_id: str, plan: MeshPlan | None = None) -> LocalBackend:
    """A local backend for one self-test module (its transcript in `work`); with a plan, its gateways are known."""
    runner = RecordingRunner(SubprocessRunner(), Transcript(work / "transcript.jsonl"), "local")
    services = {p.role: (p.plane.namespace, p.gateway_name) for p in plan.planes} if plan else {}
    return LocalBackend(runner, WallClock(), LocalOptions(
        run_id=run_id, worker=os.environ.get("PYTEST_XDIST_WORKER", "main"), istio_versions=local_versions(),
        bin_cache=build.default_bin_cache(), work_dir=work, gateway_services=services))


def sigint_reaches_children() -> None:
    """A child started next gets Ctrl-C (SIGINT) as a terminal would deliver it. A shell without job control starts
    a background job (`.ci/run ... &`) with SIGINT ignored, children inherit that, and a Python child then never
    raises KeyboardInterrupt: the interrupt tests would see the run finish as if nothing had happened. A handled
    signal is reset to its default at exec, so handling it here is enough."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
