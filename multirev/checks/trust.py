"""Both revisions trust one root, so workloads moving between them keep completing mTLS."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from multirev.istio.trust import ROOT_CONFIGMAP, ROOT_CONFIGMAP_KEY, fingerprint
from multirev.kube.objects import Obj


@dataclass(frozen=True)
class PublishedRoot:
    """What a control plane's namespace holds in istio-ca-root-cert (its istiod's namespace controller writes it)."""

    revision: str
    namespace: str
    config_map: Obj | None


def root_of(config_map: Obj | None) -> str | None:
    if config_map is None:
        return None
    data = config_map.get("data") or {}
    if ROOT_CONFIGMAP_KEY in data:
        return data[ROOT_CONFIGMAP_KEY]
    binary = (config_map.get("binaryData") or {}).get(ROOT_CONFIGMAP_KEY)
    return base64.b64decode(binary).decode() if binary else None


def trust_root_problems(published: list[PublishedRoot]) -> list[str]:
    """Each control plane has published a root, and it is the same one. (In the shared layout both istiods read
    one namespace's CA, so there is one ConfigMap to read and nothing to disagree.)"""
    roots: dict[str, tuple[str, str]] = {}  # namespace -> (revision, fingerprint)
    problems = []
    for entry in published:
        if entry.namespace in roots:
            continue
        root = root_of(entry.config_map)
        if root is None:
            problems.append(f"ConfigMap {entry.namespace}/{ROOT_CONFIGMAP} has no {ROOT_CONFIGMAP_KEY}: "
                            f"istiod-{entry.revision} has not published its trust root")
            continue
        roots[entry.namespace] = (entry.revision, fingerprint(root))
    if len({print_ for _, print_ in roots.values()}) > 1:
        described = " vs ".join(f"{rev} ({ns}) root {print_}" for ns, (rev, print_) in roots.items())
        problems.append(f"the revisions have different trust roots: {described}; workloads of one cannot complete "
                        "mTLS with the other, so a namespace moving between them loses traffic. Plug one root into "
                        "both control planes (a `cacerts` Secret with its own intermediate in each namespace, before "
                        "install)")
    return problems
