"""Do a revision's ingress gateway and routes answer as Bookinfo and the samples should?"""

from __future__ import annotations

import html
import re

from multirev.backends.base import HttpResponse

BOOKINFO_TITLE = "Simple Bookstore App"  # samples/bookinfo productpage template title
# What productpage shows of its backends (samples/bookinfo/src/productpage/templates/productpage.html, the same at
# 1.18.7, 1.19.10, 1.29.6, 1.30.3 and 1.31.0-rc.0): the details table, or an error; each review with who served it,
# or an error. productpage answers 200 either way (productpage.py front()), so the title alone proves only that the
# page rendered.
BACKEND_MARKS = (("details", "Book Details", "Error fetching product details"),
                 ("reviews", "Reviews served by:", "Error fetching product reviews"))


def _describe(response: HttpResponse) -> str:
    return f"HTTP {response.status}" + (f" ({response.body.strip()[:120]})" if response.status != 200 else "")


def check_productpage(where: str, response: HttpResponse) -> list[str]:
    problems = []
    if response.status != 200:
        problems.append(f"GET /productpage through {where} returned {_describe(response)}, expected 200")
        return problems
    if response.headers.get("server") != "istio-envoy":
        problems.append(f"GET /productpage through {where} was not served by Envoy (server: "
                        f"{response.headers.get('server')})")
    if BOOKINFO_TITLE not in response.body:
        problems.append(f"GET /productpage through {where} has no '{BOOKINFO_TITLE}' title")
        return problems
    for backend, shown, error in BACKEND_MARKS:
        if error in response.body:
            # The template follows the error with the backend's own error text in the next paragraph.
            said = re.search(re.escape(error) + r"</p>\s*<p[^>]*>(.*?)</p>", response.body, re.S)
            detail = " ".join(html.unescape(said[1]).split())[:120] if said else ""
            problems.append(f"GET /productpage through {where} rendered, but productpage could not reach {backend}: "
                            f"'{error}'" + (f" ({detail})" if detail else ""))
        elif shown not in response.body:
            problems.append(f"GET /productpage through {where} shows nothing from {backend} ('{shown}' missing)")
    return problems


def check_sample(where: str, path: str, host: str, response: HttpResponse, marker: str) -> list[str]:
    if response.status != 200:
        return [f"GET {path} (Host {host}) through {where} returned {_describe(response)}, expected 200"]
    if marker not in response.body:
        return [f"GET {path} (Host {host}) through {where} did not reach its sample: '{marker}' missing"]
    return []


def check_unrouted(where: str, path: str, host: str, owner: str, response: HttpResponse) -> list[str]:
    """`host` and `path` are the other revision's samples, routed only by `owner` (that revision's gateway):
    through `where` they must get Envoy's 404."""
    if response.status != 404:
        # The body too: what answered (the echo sample names its pod and namespace) shows where the route leads.
        answer = f"HTTP {response.status}" + (f" ({response.body.strip()[:120]})" if response.body.strip() else "")
        return [f"GET {path} with Host {host}, which only {owner} routes, through {where} returned {answer}, "
                "expected 404: a route of the other revision leaked into this gateway"]
    return []
