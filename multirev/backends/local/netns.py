"""The run's own network namespace, and a loopback door into it for the test process.

Every server of the local backend runs inside one namespace the run creates (`ip netns add`). Its
only routes are loopback and the pod and Service ranges, which are made *local* (`ip route add
local`), so a pod IP is an address of this namespace and nothing can leave it: it has no other
interface. The test process itself stays outside and reaches the API server through `Forwarder`, a
thread that listens on the host's 127.0.0.1 and dials 127.0.0.1 inside the namespace.
"""

from __future__ import annotations

import ctypes
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from multirev.errors import EnvironmentProblem
from multirev.relay import accept_each, relay

CLONE_NEWNET = 0x40000000  # linux/sched.h
NETNS_DIR = Path("/var/run/netns")  # where `ip netns add` pins namespaces (iproute2 lib/namespace.h)
NETNS_ETC = Path("/etc/netns")  # `ip netns exec` bind-mounts these files over /etc (iproute2 ip/ipnetns.c)
NAME_PREFIX = "multirev-"
# Who owns each namespace, so a run killed without teardown (SIGKILL) is cleaned up by the next one.
OWNERS = Path("/run/multirev")


def ip_command(*args: str) -> None:
    """`ip <args>`; a failure is one line naming the command and iproute2's words."""
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise EnvironmentProblem(f"`ip {' '.join(args)}` failed: {proc.stderr.strip() or proc.returncode}")


