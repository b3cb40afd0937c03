"""Sending requests the way a person would: curl to a gateway from the host, curl from a mesh pod."""

from __future__ import annotations

import json

from multirev.backends.base import Cluster, Endpoint, HttpResponse
from multirev.kube import kinds
from multirev.kube.objects import Obj

CLIENT_APP = "mesh-client"
CLIENT_CONTAINER = "curl"


def gateway_get(cluster: Cluster, endpoint: Endpoint, path: str, host: str) -> HttpResponse:
    return cluster.http_get(endpoint, path, host)


def ready_client(cluster: Cluster, namespace: str, labels: dict[str, str] | None = None) -> Obj | None:
    """A ready pod of the in-mesh client, carrying `labels` too (the run-id label: in an app namespace borrowed on
    an existing cluster a pod of the user's could also be called mesh-client, and it is not the run's to exec in)."""
    for pod in cluster.list(kinds.POD, namespace, labels={**(labels or {}), "app": CLIENT_APP}):
        conditions = pod.get("status", {}).get("conditions", [])
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            return pod
    return None


def mesh_get(cluster: Cluster, namespace: str, url: str, *, labels: dict[str, str] | None = None) -> HttpResponse:
    """curl from the namespace's in-mesh client (one carrying `labels`, see ready_client); the status code is the
    last line (-w)."""
    pod = ready_client(cluster, namespace, labels)
    if pod is None:
        return HttpResponse(0, {}, f"no ready {CLIENT_APP} pod in {namespace}")
    result = cluster.exec(namespace, pod["metadata"]["name"], CLIENT_CONTAINER,
                          ["curl", "-sS", "-m", "5", "-w", "\n%{http_code}", url])
    if result.returncode != 0:
        return HttpResponse(0, {}, (result.stderr or result.stdout).strip())
    body, _, code = result.stdout.rpartition("\n")
    return HttpResponse(int(code) if code.strip().isdigit() else 0, {}, body)


def reviews_version(response: HttpResponse) -> str | None:
    """Tell the reviews version from its JSON (samples/bookinfo/src/reviews): v1 has no rating,
    v2 rates in black, v3 in red."""
    if response.status != 200:
        return None
    try:
        reviews = json.loads(response.body).get("reviews") or []
    except (ValueError, AttributeError):
        return None
    ratings = [r.get("rating") for r in reviews]
    if not reviews:
        return None
    if all(r is None for r in ratings):
        return "v1"
    colors = {(r or {}).get("color") for r in ratings}
    return {"black": "v2", "red": "v3"}.get(colors.pop()) if len(colors) == 1 else None
