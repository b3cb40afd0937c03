"""The host-side forwarder into the run's namespace: targets are reused briefly, and a gone one is replaced."""

from __future__ import annotations

import socket
import threading

import pytest

from multirev.backends.local import netns
from multirev.backends.local.netns import Forwarder


def _echo_server() -> tuple[socket.socket, int]:
    """A loopback server answering each connection with its own port number."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.sendall(str(port).encode())
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server, port


def _ask(forwarder: Forwarder) -> str:
    with socket.create_connection(("127.0.0.1", forwarder.port), timeout=5) as conn:
        return conn.recv(100).decode()


@pytest.fixture
def on_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns, "enter_netns", lambda name: None)  # the namespace is the host's here


def test_a_target_is_resolved_once_for_a_burst_of_connections(on_the_host: None) -> None:
    server, port = _echo_server()
    calls = []
    forwarder = Forwarder("unused", 0, resolve=lambda: calls.append(1) or ("127.0.0.1", port))
    forwarder.start()
    try:
        assert [_ask(forwarder) for _ in range(5)] == [str(port)] * 5
        assert len(calls) == 1
    finally:
        forwarder.stop()
        server.close()


def test_a_target_that_went_away_is_resolved_again(on_the_host: None) -> None:
    """A rollout replaced the gateway pod: the cached address refuses, the next resolution answers."""
    old, old_port = _echo_server()
    new, new_port = _echo_server()
    targets = [("127.0.0.1", old_port), ("127.0.0.1", new_port)]
    forwarder = Forwarder("unused", 0, resolve=lambda: targets[0])
    forwarder.start()
    try:
        assert _ask(forwarder) == str(old_port)
        old.shutdown(socket.SHUT_RDWR)  # wakes its accept(), so that the port refuses from now on
        old.close()
        targets.pop(0)
        assert _ask(forwarder) == str(new_port)
    finally:
        forwarder.stop()
        new.close()
