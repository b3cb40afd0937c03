"""Pass bytes both ways between two connected sockets until both directions end (a TCP forwarder's inner loop)."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections.abc import Callable


def relay(client: socket.socket, upstream: socket.socket, stop: threading.Event) -> None:
    """One side's end of stream is passed on as a half-close and the other direction keeps flowing until it ends too:
    closing both at once would drop (and reset) what is still on its way. Both sockets are closed at the end."""
    for sock in (client, upstream):  # pass small writes on at once, as a NodePort's kernel path would
        with contextlib.suppress(OSError):  # not a TCP socket (a port-forward stream's socketpair end)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pair = {client: upstream, upstream: client}
    with selectors.DefaultSelector() as sel:
        for sock in pair:
            sel.register(sock, selectors.EVENT_READ)
        try:
            while sel.get_map() and not stop.is_set():
                for key, _ in sel.select(timeout=0.5):
                    source = key.fileobj
                    data = source.recv(65536)  # type: ignore[union-attr]
                    if data:
                        pair[source].sendall(data)  # type: ignore[index]
                        continue
                    sel.unregister(source)
                    pair[source].shutdown(socket.SHUT_WR)  # type: ignore[index]
        except OSError:
            return
        finally:
            client.close()
            upstream.close()


def accept_each(listener: socket.socket, stop: threading.Event, handle: Callable[[socket.socket], None],
                name: str) -> None:
    """Accept connections on `listener` until `stop` is set or it is closed, each handled on a thread of its own."""
    listener.settimeout(0.5)
    while not stop.is_set():
        try:
            client, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        threading.Thread(target=handle, args=(client,), name=name, daemon=True).start()
