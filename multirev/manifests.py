"""Load the project's own manifests from manifests/, placed into a namespace."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import yaml

from multirev.kube.objects import Obj
from multirev.paths import MANIFESTS


@cache
def _load(relative: str) -> tuple[Obj, ...]:
    return tuple(d for d in yaml.safe_load_all((MANIFESTS / relative).read_text()) if d)


def render(relative: str, namespace: str, labels: dict[str, str] | None = None) -> list[Obj]:
    docs = []
    for doc in _load(relative):
        doc: dict[str, Any] = copy.deepcopy(doc)
        meta = doc.setdefault("metadata", {})
        meta["namespace"] = namespace
        meta["labels"] = {**(meta.get("labels") or {}), **(labels or {})}
        docs.append(doc)
    return docs
