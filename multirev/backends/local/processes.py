"""Processes the local backend starts, and the guarantee that each one is stopped.

Each process gets its own session (so a stop reaches its children too), a log file, and
PR_SET_PDEATHSIG=SIGKILL: if the test process dies without tearing down (SIGKILL, a crash), the
kernel kills the children as well. Normal teardown, a failed test and Ctrl-C all go through stop_all().
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from multirev.errors import EnvironmentProblem

PR_SET_PDEATHSIG = 1  # linux/prctl.h
STOP_GRACE = 10.0


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Managed:
    name: str
    proc: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 5) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])


class Supervisor:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._procs: dict[str, Managed] = {}
        self._lock = threading.Lock()

    def start(self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path | None = None,
              log_owner: int | None = None) -> Managed:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with self._lock:
            if name in self._procs and self._procs[name].alive():
                raise EnvironmentProblem(f"process {name} is already running")
            with log.open("ab") as out:
                if log_owner is not None:
                    # Envoy reopens /dev/stdout for its access log as the proxy's user: the file must be theirs.
                    os.chown(log, log_owner, log_owner)
                try:
                    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=env, cwd=cwd, start_new_session=True,
                                            preexec_fn=_die_with_parent)
                except OSError as exc:
                    raise EnvironmentProblem(f"cannot start {name} ({argv[0]}): {exc.strerror}") from exc
            managed = Managed(name, proc, log)
            self._procs[name] = managed
            return managed

    def get(self, name: str) -> Managed | None:
        return self._procs.get(name)

    def running(self) -> list[str]:
        return [name for name, m in self._procs.items() if m.alive()]

    def stop(self, name: str) -> None:
        with self._lock:
            managed = self._procs.pop(name, None)
        if managed is not None:
            _terminate(managed.proc)

    def stop_all(self) -> None:
        """Newest first (istiods and KWOK before the API server, etcd last)."""
        while True:
            with self._lock:
                if not self._procs:
                    return
                name = list(self._procs)[-1]
            self.stop(name)


def _terminate(proc: subprocess.Popen) -> None:
    """Stop the process's whole session (its own process group): the leader may be gone while its children still
    run (an nginx master that died leaves its workers, which keep the group), so the group is signalled even then,
    and awaited until no member is left."""
    group = proc.pid
    if not _signal_group(group, signal.SIGTERM):
        proc.poll()
        return
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline and _group_alive(group, proc):
        time.sleep(0.1)
    if _group_alive(group, proc):
        _signal_group(group, signal.SIGKILL)
        deadline = time.monotonic() + STOP_GRACE
        while time.monotonic() < deadline and _group_alive(group, proc):
            time.sleep(0.1)
    proc.poll()


def _signal_group(group: int, signum: int) -> bool:
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        return False
    return True


def _group_alive(group: int, proc: subprocess.Popen) -> bool:
    proc.poll()  # reaps the leader once it exits, so that it no longer counts
    return _signal_group(group, 0)
