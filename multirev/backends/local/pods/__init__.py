"""The local backend's pods: their network namespaces, real Istio proxies and workloads.

`DataPlane` (dataplane.py) is the one entry point, as `IstiodRunner` is for istiod. It is loaded on first
use, so that `python -m multirev.backends.local.pods.apps` (a pod's workload) imports nothing else.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DataPlane", "PodApi"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from multirev.backends.local.pods import dataplane

        return getattr(dataplane, name)
    raise AttributeError(name)
