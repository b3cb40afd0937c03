"""The local backend's stand-ins for the Bookinfo apps and echo-server (multirev/backends/local/pods/apps.py), run as
pods run them (`python -m ...apps <app>`), on loopback, wired to each other through upstream's env vars."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from multirev.backends.base import HttpResponse
from multirev.backends.local.pods.apps import stand_in
from multirev.checks.gateway import BOOKINFO_TITLE
from multirev.traffic import reviews_version

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
RATINGS_DOWN = "Ratings service is currently unavailable"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def request(port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET",
            body: bytes | None = None) -> HttpResponse:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return HttpResponse(response.status, {k.lower(): v for k, v in response.getheaders()},
                            response.read().decode())
    finally:
        conn.close()


class Apps:
    """Starts stand-ins and always stops them (SIGTERM, then SIGKILL)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: dict[str, tuple[subprocess.Popen, int]] = {}
        self.ports: dict[str, int] = {}

    def start(self, name: str, app: str, *args: str, env: dict[str, str] | None = None, port_flag: bool = True) -> int:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOSTNAME": name, **(env or {})}
        port = int(env["PORT"]) if not port_flag else free_port()
        argv = [sys.executable, "-m", "multirev.backends.local.pods.apps", app, *args]
        with (self.logs / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen([*argv, *(["--port", str(port)] if port_flag else [])], env=env, cwd=ROOT,
                                    stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = (proc, port)
        self.ports[name] = port
        return port

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()

    def wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        for name, (proc, port) in self.procs.items():
            while True:
                if proc.poll() is not None:
                    raise AssertionError(f"{name} exited with {proc.returncode}: {self.log(name)}")
                with socket.socket() as s:
                    if s.connect_ex((LOOPBACK, port)) == 0:
                        break
                if time.monotonic() > deadline:
                    raise AssertionError(f"{name} is not listening on {port}: {self.log(name)}")
                time.sleep(0.05)

    def stop(self, name: str) -> int:
        proc, _ = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def stop_all(self) -> None:
        for proc, _ in self.procs.values():  # all at once: each takes up to half a second to stop
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name in list(self.procs):
            self.stop(name)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Apps]:
    """productpage -> reviews v2 / v3 -> ratings, and details; plus the cases where something is down."""
    apps = Apps(tmp_path_factory.mktemp("apps"))
    try:
        dead = free_port()  # nothing listens here: a backend that is down
        ports = apps.ports
        apps.start("ratings", "ratings")
        apps.start("details", "details")
        apps.start("echo", "echo", env={"PORT": str(free_port())}, port_flag=False)  # its port from PORT
        to_ratings = {"RATINGS_HOSTNAME": LOOPBACK, "RATINGS_SERVICE_PORT": str(ports["ratings"])}
        for version in ("v1", "v2", "v3"):
            apps.start(f"reviews-{version}", "reviews", "--version", version, env=to_ratings)
        apps.start("reviews-alone", "reviews", "--version", "v3",
                   env={"RATINGS_HOSTNAME": LOOPBACK, "RATINGS_SERVICE_PORT": str(dead)})
        for version in ("v2", "v3"):
            apps.start(f"productpage-{version}", "productpage", env={
                "DETAILS_HOSTNAME": LOOPBACK, "DETAILS_SERVICE_PORT": str(ports["details"]),
                "REVIEWS_HOSTNAME": LOOPBACK, "REVIEWS_SERVICE_PORT": str(ports[f"reviews-{version}"])})
        # details answered by ratings (404 for /details/0), reviews down
        apps.start("productpage-broken", "productpage", env={
            "DETAILS_HOSTNAME": LOOPBACK, "DETAILS_SERVICE_PORT": str(ports["ratings"]),
            "REVIEWS_HOSTNAME": LOOPBACK, "REVIEWS_SERVICE_PORT": str(dead)})
        # every backend is echo, so its answer shows what productpage sent; "127.0.0" + ".1" from SERVICES_DOMAIN
        apps.start("productpage-echo", "productpage", env={
            "SERVICES_DOMAIN": "1", "DETAILS_HOSTNAME": "127.0.0", "DETAILS_SERVICE_PORT": str(ports["echo"]),
            "REVIEWS_HOSTNAME": "127.0.0", "REVIEWS_SERVICE_PORT": str(ports["echo"])})
        apps.wait_listening()
        yield apps
    finally:
        apps.stop_all()


def test_productpage_shows_details_and_reviews_in_the_versions_star_color(mesh: Apps) -> None:
    for version, color in (("v2", "black"), ("v3", "red")):
        response = request(mesh.ports[f"productpage-{version}"], "/productpage")
        assert response.status == 200
        assert f"<title>{BOOKINFO_TITLE}</title>" in response.body
        assert "1234567890" in response.body and "PublisherA" in response.body  # details' ISBN-10, publisher
        assert f"text-{color}-500" in response.body and "★★★★★" in response.body
        assert f"reviews-{version}" in response.body  # "Reviews served by" the pod's HOSTNAME
    assert request(mesh.ports["productpage-v2"], "/health").body == "Product page is healthy"


def test_reviews_versions_as_the_suite_tells_them_apart(mesh: Apps) -> None:
    for version in ("v1", "v2", "v3"):
        response = request(mesh.ports[f"reviews-{version}"], "/reviews/0")
        assert response.status == 200 and response.headers["content-type"] == "application/json"
        assert reviews_version(response) == version
        doc = json.loads(response.body)
        assert (doc["id"], doc["podname"], doc["clustername"]) == ("0", f"reviews-{version}", "null")
        assert [r["reviewer"] for r in doc["reviews"]] == ["Reviewer1", "Reviewer2"]
        if version == "v1":
            assert all("rating" not in r for r in doc["reviews"])
        else:
            assert [r["rating"]["stars"] for r in doc["reviews"]] == [5, 4]
    for version in ("v2", "v3"):  # productpage passes the reviews JSON through, as the weighted-routing test reads it
        assert reviews_version(request(mesh.ports[f"productpage-{version}"], "/api/v1/products/0/reviews")) == version
    assert request(mesh.ports["reviews-v1"], "/reviews/x").status == 404  # an int path parameter in JAX-RS
    assert json.loads(request(mesh.ports["reviews-v1"], "/health").body) == {"status": "Reviews is healthy"}


def test_ratings_down_gives_the_rating_error_not_a_v1_answer(mesh: Apps) -> None:
    response = request(mesh.ports["reviews-alone"], "/reviews/0")
    assert response.status == 200
    assert [r["rating"] for r in json.loads(response.body)["reviews"]] == [{"error": RATINGS_DOWN}] * 2
    assert reviews_version(response) is None
    assert "Error: unable to contact" in mesh.log("reviews-alone")


def test_productpage_still_answers_when_backends_fail(mesh: Apps) -> None:
    page = request(mesh.ports["productpage-broken"], "/productpage")
    assert page.status == 200 and BOOKINFO_TITLE in page.body
    assert "Error fetching product details" in page.body
    assert "Sorry, product details are currently unavailable for this book." in page.body
    assert "Error fetching product reviews" in page.body
    assert "Sorry, product reviews are currently unavailable for this book." in page.body
    details = request(mesh.ports["productpage-broken"], "/api/v1/products/0")
    assert details.status == 404  # the backend's status is passed on
    reviews = request(mesh.ports["productpage-broken"], "/api/v1/products/0/reviews")
    assert reviews.status == 500  # nothing answered
    assert json.loads(reviews.body) == {"error": "Sorry, product reviews are currently unavailable for this book."}


def test_details_and_ratings_answer_as_upstream(mesh: Apps) -> None:
    details = request(mesh.ports["details"], "/details/0")
    assert details.status == 200
    assert json.loads(details.body) == {"id": 0, "author": "William Shakespeare", "year": 1595, "type": "paperback",
                                        "pages": 200, "publisher": "PublisherA", "language": "English",
                                        "ISBN-10": "1234567890", "ISBN-13": "123-1234567890"}
    assert json.loads(request(mesh.ports["productpage-v2"], "/api/v1/products/0").body) == json.loads(details.body)
    assert request(mesh.ports["details"], "/details/abc").status == 400
    assert json.loads(request(mesh.ports["details"], "/health").body) == {"status": "Details is healthy"}
    ratings = request(mesh.ports["ratings"], "/ratings/0")
    assert (ratings.status, json.loads(ratings.body)) == (200, {"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}})
    assert request(mesh.ports["ratings"], "/ratings/abc").status == 400
    assert json.loads(request(mesh.ports["ratings"], "/health").body) == {"status": "Ratings is healthy"}


def test_productpage_forwards_upstreams_headers_only(mesh: Apps) -> None:
    sent = {"x-request-id": "req-1", "x-b3-traceid": "00F067AA0BA902B7", "x-b3-spanid": "00F067AA0BA902B8",
            "x-b3-parentspanid": "00F067AA0BA902B6", "x-b3-sampled": "1", "user-agent": "tester",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "x-other": "kept back"}
    response = request(mesh.ports["productpage-echo"], "/api/v1/products/0/reviews", sent)
    assert response.status == 200
    echoed = json.loads(response.body)
    assert echoed["http"]["originalUrl"] == "/reviews/0" and echoed["host"]["hostname"] == LOOPBACK
    got = echoed["request"]["headers"]
    assert all(got[h] == sent[h] for h in ("x-request-id", "user-agent", "traceparent"))
    # b3 goes through OpenTelemetry's propagator: trace id padded to 32, lower case; no parent span id
    assert (got["x-b3-traceid"], got["x-b3-spanid"], got["x-b3-sampled"]) == (
        "000000000000000000f067aa0ba902b7", "00f067aa0ba902b8", "1")
    assert "x-b3-parentspanid" not in got and "x-other" not in got


def test_echo_describes_the_request(mesh: Apps) -> None:
    response = request(mesh.ports["echo"], "/echo/some/path?x=1", {"Host": "echo.example"})
    assert response.status == 200 and response.headers["content-type"].startswith("application/json")
    doc = json.loads(response.body)
    assert doc["host"]["hostname"] == "echo.example"
    assert doc["request"]["headers"]["host"] == "echo.example"
    assert doc["http"]["method"] == "GET" and doc["http"]["originalUrl"] == "/echo/some/path?x=1"
    assert doc["request"]["query"] == {"x": "1"} and doc["request"]["params"] == {"0": "/echo/some/path"}
    posted = request(mesh.ports["echo"], "/", {"Content-Type": "application/json"}, method="POST", body=b'{"a": 1}')
    assert json.loads(posted.body)["request"]["body"] == {"a": 1}


def test_a_stand_in_logs_each_request_and_stops_on_sigterm(tmp_path: Path) -> None:
    apps = Apps(tmp_path)
    try:
        port = apps.start("ratings", "ratings")
        apps.wait_listening()
        assert request(port, "/ratings/3").status == 200
        assert apps.stop("ratings") == 0
        assert re.search(r'"GET /ratings/3 HTTP/1.1" 200', apps.log("ratings"))
    finally:
        apps.stop_all()


BOOKINFO_IMAGES = {  # samples/bookinfo/platform/kube/bookinfo.yaml@1.30.3
    "registry.istio.io/release/examples-bookinfo-details-v1:1.20.3": ("details", []),
    "registry.istio.io/release/examples-bookinfo-ratings-v1:1.20.3": ("ratings", []),
    "registry.istio.io/release/examples-bookinfo-reviews-v1:1.20.3": ("reviews", ["--version", "v1"]),
    "registry.istio.io/release/examples-bookinfo-reviews-v2:1.20.3": ("reviews", ["--version", "v2"]),
    "registry.istio.io/release/examples-bookinfo-reviews-v3:1.20.3": ("reviews", ["--version", "v3"]),
    "registry.istio.io/release/examples-bookinfo-productpage-v1:1.20.3": ("productpage", []),
}


def test_stand_in_maps_the_bookinfo_and_echo_images_and_nothing_else() -> None:
    for image, expected in BOOKINFO_IMAGES.items():
        assert stand_in(image) == expected, image
        assert stand_in(image.replace("registry.istio.io/release", "docker.io/istio")) == expected, image
    in_tree = ROOT / "manifests/simulated-samples/bookinfo/platform/kube/bookinfo.yaml"
    for image in re.findall(r"image:\s*(\S+)", in_tree.read_text()):
        assert stand_in(image) is not None, image
    for image in ("docker.io/ealen/echo-server:0.9.2", "ealen/echo-server",
                  "docker.io/ealen/echo-server@sha256:" + "0" * 64):
        assert stand_in(image) == ("echo", []), image
    for image in ("docker.io/library/nginx:1.27-alpine", "docker.io/curlimages/curl:8.11.1",
                  "docker.io/istio/examples-bookinfo-ratings-v2:1.20.3", "docker.io/istio/proxyv2:1.31.0",
                  "docker.io/someone/echo-server:1.0"):
        assert stand_in(image) is None, image
