"""A tiny local stand-in for the Kubernetes API server, serving an ObjectStore over HTTP on 127.0.0.1.

It speaks just enough of the REST API for KubeCluster: /version, item/list/patch/delete on the paths
multirev.kube.kinds.Kind.path builds, and pod logs. Every request is recorded for assertions.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from multirev.backends.simulated.store import ObjectStore
from multirev.kube import kinds
from multirev.kube.kinds import Kind
from multirev.kube.objects import Obj, parse_label_selector

GIT_VERSION = "v1.35.5"
TOKEN = "secret-token-123"

_BY_PREFIX: dict[tuple[str, str], Kind] = {(k.api_version, k.plural): k for k in kinds.ALL}


@dataclass
class Recorded:
    """One request as the stand-in saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    authorization: str
    body: Any = None


@dataclass
class ServerState:
    """What the stand-in serves (an ObjectStore, pod logs) and what it was asked."""

    store: ObjectStore = field(default_factory=ObjectStore)
    requests: list[Recorded] = field(default_factory=list)
    logs: dict[tuple[str, str], str] = field(default_factory=dict)  # (namespace, pod) -> text
    kubeconfig: Path | None = None  # written by running_apiserver
    # (namespace, pod) -> how an exec into it goes: "exit 0" (stdout "ok", status Success) or "drop" (some stdout,
    # then the TCP connection closes with no close frame and no status, as when the pod or node goes away)
    execs: dict[tuple[str, str], str] = field(default_factory=dict)
    # namespaces that, once deleted, stay Terminating for this many more GETs (their contents being removed)
    terminating_for: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def matching(self, method: str, path: str | None = None) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.method == method and (path is None or r.path == path)]


@dataclass(frozen=True)
class Route:
    kind: Kind | None
    namespace: str | None
    name: str | None
    subresource: str | None = None


