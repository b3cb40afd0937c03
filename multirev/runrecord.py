"""The run record: written into a cluster the run does not own before anything else of the run exists there, so
that a run killed outright (SIGKILL, a lost CI runner: no teardown at all) can be found and removed later
(multirev/cleanup.py, `./run cleanup`).

It lives in the cluster, not on the host, because the host may be gone with the run. It is a Namespace of its own,
`multirev-run-<run id>`:

- cluster-scoped, so it depends on no namespace of the run or of the user, and reading it needs no other object;
- labelled with the run id, so an ordinary teardown removes it with the run's other namespaces (last:
  multirev/backends/existing.py stop), and with RECORD_LABEL, so every record on a cluster is one list call;
- the record itself is one JSON annotation (names and labels only; annotations may total 256 KiB);
- the heartbeat is a label holding epoch seconds, refreshed with a merge patch (`Cluster.label`), which fails on a
  deleted record instead of creating it again the way an apply would;
- the spec of each Istio CRD that existed (too large for an annotation) is a compressed ConfigMap in the record's
  namespace, so that cleanup can put back CRDs a newer install rewrote, as an ordinary teardown does; so is each
  Istio webhook configuration that existed, whole (multirev/webhook_record.py), so that cleanup can give back the
  default injector and validator an install changed.
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import os
import re
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from multirev import webhook_record
from multirev.backends.base import Cluster
from multirev.errors import UsageError
from multirev.footprint import PUBLISHED_NAMES, Footprint
from multirev.istio import facts, helm
from multirev.kube import kinds
from multirev.kube.objects import Obj, annotations_of, labels_of
from multirev.plan import RUN_ID_LABEL, MeshPlan

log = logging.getLogger("multirev")

RECORD_PREFIX = "multirev-run-"
RECORD_LABEL = "conformance.multirev.io/record"
HEARTBEAT_LABEL = "conformance.multirev.io/heartbeat"  # epoch seconds of the last beat: a valid label value
RECORD_ANNOTATION = "conformance.multirev.io/run-record"
CRD_SPEC_LABEL = "conformance.multirev.io/crd-spec"  # on a record ConfigMap: the CRD whose spec it holds
CRD_SPEC_KEY = "spec.json.zlib.b64"
HEARTBEAT_INTERVAL = 30.0
# A record whose heartbeat is older than this belongs to a dead run: ten missed beats, which also absorbs a few
# minutes of clock skew between the run's host and the one judging it.
DEAD_AFTER = 300.0
# Under the API server's 256 KiB for all annotations together, with room for other annotations.
RECORD_BUDGET = 200_000
_COMPRESSED = "zlib:"  # a JSON text never starts so; a record too large as text is stored compressed
_DNS_LABEL_MAX = 63


def record_namespace(run_id: str) -> str:
    """`multirev-run-<run id>`; a run id that is no DNS label (a --run-id of the user's) is folded into one, with
    a hash of the original so that two such ids do not meet."""
    plain = re.sub(r"[^a-z0-9-]+", "-", run_id.lower()).strip("-")
    if plain == run_id and len(RECORD_PREFIX) + len(plain) <= _DNS_LABEL_MAX:
        return RECORD_PREFIX + plain
    digest = format(zlib.crc32(run_id.encode()), "08x")
    room = _DNS_LABEL_MAX - len(RECORD_PREFIX) - len(digest) - 1
    return f"{RECORD_PREFIX}{plain[:room].strip('-') or 'id'}-{digest}"


def iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


@dataclass(frozen=True)
class PlaneRecord:
    role: str
    istio: str
    revision: str
    namespace: str  # where its istiod runs
    tag: str
    app_namespaces: tuple[str, ...]
    discovery_labels: dict[str, str]  # what the run sets on a namespace this revision should see


@dataclass
class RunRecord:
    """Who ran, what it was going to make, and what the cluster had before it (what cleanup must give back)."""

    run_id: str
    started: float  # epoch seconds
    host: str
    pid: int
    profile: str
    layout: str
    planes: list[PlaneRecord]
    workload_namespaces: list[str]  # app namespaces and the egress scenario's
    namespaces_before: dict[str, dict[str, str]]  # the run's namespaces that existed -> their labels
    webhooks_before: list[tuple[str, str]]  # (kind, name) of every webhook configuration that existed
    crds_before: dict[str, dict[str, str]]  # Istio CRDs that existed -> their labels (no spec: too large)
    published_before: list[tuple[str, str]]  # (namespace, name) of istiod's CA ConfigMaps that existed
    # --installer helm: (namespace, release) of each Helm release the run makes (multirev/istio/helm.py releases)
    helm_releases: list[tuple[str, str]] = field(default_factory=list)
    # (kind, namespace, name) of istiod's run-time objects that existed in the control planes' namespaces
    runtime_before: list[tuple[str, str, str]] = field(default_factory=list)
    # --installed: the revisions are the cluster's; cleanup leaves them, their tags, webhooks and CRDs alone
    installed: bool = False
    heartbeat: float | None = field(default=None, compare=False)  # read from the label, not the JSON

    @classmethod
    def of(cls, plan: MeshPlan, footprint: Footprint, *, now: float) -> RunRecord:
        planes = [PlaneRecord(p.role, str(p.plane.version), p.plane.revision, p.plane.namespace, p.plane.tag,
                              tuple(p.plane.app_namespaces), dict(p.discovery_labels)) for p in plan.planes]
        own = {p.namespace for p in planes} | set(plan.workload_namespaces)
        return cls(plan.run_id, now, socket.gethostname(), os.getpid(), plan.profile.name, plan.profile.layout,
                   planes, list(plan.workload_namespaces),
                   {ns: dict(labels) for ns, labels in sorted(footprint.namespaces_before.items()) if ns in own},
                   sorted(footprint.webhooks_before), dict(sorted(footprint.crds_before.items())),
                   sorted(footprint.published_before),
                   helm.releases(plan) if plan.profile.installer == "helm" else [],
                   sorted(r for r in footprint.runtime_before if r[1] in {p.namespace for p in planes}),
                   plan.installed)

    @property
    def namespace(self) -> str:
        return record_namespace(self.run_id)

    @property
    def revisions(self) -> set[str]:
        return {p.revision for p in self.planes}

    @property
    def tags(self) -> set[str]:
        return {p.tag for p in self.planes}

    @property
    def control_plane_namespaces(self) -> list[str]:
        return sorted({p.namespace for p in self.planes})

    def label_keys_the_run_sets(self, namespace: str) -> set[str]:
        """The labels the run may have set on a namespace it borrowed: every revision's discovery label (the canary
        upgrade adds the other revision's), and on an app namespace istio.io/rev (fixtures/mesh.py populate_mesh,
        suites/test_canary_upgrade.py move)."""
        keys = {key for p in self.planes for key in p.discovery_labels}
        if any(namespace in p.app_namespaces for p in self.planes):
            keys.add(facts.REV_LABEL)
        return keys

    def silent_for(self, now: float) -> float:
        return now - (self.heartbeat if self.heartbeat is not None else self.started)

    def dead(self, now: float) -> bool:
        """No beat for DEAD_AFTER seconds, or written on this host by a process that no longer exists (a CI step
        right after a cancelled run need not wait out DEAD_AFTER)."""
        return self.silent_for(now) > DEAD_AFTER or (self.host == socket.gethostname() and not _alive(self.pid))

    def to_json(self) -> str:
        published: dict[str, list[str]] = {}
        for namespace, name in self.published_before:  # by name: one list of namespaces each, half the size
            published.setdefault(name, []).append(namespace)
        return json.dumps({
            "run_id": self.run_id, "started": iso(self.started), "host": self.host, "pid": self.pid,
            "profile": self.profile, "layout": self.layout,
            "planes": [{"role": p.role, "istio": p.istio, "revision": p.revision, "namespace": p.namespace,
                        "tag": p.tag, "app_namespaces": list(p.app_namespaces),
                        "discovery_labels": p.discovery_labels} for p in self.planes],
            "workload_namespaces": self.workload_namespaces,
            "found": {"namespaces": self.namespaces_before,
                      "webhooks": [list(hook) for hook in self.webhooks_before],
                      "istio_crds": self.crds_before, "ca_configmaps": published},
            **({"helm_releases": [list(r) for r in self.helm_releases]} if self.helm_releases else {}),
            **({"istiod_runtime": [list(r) for r in self.runtime_before]} if self.runtime_before else {}),
            **({"installed": True} if self.installed else {}),
        }, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        data = json.loads(text)
        found = data["found"]
        planes = [PlaneRecord(p["role"], p["istio"], p["revision"], p["namespace"], p["tag"],
                              tuple(p["app_namespaces"]), dict(p["discovery_labels"])) for p in data["planes"]]
        published = sorted((namespace, name) for name, namespaces in found["ca_configmaps"].items()
                           for namespace in namespaces)
        return cls(data["run_id"], _epoch(data["started"]), data["host"], int(data["pid"]), data["profile"],
                   data["layout"], planes, list(data["workload_namespaces"]), found["namespaces"],
                   [(kind, name) for kind, name in found["webhooks"]], found["istio_crds"], published,
                   [(namespace, release) for namespace, release in data.get("helm_releases", [])],
                   [(kind, namespace, name) for kind, namespace, name in data.get("istiod_runtime", [])],
                   bool(data.get("installed", False)))

    def as_namespace(self) -> Obj:
        return {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": self.namespace,
                             "labels": {RUN_ID_LABEL: self.run_id, RECORD_LABEL: "true",
                                        HEARTBEAT_LABEL: str(int(self.started))},
                             "annotations": {RECORD_ANNOTATION: encode(self.to_json())}}}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def encode(text: str) -> str:
    if len(text.encode()) <= RECORD_BUDGET:
        return text
    packed = _COMPRESSED + base64.b64encode(zlib.compress(text.encode(), 9)).decode()
    if len(packed) > RECORD_BUDGET:
        raise UsageError(f"the run record would take {len(packed)} bytes even compressed, more than a namespace's "
                         f"annotations can hold ({RECORD_BUDGET}); the cluster has too many namespaces with "
                         f"{' or '.join(PUBLISHED_NAMES)} for the run to record what it must give back")
    return packed


def decode(text: str) -> str:
    return zlib.decompress(base64.b64decode(text[len(_COMPRESSED):])).decode() if text.startswith(_COMPRESSED) \
        else text


def read(namespace: Obj) -> RunRecord:
    """The record a record namespace holds; an unreadable one is one line naming it."""
    name = namespace["metadata"]["name"]
    try:
        record = RunRecord.from_json(decode(annotations_of(namespace)[RECORD_ANNOTATION]))
    except (KeyError, ValueError, TypeError, zlib.error) as exc:
        run_id = labels_of(namespace).get(RUN_ID_LABEL, "?")
        raise UsageError(f"the run record in Namespace {name} (run {run_id}) cannot be read ({type(exc).__name__}: "
                         f"{exc}); remove what carries {RUN_ID_LABEL}={run_id} by hand") from exc
    beat = labels_of(namespace).get(HEARTBEAT_LABEL, "")
    record.heartbeat = float(beat) if beat.isdigit() else None
    return record


def find(cluster: Cluster) -> list[RunRecord]:
    """Every run record on the cluster, oldest first."""
    return sorted((read(ns) for ns in cluster.list(kinds.NAMESPACE, labels={RECORD_LABEL: "true"})),
                  key=lambda r: (r.started, r.run_id))


def crd_spec_configmap(record_ns: str, crd: str, spec: dict) -> Obj:
    packed = base64.b64encode(zlib.compress(json.dumps(spec, sort_keys=True).encode(), 9)).decode()
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"crd-{crd}"[:253], "namespace": record_ns, "labels": {CRD_SPEC_LABEL: "true"},
                         "annotations": {CRD_SPEC_LABEL: crd}},
            "data": {CRD_SPEC_KEY: packed}}


def crd_specs(cluster: Cluster, run_id: str) -> dict[str, dict]:
    """CRD name -> its spec before the run, as the record keeps them."""
    found = {}
    for cm in cluster.list(kinds.CONFIGMAP, record_namespace(run_id), labels={CRD_SPEC_LABEL: "true"}):
        crd = annotations_of(cm).get(CRD_SPEC_LABEL)
        packed = (cm.get("data") or {}).get(CRD_SPEC_KEY)
        if crd and packed:
            found[crd] = json.loads(zlib.decompress(base64.b64decode(packed)))
    return found


def write(cluster: Cluster, record: RunRecord, crd_specs_before: dict[str, dict] | None = None,
          webhook_configs_before: webhook_record.Recorded | None = None) -> None:
    """Create the record; one that exists for this run id is another run's or a killed one's, never overwritten.
    Beside it, the spec of each Istio CRD and each Istio webhook configuration whole, as they were."""
    if cluster.get(kinds.NAMESPACE, record.namespace) is not None:
        raise UsageError(f"Namespace {record.namespace} already exists: a run with id {record.run_id} is running on "
                         f"this cluster or was killed; remove what it left with `./run cleanup --run-id "
                         f"{record.run_id}`, or use another --run-id")
    cluster.apply(record.as_namespace())
    for crd, spec in sorted((crd_specs_before or {}).items()):
        cluster.apply(crd_spec_configmap(record.namespace, crd, spec))
    for _, config in sorted((webhook_configs_before or {}).items()):
        cluster.apply(webhook_record.configmap(record.namespace, config))


class Heartbeat:
    """Refreshes the record's heartbeat label every `interval` seconds from a daemon thread while the run lives;
    a process killed outright takes the thread with it, and the record goes dead DEAD_AFTER seconds later."""

    def __init__(self, cluster: Cluster, run_id: str, *, interval: float = HEARTBEAT_INTERVAL,
                 now: Callable[[], float] = time.time) -> None:
        self.cluster = cluster
        self.namespace = record_namespace(run_id)
        self.interval = interval
        self.now = now
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        self.cluster.label(kinds.NAMESPACE, self.namespace, {HEARTBEAT_LABEL: str(int(self.now()))})

    def start(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._run, name=f"heartbeat {self.namespace}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                self.beat()
            except Exception as exc:  # a failed beat must not end the run; the next one tries again
                log.warning("heartbeat of %s failed: %s", self.namespace, exc)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 15)


def begin(cluster: Cluster, plan: MeshPlan, footprint: Footprint, *, beat: bool) -> Heartbeat:
    """Write the record and (with `beat`: a real cluster, wall-clock time) keep its heartbeat fresh."""
    write(cluster, RunRecord.of(plan, footprint, now=time.time()), footprint.crd_specs_before,
          footprint.webhook_configs_before)
    heartbeat = Heartbeat(cluster, plan.run_id)
    return heartbeat.start() if beat else heartbeat
