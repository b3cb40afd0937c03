"""Stand-ins for the Bookinfo sample apps and the echo-server image, for pods on the local backend.

The local backend has no container runtime: a pod gets a network namespace and each of its containers is
replaced by a process. For the images below that process is one of these servers
(`python -m multirev.backends.local.pods.apps <app> [--version vN] [--port N]`). They answer the paths the suite
uses as the upstream images do, so that what is under test is Envoy and istiod. Calls to other services go to
plain Service names (http://reviews:9080), which the pod's DNS resolves and its sidecar captures.

Upstream: istio/istio samples/bookinfo/src@1.30.3 (the apps are the same on release-1.31) and
Ealenn/Echo-Server@0.9.2 (the image docker.io/ealen/echo-server:0.9.2).
"""

from __future__ import annotations

import argparse
import html
import http.client
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

HTML = "text/html; charset=utf-8"


@dataclass
class Request:
    method: str
    target: str  # path and query, as sent
    headers: dict[str, str]  # lower-case names
    body: bytes
    client: str

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


@dataclass
class Reply:
    status: int
    body: str
    content_type: str = "application/json"


App = Callable[[Request], Reply]


def _json(status: int, doc: Any, *, compact: bool = False, content_type: str = "application/json") -> Reply:
    # Ruby's to_json and JavaScript's JSON.stringify write no spaces; Python's json.dumps (productpage) does.
    return Reply(status, json.dumps(doc, separators=(",", ":") if compact else None), content_type)


def _not_found() -> Reply:
    return Reply(404, "<h1>Not Found</h1>", HTML)


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)  # upstream tests for unset, not for empty
    return default if value is None else value


def _service(name: str) -> str:
    """http://<name>[.domain]:<port>, from <NAME>_HOSTNAME, SERVICES_DOMAIN and <NAME>_SERVICE_PORT as
    productpage.py@1.30.3 and LibertyRestEndpoint.java@1.30.3 read them (defaults: the name and 9080)."""
    domain = os.environ.get("SERVICES_DOMAIN")
    host = _env(f"{name.upper()}_HOSTNAME", name)
    return f"http://{host}{'' if domain is None else '.' + domain}:{_env(f'{name.upper()}_SERVICE_PORT', '9080')}"


