"""Does the right istiod push a namespace's config, and the other one not?

The push line is `Push debounce stable[N] M for config Kind/namespace/name: ...`, and it names only the
first config of a batch, then ` and K more configs` (istio@1.30.3:pilot/pkg/xds/discovery.go
configsUpdated; unchanged since 1.18.5). The suite therefore applies a uniquely named probe object
alone, so it is the first (and only) key of its push.

The key is `Kind/namespace/name` (pilot/pkg/model/config.go ConfigKey.String) with the object's name for
VirtualService, DestinationRule and Gateway (istio@1.30.3:pilot/pkg/bootstrap/server.go configHandler, and for
VirtualServices pilot/pkg/model/virtualservice_controller.go xdsPush), but a ServiceEntry is pushed once per host,
keyed by the host name (istio@1.30.3:pilot/pkg/serviceregistry/serviceentry/auto_allocation.go makeConfigKey;
istio@1.18.5:pilot/pkg/serviceregistry/serviceentry/controller.go makeConfigKey). Each probe therefore has one host.
"""

from __future__ import annotations

from multirev.kube import kinds
from multirev.kube.kinds import Kind
from multirev.kube.objects import Obj

# The config kinds the suite applies, each probed on its own.
PROBE_KINDS = ("VirtualService", "DestinationRule", "Gateway", "ServiceEntry")
# Changes within PILOT_DEBOUNCE_AFTER (100 ms by default; istio@1.30.3:pilot/pkg/features/tuning.go, istio@1.18.5:
# pilot/pkg/features/pilot.go) share one push line, which names one of them: the previous change (say, the last probe's
# deletion) must not share a probe's push, so each probe waits this long (seconds) before it is applied.
QUIET_BEFORE_PROBE = 2.0


def probe_config(kind: str, name: str, namespace: str, labels: dict[str, str]) -> tuple[Kind, Obj, str]:
    """A config object of `kind` that affects nothing else (its hosts and gateway selector are its own name), and
    the config key its push line names."""
    host = f"{name}.{namespace}.svc.cluster.local"
    meta = {"name": name, "namespace": namespace, "labels": dict(labels)}
    if kind == "VirtualService":
        spec: dict = {"hosts": [host], "http": [{"route": [{"destination": {"host": "productpage"}}]}]}
        target = kinds.VIRTUAL_SERVICE
    elif kind == "DestinationRule":
        spec = {"host": host}
        target = kinds.DESTINATION_RULE
    elif kind == "Gateway":
        spec = {"selector": {"istio": "xds-probe-selects-nothing"},
                "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": [f"{name}.example"]}]}
        target = kinds.GATEWAY
    elif kind == "ServiceEntry":
        host = f"{name}.example"
        spec = {"hosts": [host], "location": "MESH_EXTERNAL", "resolution": "DNS",
                "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}]}
        target = kinds.SERVICE_ENTRY
        return target, {"apiVersion": target.api_version, "kind": kind, "metadata": meta, "spec": spec}, \
            f"ServiceEntry/{namespace}/{host}"
    else:
        raise ValueError(f"no xDS probe for kind {kind}")
    return target, {"apiVersion": target.api_version, "kind": kind, "metadata": meta, "spec": spec}, \
        f"{kind}/{namespace}/{name}"


def config_keys(obj: Obj) -> list[str]:
    """The config keys a change of `obj` pushes: `Kind/namespace/name`, but one `ServiceEntry/namespace/<host>`
    per host of a ServiceEntry (both cited above)."""
    namespace = obj["metadata"].get("namespace", "")
    if obj["kind"] == "ServiceEntry":
        return [f"ServiceEntry/{namespace}/{host}" for host in (obj.get("spec") or {}).get("hosts") or []]
    return [f"{obj['kind']}/{namespace}/{obj['metadata']['name']}"]


def push_lines(logs: str, key: str) -> list[str]:
    return pushes_naming_any(logs, [key])


def pushes_naming_any(logs: str, keys: list[str]) -> list[str]:
    """Push lines that name one of `keys`. Several objects applied together are debounced into one push whose
    line names one of them, whichever came first, so a wait for a batch waits for any of its keys."""
    return [line for line in logs.splitlines() if "Push debounce stable[" in line
            and any(f"for config {key}:" in line or f"for config {key} and " in line for key in keys)]


def check_push_isolation(key: str, own: str, own_logs: str, other: str, other_logs: str) -> list[str]:
    problems = []
    if not push_lines(own_logs, key):
        problems.append(f"{own} logged no push for config {key}")
    leaked = push_lines(other_logs, key)
    if leaked:
        problems.append(f"{other} also pushed config {key}, which it should not see: {leaked[0].strip()}")
    return problems