class NetworkNamespace:
    def __init__(self, name: str, local_ranges: list[str]) -> None:
        self.name = name
        self.local_ranges = local_ranges
        self.created = False

    @staticmethod
    def check_possible() -> None:
        if shutil.which("ip") is None:
            raise EnvironmentProblem("the local backend needs `ip` from iproute2 (apt-get install iproute2)")
        if os.geteuid() != 0:
            raise EnvironmentProblem("the local backend creates a network namespace and must run as root")

    def create(self) -> None:
        ip_command("netns", "add", self.name)
        self.created = True
        self._check_created()
        etc = NETNS_ETC / self.name
        etc.mkdir(parents=True, exist_ok=True)
        # istiod refuses to start without a readable resolv.conf (pilot/pkg/model/network.go@1.30.3); any
        # lookup it might make goes to loopback inside the namespace, where nothing answers.
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        (etc / "hosts").write_text("127.0.0.1 localhost\n")
        ip_command("-n", self.name, "link", "set", "lo", "up")
        for cidr in self.local_ranges:
            ip_command("-n", self.name, "route", "add", "local", cidr, "dev", "lo")

    def _check_created(self) -> None:
        if not (NETNS_DIR / self.name).exists():
            raise EnvironmentProblem(f"network namespace {self.name} was not created under {NETNS_DIR}")

    def prefix(self) -> list[str]:
        """argv prefix that runs a command inside the namespace (`ip netns exec` then execs it)."""
        return ["ip", "netns", "exec", self.name]

    def delete(self) -> None:
        # Pod namespaces of this run (pods/network.py names them `<name>-p<N>`), also those a killed run left.
        for pod in sorted(NETNS_DIR.glob(f"{self.name}-p*")) if NETNS_DIR.is_dir() else []:
            ip_command("netns", "delete", pod.name)
        for etc in NETNS_ETC.glob(f"{self.name}-p*") if NETNS_ETC.is_dir() else []:
            shutil.rmtree(etc, ignore_errors=True)
        if (NETNS_DIR / self.name).exists():
            ip_command("netns", "delete", self.name)
        shutil.rmtree(NETNS_ETC / self.name, ignore_errors=True)
        (OWNERS / f"{self.name}.json").unlink(missing_ok=True)
        self.created = False

    def record_owner(self, temp: Path) -> None:
        OWNERS.mkdir(parents=True, exist_ok=True)
        (OWNERS / f"{self.name}.json").write_text(json.dumps({"pid": os.getpid(), "temp": str(temp)}))

    @staticmethod
    def reap_stale() -> list[str]:
        """Remove namespaces (and temporary folders) of runs whose process is gone; returns their names."""
        reaped = []
        for record in sorted(OWNERS.glob(f"{NAME_PREFIX}*.json")) if OWNERS.is_dir() else []:
            owner = json.loads(record.read_text() or "{}")
            if _alive(int(owner.get("pid", 0))):
                continue
            stale = NetworkNamespace(record.name.removesuffix(".json"), [])
            stale.delete()
            if owner.get("temp", "").startswith(("/tmp/multirev-local-", str(Path(tempfile.gettempdir())))):
                shutil.rmtree(owner["temp"], ignore_errors=True)
            reaped.append(stale.name)
        return reaped

    @staticmethod
    def leftovers() -> list[str]:
        return sorted(p.name for p in NETNS_DIR.glob(f"{NAME_PREFIX}*")) if NETNS_DIR.is_dir() else []


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def enter_netns(netns: str) -> None:
    """Move the calling thread (only it: setns(2) is per thread) into the namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(NETNS_DIR / netns, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {netns} failed")
    finally:
        os.close(fd)


class Forwarder:
    """127.0.0.1:<port> on the host -> 127.0.0.1:<target> inside the namespace, byte for byte (TLS stays
    end to end between the client and the API server). With `resolve`, each connection goes to the address it
    names at that moment (a gateway pod, which a rollout may replace), or is closed when it names none."""

    # How long a resolved target is reused: resolving asks the API server twice, which cost more than the
    # request itself when every request opened a connection. A failed connection resolves afresh.
    RESOLVED_FOR = 2.0

    def __init__(self, netns: str, target_port: int,
                 resolve: Callable[[], tuple[str, int] | None] | None = None) -> None:
        self.netns = netns
        self.target_port = target_port
        self.resolve = resolve or (lambda: ("127.0.0.1", target_port))
        self._resolved: tuple[float, tuple[str, int]] | None = None
        self._resolve_lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        thread = threading.Thread(target=self._accept, name="local-forwarder", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        accept_each(self.listener, self._stop, self._pump, "local-forwarder-conn")

    def _target(self, fresh: bool) -> tuple[str, int] | None:
        with self._resolve_lock:
            now = time.monotonic()
            if fresh or self._resolved is None or now - self._resolved[0] > self.RESOLVED_FOR:
                target = self.resolve()
                self._resolved = (now, target) if target is not None else None
                return target
            return self._resolved[1]

    def _connect(self) -> socket.socket:
        """A connection to the target, from inside the namespace; a cached target that refuses is resolved
        again once (the pod it named may be gone)."""
        for fresh in (False, True):
            target = self._target(fresh)  # on the host: it may ask the API server through its loopback
            if target is None:
                raise ConnectionRefusedError("no target")
            try:
                return self._open_inside(target)
            except OSError:
                if fresh:
                    raise
        raise AssertionError("unreachable")

    def _open_inside(self, target: tuple[str, int]) -> socket.socket:
        """Connect from a short-lived thread that enters the namespace (entering moves only the calling thread,
        and a socket keeps the namespace it was made in), so that this thread can still resolve on the host."""
        result: list[socket.socket | OSError] = [ConnectionRefusedError(f"connecting to {target} timed out")]

        def connect() -> None:
            try:
                enter_netns(self.netns)
                result[0] = socket.create_connection(target, timeout=10)
            except OSError as exc:
                result[0] = exc

        thread = threading.Thread(target=connect, name="local-forwarder-connect", daemon=True)
        thread.start()
        thread.join(15)
        if isinstance(result[0], OSError):
            raise result[0]
        return result[0]

    def _pump(self, client: socket.socket) -> None:
        try:
            upstream = self._connect()
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        relay(client, upstream, self._stop)

    def stop(self) -> None:
        self._stop.set()
        self.listener.close()


def http_status_inside(netns: str, host: str, port: int, path: str, timeout: float = 2.0) -> int | str:
    """GET http://host:port/path from inside the namespace (a short-lived thread enters it); the status
    code, or the error's name."""
    result: list[int | str] = ["no answer"]

    def probe() -> None:
        try:
            enter_netns(netns)
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
            conn.request("GET", path)
            result[0] = conn.getresponse().status
            conn.close()
        except OSError as exc:
            result[0] = type(exc).__name__

    thread = threading.Thread(target=probe, name="local-probe", daemon=True)
    thread.start()
    thread.join(timeout + 1)
    return result[0]