def _get(url: str, headers: dict[str, str], timeout: float) -> tuple[int, bytes] | None:
    """GET with a new connection each time (productpage's send_request does not pool, on purpose);
    None when nothing answered in time, where upstream's HTTP client raises."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", parts.path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _decimal(text: str) -> int | None:
    return int(text) if re.fullmatch(r"[+-]?[0-9]+", text) else None


# --- productpage: samples/bookinfo/src/productpage/productpage.py@1.30.3 -----------------------------------------

# getForwardHeaders: passed on as they came. The x-b3-* headers go through OpenTelemetry instead (_b3).
PRODUCTPAGE_FORWARD = ("x-request-id", "x-ot-span-context", "x-datadog-trace-id", "x-datadog-parent-id",
                       "x-datadog-sampling-priority", "traceparent", "tracestate", "x-cloud-trace-context",
                       "grpc-trace-bin", "sw8", "user-agent", "cookie", "authorization", "jwt")
PRODUCTS = [{
    "id": 0,
    "title": "The Comedy of Errors",
    "descriptionHtml": '<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: '
                       "an early comedy by <b>William Shakespeare</b>, made of slapstick, puns and mistaken "
                       "identities.",
}]


def _b3(headers: dict[str, str]) -> dict[str, str]:
    """What productpage's B3MultiFormat extract-then-inject sends on (opentelemetry-propagator-b3 1.32.1, pinned in
    productpage/requirements.txt@1.30.3; propagators/b3/__init__.py@v1.32.1): the incoming trace and span ids,
    lower case, the trace id padded to 32 digits, and x-b3-sampled 1 or 0; nothing when the ids are not valid.
    The single `b3` header wins over the x-b3-* ones; parent span ids and x-b3-flags are not sent on."""
    flags = None
    if single := headers.get("b3"):
        fields = single.split("-", 4)
        trace_id, span_id, sampled = (fields + ["1"])[:3] if 2 <= len(fields) <= 4 else ("", "", "0")
    else:
        trace_id, span_id = headers.get("x-b3-traceid", ""), headers.get("x-b3-spanid", "")
        sampled, flags = headers.get("x-b3-sampled") or "0", headers.get("x-b3-flags")
    if not (re.fullmatch(r"[0-9a-fA-F]{16}|[0-9a-fA-F]{32}", trace_id) and re.fullmatch(r"[0-9a-fA-F]{16}", span_id)):
        return {}
    return {"x-b3-traceid": f"{int(trace_id, 16):032x}", "x-b3-spanid": f"{int(span_id, 16):016x}",
            "x-b3-sampled": "1" if sampled in ("1", "True", "true", "d") or flags == "1" else "0"}


def _productpage_forward(headers: dict[str, str]) -> dict[str, str]:
    # end-user comes from the login session upstream; there is no login here.
    return {**_b3(headers), **{h: headers[h] for h in PRODUCTPAGE_FORWARD if h in headers}}


def _fetch(service: str, product_id: str, headers: dict[str, str], tries: int = 1) -> tuple[int, Any]:
    """getProductDetails / getProductReviews / getProductRatings: 3 s per try; anything but a 200 gives the
    error text with the backend's status, or 500 when nothing answered."""
    answer = None
    for _ in range(tries):
        answer = _get(f"{_service(service)}/{service}/{product_id}", headers, timeout=3.0)
        if answer is not None and answer[0] == 200:
            return 200, json.loads(answer[1])  # a 200 that is not JSON fails the request upstream too
    error = f"Sorry, product {service} are currently unavailable for this book."
    return (answer[0] if answer else 500), {"error": error}


def _field(doc: Any, key: str) -> Any:
    return doc.get(key) if isinstance(doc, dict) else None


def _text(value: Any) -> str:
    return html.escape("" if value is None else str(value))  # Jinja autoescapes the upstream template


def _page(details_status: int, details: Any, reviews_status: int, reviews: Any) -> str:
    """The front page, with what templates/productpage.html@1.30.3 shows (not its markup): the book, its details
    or "Error fetching product details", its reviews with stars in the reviews' color or their rating error,
    and who served them, or "Error fetching product reviews"."""
    product = PRODUCTS[0]
    out = ['<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n<title>Simple Bookstore App</title>\n</head>',
           f"<body>\n<h1>{_text(product['title'])}</h1>\n<p>{product['descriptionHtml']}</p>"]
    if details_status == 200:
        keys = ("ISBN-10", "publisher", "pages", "type", "language")
        out.append("<h4>Book Details</h4>\n<table>\n<tr>" + "".join(f"<th>{k[0].upper()}{k[1:]}</th>" for k in keys)
                   + "</tr>\n<tr>" + "".join(f"<td>{_text(_field(details, k))}</td>" for k in keys) + "</tr>\n</table>")
    else:
        out.append(f"<p>Error fetching product details</p>\n<p>{_text(_field(details, 'error'))}</p>")
    if reviews_status == 200:
        out.append("<h4>Book Reviews</h4>")
        for review in _field(reviews, "reviews") or []:
            rating = _field(review, "rating")
            stars = _field(rating, "stars")
            if isinstance(stars, int) and stars:
                out.append(f'<div class="text-{_text(rating.get("color"))}-500">{"★" * stars}{"☆" * (5 - stars)}</div>')
            elif _field(rating, "error"):
                out.append(f"<p>{_text(rating['error'])}</p>")
            served = f"Reviews served by: {_text(_field(reviews, 'podname'))}"
            if _field(reviews, "clustername") != "null":  # Java prints an unset CLUSTER_NAME as "null"
                served += f" on cluster {_text(_field(reviews, 'clustername'))}"
            out.append(f"<blockquote>\"{_text(_field(review, 'text'))}\"</blockquote>\n"
                       f"<p>{_text(_field(review, 'reviewer'))}</p>\n<p>{served}</p>")
    else:
        out.append(f"<p>Error fetching product reviews</p>\n<p>{_text(_field(reviews, 'error'))}</p>")
    return "\n".join([*out, "</body>\n</html>\n"])


