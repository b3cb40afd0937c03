"""Load manifests: the project's own (manifests/) or an Istio release's samples, placed into a namespace.

A declared manifest is either a path under manifests/ or `samples:<path>`, a path under the samples/
folder of the control plane's Istio release (the simulated backend has Bookinfo-shaped stand-ins under
manifests/simulated-samples/). The project's own files may use ${REVISION}, ${TAG} and ${HOST}.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from string import Template
from typing import Any

import yaml

from multirev.kube.objects import Obj
from multirev.paths import MANIFESTS

SAMPLES_PREFIX = "samples:"


def source_path(declared: str, samples_dir: Path) -> Path:
    if declared.startswith(SAMPLES_PREFIX):
        return samples_dir / declared.removeprefix(SAMPLES_PREFIX)
    return MANIFESTS / declared


@cache
def _load(path: Path, variables: tuple[tuple[str, str], ...]) -> tuple[Obj, ...]:
    text = Template(path.read_text()).safe_substitute(dict(variables))
    return tuple(d for d in yaml.safe_load_all(text) if d)


def render(declared: str, namespace: str, labels: dict[str, str] | None = None, *,
           variables: dict[str, str] | None = None, samples_dir: Path = MANIFESTS / "simulated-samples") -> list[Obj]:
    docs = []
    for doc in _load(source_path(declared, samples_dir), tuple(sorted((variables or {}).items()))):
        doc: dict[str, Any] = copy.deepcopy(doc)
        meta = doc.setdefault("metadata", {})
        meta["namespace"] = namespace
        meta["labels"] = {**(meta.get("labels") or {}), **(labels or {})}
        docs.append(doc)
    return docs
