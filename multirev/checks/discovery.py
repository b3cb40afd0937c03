"""Does each injected proxy talk to its own revision's istiod?"""

from __future__ import annotations

import json

from multirev.commands import Completed


def discovery_address_of(result: Completed) -> str | None:
    """`proxy-config bootstrap -o json`: bootstrap.node.metadata.PROXY_CONFIG.discoveryAddress
    (tests/integration/pilot/revisions/revision_tag_test.go reads the same field)."""
    if result.returncode != 0:
        return None
    try:
        node = json.loads(result.stdout)["bootstrap"]["node"]
        return node["metadata"]["PROXY_CONFIG"]["discoveryAddress"]
    except (ValueError, KeyError, TypeError):
        return None


def check_discovery(pod_ref: str, result: Completed, expected: str) -> list[str]:
    if result.returncode != 0:
        return [f"`istioctl proxy-config bootstrap` for {pod_ref} failed: {result.stderr.strip()}"]
    found = discovery_address_of(result)
    if found != expected:
        return [f"{pod_ref} proxy talks to {found}, expected {expected}"]
    return []