def productpage_app(request: Request) -> Reply:
    path = request.path
    if path == "/health":
        return Reply(200, "Product page is healthy", HTML)
    headers = _productpage_forward(request.headers)
    if path == "/productpage":  # front(): details first, then reviews, for product 0
        details_status, details = _fetch("details", "0", headers)
        # Upstream asks reviews twice on failure, on purpose (its fault-injection task shows it).
        reviews_status, reviews = _fetch("reviews", "0", headers, tries=2)
        return Reply(200, _page(details_status, details, reviews_status, reviews), HTML)
    if path == "/api/v1/products":
        return _json(200, PRODUCTS)
    if match := re.fullmatch(r"/api/v1/products/([^/]+)(/reviews|/ratings)?", path):
        product_id, sub = match.groups()
        service = {None: "details", "/reviews": "reviews", "/ratings": "ratings"}[sub]
        status, doc = _fetch(service, product_id, headers, tries=2 if service == "reviews" else 1)
        return _json(status, doc)
    return _not_found()


# --- details: samples/bookinfo/src/details/details.rb@1.30.3 (v1: ENABLE_EXTERNAL_BOOK_SERVICE off) ------------

BOOK = {"author": "William Shakespeare", "year": 1595, "type": "paperback", "pages": 200, "publisher": "PublisherA",
        "language": "English", "ISBN-10": "1234567890", "ISBN-13": "123-1234567890"}