def route(path: str) -> Route | None:
    """Map a REST path to (kind, namespace, name, subresource); None when it names no known kind."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        api_version, rest = "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        api_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    kind = _BY_PREFIX.get((api_version, rest[0]))
    if kind is None or (namespace is not None and not kind.namespaced):
        return None
    name = rest[1] if len(rest) >= 2 else None
    sub = rest[2] if len(rest) == 3 else None
    return Route(kind, namespace, name, sub)


def merge(target: dict, patch: dict) -> dict:
    """JSON merge patch (RFC 7386): dicts merge recursively, null deletes, anything else replaces."""
    out = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
            "message": message, "code": code}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _send(self, code: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        with state.lock:
            state.requests.append(Recorded(self.command, url.path, parse_qs(url.query),
                                           self.headers.get("Content-Type", ""),
                                           self.headers.get("Authorization", ""), body))
        if self.command == "GET" and url.path == "/version":
            self._send(200, {"major": "1", "minor": "35", "gitVersion": GIT_VERSION})
            return
        found = route(url.path)
        if found is None or found.kind is None:
            self._send(404, status(404, "NotFound", f"the server could not find {url.path}"))
            return
        if found.kind is kinds.POD and found.subresource == "exec":
            self._exec(state.execs.get((found.namespace or "", found.name or "")))
            return
        with state.lock:
            code, payload, ctype = self._dispatch(state, found, parse_qs(url.query), body)
        self._send(code, payload, ctype)

    def _dispatch(self, state: ServerState, r: Route, query: dict[str, list[str]],
                  body: Any) -> tuple[int, Any, str]:
        kind, store, js = r.kind, state.store, "application/json"
        assert kind is not None
        missing = (404, status(404, "NotFound", f'{kind.plural} "{r.name}" not found'), js)
        if r.subresource is not None:
            if kind is kinds.POD and r.subresource == "log" and self.command == "GET":
                text = state.logs.get((r.namespace or "", r.name or ""))
                if text is not None:
                    return 200, text, "text/plain"
                if "application/json" not in self.headers.get("Accept", ""):
                    # The real server writes an error in a type the request accepts, else a bare 406
                    # (apiserver@v0.35.4 pkg/endpoints/handlers/responsewriters/writers.go ErrorNegotiated).
                    return 406, status(406, "NotAcceptable", "only the following media types are accepted: "
                                       "application/json, application/yaml, application/vnd.kubernetes.protobuf"), js
                return missing
            return 404, status(404, "NotFound", "no such subresource"), js
        if r.name is None:
            if self.command != "GET":
                return 405, status(405, "MethodNotAllowed", "collection supports GET only"), js
            labels = parse_label_selector((query.get("labelSelector") or [""])[0])
            items = store.list(kind, r.namespace, labels or None)
            for item in items:  # like the real server, list items carry no apiVersion/kind
                item.pop("apiVersion", None)
                item.pop("kind", None)
            return 200, {"kind": f"{kind.kind}List", "apiVersion": kind.api_version,
                         "metadata": {}, "items": items}, js
        current = store.get(kind, r.name, r.namespace)
        terminating = current is not None and (self.command == "DELETE" or
                                               (current.get("status") or {}).get("phase") == "Terminating")
        if kind is kinds.NAMESPACE and r.name in state.terminating_for and terminating:
            assert current is not None
            return self._terminate(state, r.name or "", current)
        if self.command == "GET":
            return (200, current, js) if current is not None else missing
        if self.command == "DELETE":
            if not store.delete(kind, r.name, r.namespace):
                return missing
            return 200, status(200, "", "deleted") | {"status": "Success"}, js
        if self.command == "PATCH":
            ctype = self.headers.get("Content-Type", "")
            if not isinstance(body, dict):
                return 400, status(400, "BadRequest", "patch body must be a JSON object"), js
            if ctype == "application/apply-patch+yaml":
                obj = copy.deepcopy(body)
                meta = obj.setdefault("metadata", {})
                meta["name"] = r.name
                if kind.namespaced:
                    meta["namespace"] = r.namespace
                return (200 if current is not None else 201), store.put(kind, obj), js
            if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                if current is None:
                    return missing
                return 200, store.put(kind, merge(current, body)), js
            return 415, status(415, "UnsupportedMediaType", f"unsupported patch type {ctype}"), js
        return 405, status(405, "MethodNotAllowed", self.command), js

    def _terminate(self, state: ServerState, name: str, current: Obj) -> tuple[int, Any, str]:
        """A deleted namespace is Terminating until its countdown of GETs runs out, then gone."""
        if self.command == "GET":
            state.terminating_for[name] -= 1
            if state.terminating_for[name] < 0:
                state.store.delete(kinds.NAMESPACE, name)
                return 404, status(404, "NotFound", f'namespaces "{name}" not found'), "application/json"
        current = state.store.put(kinds.NAMESPACE, merge(current, {"status": {"phase": "Terminating"}}))
        return 200, current, "application/json"

    def _exec(self, behaviour: str | None) -> None:
        """The exec subresource over WebSocket (RFC 6455), channel byte first as in v4.channel.k8s.io."""
        if behaviour is None:
            self._send(404, status(404, "NotFound", "pods not found"))
            return
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.send_header("Sec-WebSocket-Protocol", "v4.channel.k8s.io")
        self.end_headers()

        def frame(channel: int, data: bytes, opcode: int = 0x2) -> bytes:
            payload = bytes([channel]) + data if opcode == 0x2 else data
            return bytes([0x80 | opcode, len(payload)]) + payload

        self.wfile.write(frame(1, b"partial output\n" if behaviour == "drop" else b"ok\n"))
        if behaviour == "drop":
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self.wfile.write(frame(3, json.dumps({"metadata": {}, "status": "Success"}).encode()))
            self.wfile.write(frame(0, b"\x03\xe8", opcode=0x8))  # close, normal closure
            self.wfile.flush()
        self.close_connection = True

    do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: ServerState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


def kubeconfig_text(base_url: str, token: str = TOKEN) -> str:
    """A kubeconfig with one context pointing at base_url, authenticating with a bearer token."""
    return yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "standin", "cluster": {"server": base_url}}],
        "users": [{"name": "standin", "user": {"token": token}}],
        "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "standin"}}],
        "current-context": "standin",
    })


@contextmanager
def running_apiserver(tmp_path: Path) -> Iterator[tuple[str, ServerState]]:
    """Serve a fresh ObjectStore on 127.0.0.1:<free port>; yields (base_url, state).

    A kubeconfig for it (bearer token TOKEN) is written to tmp_path; its path is state.kubeconfig."""
    state = ServerState()
    server = _Server(state)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    state.kubeconfig = tmp_path / "standin.kubeconfig"
    state.kubeconfig.write_text(kubeconfig_text(base_url))
    try:
        yield base_url, state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def put(state: ServerState, obj: Obj) -> Obj:
    """Seed the stand-in's store directly (bypassing HTTP)."""
    with state.lock:
        return state.store.put(kinds.of(obj), obj)
