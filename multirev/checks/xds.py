"""Does the right istiod push a namespace's config, and the other one not?

The push line is `Push debounce stable[N] M for config Kind/namespace/name: ...`, and it names only the
first config of a batch, then ` and K more configs` (istio@1.30.3:pilot/pkg/xds/discovery.go
configsUpdated; unchanged since 1.18.5). The suite therefore applies a uniquely named probe object
alone, so it is the first (and only) key of its push.
"""

from __future__ import annotations


def push_lines(logs: str, key: str) -> list[str]:
    return [line for line in logs.splitlines() if "Push debounce stable[" in line and f"for config {key}" in line]


def check_push_isolation(key: str, own: str, own_logs: str, other: str, other_logs: str) -> list[str]:
    problems = []
    if not push_lines(own_logs, key):
        problems.append(f"{own} logged no push for config {key}")
    leaked = push_lines(other_logs, key)
    if leaked:
        problems.append(f"{other} also pushed config {key}, which it should not see: {leaked[0].strip()}")
    return problems