def _mounted(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")  # how WEBrick's mount_proc matches


def details_app(request: Request) -> Reply:
    path = request.path
    if _mounted(path, "/health"):
        return _json(200, {"status": "Details is healthy"}, compact=True)
    if _mounted(path, "/details"):
        product_id = _decimal(path.rstrip("/").rsplit("/", 1)[-1])  # the last path part (Ruby's Integer())
        if product_id is None:
            return _json(400, {"error": "please provide numeric product id"}, compact=True)
        return _json(200, {"id": product_id, **BOOK}, compact=True)
    return _not_found()


# --- reviews: samples/bookinfo/src/reviews/reviews-application/src/main/java/application/rest/
#     LibertyRestEndpoint.java@1.30.3 ---------------------------------------------------------------------------

# headers_to_propagate: productpage's list, plus the x-b3-* headers as they came and end-user.
REVIEWS_FORWARD = (*PRODUCTPAGE_FORWARD, "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled",
                   "x-b3-flags", "end-user")
REVIEWS = (("Reviewer1", "A very entertaining play by Shakespeare, and the slapstick is a delight!"),
           ("Reviewer2", "Great fun to watch, though thinner in its themes than other Shakespeare plays."))


def reviews_app(version: str) -> App:
    # reviews/Dockerfile@1.30.3 bakes ENABLE_RATINGS and STAR_COLOR into each image; docker-bake.hcl@1.30.3 turns
    # ratings on for v2 and v3 and makes v3's stars red. A pod's env overrides an image's, so it is read first.
    rated = _env("ENABLE_RATINGS", "true" if version in ("v2", "v3") else "false").lower() == "true"
    color = _env("STAR_COLOR", "red" if version == "v3" else "black")
    ratings_service = f"{_service('ratings')}/ratings"
    timeout = 10.0 if color == "black" else 2.5  # getRatings: a black-star reviews waits longer for ratings

    def serve(request: Request) -> Reply:
        if request.path == "/health":
            return _json(200, {"status": "Reviews is healthy"})
        match = re.fullmatch(r"/reviews/([^/]+)", request.path)
        product_id = _decimal(match[1]) if match else None
        if product_id is None or not -(2**31) <= product_id < 2**31:  # a Java int path parameter, else 404
            return _not_found()
        stars = dict.fromkeys(("Reviewer1", "Reviewer2"), -1)
        if rated:
            headers = {h: request.headers[h] for h in REVIEWS_FORWARD if h in request.headers}
            answer = _get(f"{ratings_service}/{product_id}", {**headers, "Accept": "application/json"}, timeout)
            if answer is not None and answer[0] == 200:
                found = _field(json.loads(answer[1]), "ratings")
                stars.update({k: int(v) for k, v in found.items() if k in stars} if isinstance(found, dict) else {})
            else:
                print(f"Error: unable to contact {ratings_service} got {answer[0] if answer else 'no answer'}",
                      flush=True)
        items = []
        for reviewer, text in REVIEWS:
            item: dict[str, Any] = {"reviewer": reviewer, "text": text}
            if rated:  # v1 has no rating at all; a missing rating is an error, not a zero
                item["rating"] = ({"stars": stars[reviewer], "color": color} if stars[reviewer] != -1
                                  else {"error": "Ratings service is currently unavailable"})
            items.append(item)
        # HOSTNAME is the pod's name in Kubernetes; Java prints an unset variable as "null".
        return _json(200, {"id": str(product_id), "podname": _env("HOSTNAME", "null"),
                           "clustername": _env("CLUSTER_NAME", "null"), "reviews": items})

    return serve


# --- ratings: samples/bookinfo/src/ratings/ratings.js@1.30.3 (v1: in memory) ------------------------------------

def ratings_app(request: Request) -> Reply:
    if request.path == "/health":
        return _json(200, {"status": "Ratings is healthy"}, compact=True)
    if request.path.startswith("/ratings/"):
        # parseInt() of what follows the URL's last slash: leading digits count, the rest is ignored.
        match = re.match(r"\s*([+-]?[0-9]+)", request.target.rsplit("/", 1)[1])
        if match is None:
            return _json(400, {"error": "please provide numeric product ID"}, compact=True)
        return _json(200, {"id": int(match[1]), "ratings": {"Reviewer1": 5, "Reviewer2": 4}}, compact=True)
    return _not_found()


# --- echo: Ealenn/Echo-Server src/app.js@0.9.2 and src/response/{host,http,request,environment}.js@0.9.2 --------

def _cookies(header: str) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for pair in header.split(";"):
        name, eq, value = pair.partition("=")
        if eq and name.strip():
            cookies.setdefault(name.strip(), unquote(value.strip().strip('"')))  # the first one wins
    return cookies


def _body(request: Request) -> Any:
    """req.body after body-parser: JSON for application/json and application/ld+json, text for text/plain,
    fields for urlencoded forms, {} otherwise and when there is none."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not request.body:
        return {}
    if kind in ("application/json", "application/ld+json"):
        return json.loads(request.body)
    if kind == "text/plain":
        return request.body.decode(errors="replace")
    if kind == "application/x-www-form-urlencoded":
        return dict(parse_qsl(request.body.decode(errors="replace"), keep_blank_values=True))
    return {}


def echo_app(request: Request) -> Reply:
    path, _, query = request.target.partition("?")
    host = request.headers.get("host")
    hostname = None
    if host:  # Express's req.hostname: the Host header without its port
        end = host.find(":", host.find("]") + 1 if host.startswith("[") else 0)
        hostname = host if end == -1 else host[:end]
    values: dict[str, list[str]] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        values.setdefault(key, []).append(value)
    try:
        body = _body(request)
    except ValueError:
        return Reply(400, "Bad Request", HTML)  # body-parser rejects JSON that does not parse
    # Node listens on :: and sees IPv4 clients as IPv4-mapped addresses.
    ip = request.client if ":" in request.client else f"::ffff:{request.client}"
    doc = {
        "host": {**({"hostname": hostname} if hostname is not None else {}), "ip": ip, "ips": []},
        "http": {"method": request.method, "baseUrl": "", "originalUrl": request.target, "protocol": "http"},
        "request": {
            "params": {"0": unquote(path)},  # app.all('*')
            "query": {k: v[0] if len(v) == 1 else v for k, v in values.items()},
            "cookies": _cookies(request.headers.get("cookie", "")),
            "body": body,
            "headers": request.headers,
        },
        # process.env: on the local backend the container's env from the pod spec (containers.py), as in the image.
        "environment": dict(os.environ),
    }
    return _json(200, doc, compact=True, content_type="application/json; charset=utf-8")


# --- serving ------------------------------------------------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    app: App
    any_method = False  # the Bookinfo stand-ins answer GET (and HEAD); echo answers every method


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Envoy's upstream connections expect
    # Headers and body are two writes: with Nagle's algorithm the body waited for the peer's delayed ACK
    # (about 40 ms per hop), a stall the upstream servers do not have.
    disable_nagle_algorithm = True
    server_version = "multirev-stand-in"
    sys_version = ""
    server: _Server

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self) -> None:
        body = self._read_body()  # always, so that the next request on the connection starts where it should
        headers: dict[str, str] = {}
        for name, value in self.headers.items():  # Node's req.headers: lower-case, repeats joined
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        request = Request(self.command, self.path, headers, body, self.client_address[0])
        if not self.server.any_method and self.command not in ("GET", "HEAD"):
            reply = Reply(405, "<h1>Method Not Allowed</h1>", HTML)
        else:
            try:
                reply = self.server.app(request)
            except Exception as error:  # the upstream apps answer 500 when a handler fails
                print(f"error: {request.method} {request.target}: {error!r}", flush=True)
                reply = Reply(500, "<h1>Internal Server Error</h1>", HTML)
        data = reply.body.encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        # One line per request on stdout, which is what `kubectl logs` shows for the pod.
        print(f"{self.address_string()} [{self.log_date_time_string()}] {format % args}", flush=True)


IMAGES: dict[str, tuple[str, list[str]]] = {
    # samples/bookinfo/platform/kube/bookinfo.yaml@1.30.3 (and docker-bake.hcl@1.30.3 for the image names)
    "examples-bookinfo-productpage-v1": ("productpage", []),
    "examples-bookinfo-details-v1": ("details", []),
    "examples-bookinfo-ratings-v1": ("ratings", []),
    **{f"examples-bookinfo-reviews-{v}": ("reviews", ["--version", v]) for v in ("v1", "v2", "v3")},
    "ealen/echo-server": ("echo", []),
}


def stand_in(image: str) -> tuple[str, list[str]] | None:
    """(app, extra args) for a container image the stand-ins replace, whatever its registry and tag; None for others
    (nginx, curl, and the Bookinfo variants not copied here: details-v2, ratings-v2 and the faulty ratings, the
    flooding productpage)."""
    parts = image.split("@", 1)[0].split("/")
    parts[-1] = parts[-1].split(":", 1)[0]
    found = IMAGES.get(parts[-1]) or IMAGES.get("/".join(parts[-2:]))
    return (found[0], list(found[1])) if found else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", choices=("productpage", "details", "reviews", "ratings", "echo"))
    parser.add_argument("--version", default="v1", help="reviews: v1 (no ratings), v2 (black stars), v3 (red)")
    parser.add_argument("--port", type=int, help="default 9080; echo: $PORT, else 80 (src/global.json@0.9.2)")
    args = parser.parse_args(argv)
    port = args.port if args.port is not None else int(os.environ.get("PORT", 80)) if args.app == "echo" else 9080
    server = _Server(("0.0.0.0", port), _Handler)
    apps: dict[str, App] = {"productpage": productpage_app, "details": details_app, "ratings": ratings_app,
                            "echo": echo_app}
    server.app = reviews_app(args.version) if args.app == "reviews" else apps[args.app]
    server.any_method = args.app == "echo"

    def stop(signum: int, _frame: object) -> None:
        print(f"{signal.Signals(signum).name} received, stopping", flush=True)
        threading.Thread(target=server.shutdown, daemon=True).start()  # shutdown() waits for serve_forever()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"{args.app}{' ' + args.version if args.app == 'reviews' else ''} listening on 0.0.0.0:{port}", flush=True)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
