"""A real Kubernetes API server to run the suite's `--backend existing` against, and snapshots to diff it by.

The bed is the local backend's control plane (etcd, kube-apiserver, controllers, KWOK, and real istiods that its
IstiodRunner starts behind KWOK's istiod pods), reached from the host through the backend's 127.0.0.1
forwarder, plus an offline Istio release mirror of the local build so the existing backend's `ensure_release`
finds istioctl and the samples without a network. A child `pytest suites --backend existing` run then talks to
the bed as to anyone's cluster; `snapshot` and `diff` show what it changed.

    with existing_cluster(tmp_path) as bed:
        populate_foreign(bed)
        before = snapshot(bed.cluster)
        run = run_suite_on(bed, tmp_path / "reports", "-k", "control_plane")
        assert run.returncode == 0, run.output
        after = snapshot(bed.cluster)
        assert diff(before, after, foreign_only=True) == []  # nothing that was there changed or went
        assert added(before, after) == []  # nothing the run made survived its teardown
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from multirev.backends.kube import KubeCluster
from multirev.backends.local import build
from multirev.backends.local.backend import LocalBackend, LocalCluster, LocalOptions
from multirev.backends.local.pins import ISTIO, IstioPin
from multirev.clock import WallClock
from multirev.commands import Completed, RecordingRunner, SubprocessRunner, Transcript
from multirev.download import sha256_of
from multirev.istio.release import archive_name
from multirev.istio.versions import IstioVersion
from multirev.kube import kinds
from multirev.kube.kinds import Kind
from multirev.kube.objects import Obj
from multirev.paths import PROJECT_ROOT
from multirev.waits import Observation, wait_for
from tests.local.conftest import PROFILE, local_versions, nothing_left, require, sigint_reaches_children
from tests.suite_runner import SuiteRun

BED_RUN_ID = "existing-bed"  # the local backend's run id: names its network namespace and temporary folder
SUITE_TIMEOUT = 900.0
# The variables that would send the kubernetes client (and istioctl) to a proxy instead of 127.0.0.1.
PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
             "no_proxy")


# -- the bed ---------------------------------------------------------------------------------------------


@dataclass
class ExistingBed:
    """A running local control plane seen as an existing cluster."""

    backend: LocalBackend
    cluster: LocalCluster  # direct reads and writes (no run-id label is added)
    kubeconfig: Path  # host-side: https://127.0.0.1:<forwarder port>; names the CA and admin files, holds no key
    mirror: Path  # --istio-mirror: <mirror>/<version>/istio-<version>-linux-amd64.tar.gz and .sha256
    cache: Path  # --istio-cache: empty at start, filled by the suite's ensure_release
    versions: list[str] = field(default_factory=list)
    gateway_api_mirror: Path | None = None  # --gateway-api-mirror: <mirror>/<version>/standard-install.yaml

    def suite_options(self) -> list[str]:
        mirror = ["--gateway-api-mirror", str(self.gateway_api_mirror)] if self.gateway_api_mirror else []
        return ["--backend", "existing", "--kubeconfig", str(self.kubeconfig), "--istio-mirror", str(self.mirror),
                "--istio-cache", str(self.cache), "--profile", PROFILE, *mirror]


@contextmanager
def existing_cluster(tmp_path: Path, *, run_id: str = BED_RUN_ID,
                     audit_users: tuple[str, ...] = ()) -> Iterator[ExistingBed]:
    """Start the local backend's control plane and a release mirror under `tmp_path`; on exit (also on an
    exception or Ctrl-C) stop it and check that no process, namespace, mount or temporary folder is left.
    The API server logs `audit_users`' requests to `bed.backend.audit_log`."""
    versions = local_versions()
    require(versions)
    mirror = build_release_mirror(tmp_path / "mirror", versions)
    cache = tmp_path / "istio-cache"
    cache.mkdir(parents=True, exist_ok=True)
    work = tmp_path / "bed-work"
    runner = RecordingRunner(SubprocessRunner(), Transcript(work / "transcript.jsonl"), "local")
    backend = LocalBackend(runner, WallClock(), LocalOptions(
        run_id=run_id, worker=os.environ.get("PYTEST_XDIST_WORKER", "main"), istio_versions=versions,
        bin_cache=build.default_bin_cache(), work_dir=work,
        # The suite runs on the bed as on any existing cluster, so it sets none of the local-only Istio settings
        # upstream Envoy needs: the bed runs no proxies, and its pods are Ready as KWOK makes them.
        data_plane=False, audit_users=audit_users))
    backend.preflight()
    try:
        cluster = backend.start()
        assert isinstance(cluster, LocalCluster) and backend.kubeconfig_outside is not None
        # A copy outside the backend's temporary folder: a child whose argv names it is not taken for a process
        # the backend left (leftovers() matches the folder's name in argv). It names the same certificate files.
        kubeconfig = tmp_path / "existing.kubeconfig"
        shutil.copyfile(backend.kubeconfig_outside, kubeconfig)
        kubeconfig.chmod(0o600)
        yield ExistingBed(backend, cluster, kubeconfig, mirror, cache, versions,
                          gateway_api_mirror=build_gateway_api_mirror(tmp_path / "gateway-api-mirror", versions))
    except BaseException as exc:
        try:
            backend.stop()
        except Exception as stop_failed:  # the body's exception is the one to see; this one goes with it
            exc.add_note(f"stopping the bed failed too: {stop_failed}")
        left = nothing_left(run_id)
        if left:
            exc.add_note(f"the bed also left: {left}")
        raise
    backend.stop()
    left = nothing_left(run_id)
    assert left == {}, f"the bed left: {left}"


# -- the release mirror ------------------------------------------------------------------------------------

SAMPLES_USE = re.compile(r"""["']samples:([A-Za-z0-9_.-]+)/""")


def samples_used(suites: Path = PROJECT_ROOT / "suites") -> list[str]:
    """Top-level sample folders the suites declare (`samples:<folder>/...`, multirev/manifests.py)."""
    found = {m.group(1) for path in suites.rglob("*.py") for m in SAMPLES_USE.finditer(path.read_text())}
    return sorted(found)


def build_gateway_api_mirror(mirror: Path, versions: Iterable[str]) -> Path | None:
    """The Gateway API release manifest the suite downloads for these versions, as its release publishes it
    (<version>/standard-install.yaml): the one `./run build-local` made from the verified module, with the same
    sha256. None where no version is pinned for these minors."""
    built = build.gateway_api_manifest(list(versions))
    if built is None:
        return None
    target = mirror / built.parent.name / built.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(built, target)
    return mirror


def build_release_mirror(mirror: Path, versions: Iterable[str]) -> Path:
    """For each version, what Istio's release page offers, made from the local build: an archive holding
    istio-<V>/bin/istioctl (the built istioctl) and istio-<V>/samples/<used folders> (the pinned module's
    source), and its `.sha256` in Istio's format "<hex> <name>" (one space)."""
    cache = build.default_bin_cache()
    for version in versions:
        parsed = IstioVersion.parse(version)
        name = archive_name(parsed)
        folder = mirror / version
        folder.mkdir(parents=True, exist_ok=True)
        istioctl = build.istio_recipe(ISTIO[version]).folder(cache) / "istioctl"
        samples = build.istio_recipe(ISTIO[version]).source(cache) / "samples"
        top = f"istio-{version}"
        archive = folder / name
        # compresslevel 1: the archive is read once, by the suite, on this machine.
        with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
            _add_dir(tar, f"{top}")
            _add_dir(tar, f"{top}/bin")
            tar.add(istioctl, f"{top}/bin/istioctl", filter=_plain(0o755))
            _add_dir(tar, f"{top}/samples")
            for used in samples_used():
                tar.add(samples / used, f"{top}/samples/{used}", filter=_plain(None))
            add_release_charts(tar, top, ISTIO[version], folder / "charts")
        digest = sha256_of(archive)
        (folder / f"{name}.sha256").write_text(f"{digest} {name}\n")
    return mirror


def add_release_charts(tar: tarfile.TarFile, top: str, pin: IstioPin, work: Path) -> None:
    """istio-<V>/manifests/charts as a release archive holds them (--installer helm): the module's charts, with the
    image hub and tag the release build writes into them (istio/release-builder pkg/build/helm.go SanitizeAllCharts;
    a branch's say registry.istio.io/testing and `latest`: istio@1.30-dev manifests/charts/istio-control/
    istio-discovery/values.yaml global.hub, global.tag)."""
    charts = work / "charts"
    shutil.rmtree(charts, ignore_errors=True)
    shutil.copytree(build.istio_recipe(pin).source(build.default_bin_cache()) / build.ISTIO_CHARTS, charts,
                    copy_function=shutil.copyfile)
    values = charts / "istio-control/istio-discovery/values.yaml"
    text = values.read_text()
    for old, new in (("    hub: registry.istio.io/testing\n", f"    hub: {pin.hub}\n"),
                     ("    tag: latest\n", f"    tag: {pin.version}\n")):
        assert text.count(old) == 1, f"{values}: expected one {old.strip()!r}"
        text = text.replace(old, new)
    values.write_text(text)
    tar.add(charts, f"{top}/{build.ISTIO_CHARTS}", filter=_plain(None))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info, io.BytesIO(b""))


def _plain(exec_mode: int | None):
    """Owned by root, writable: the module cache's files are read-only (0444) and its folders 0555."""
    def reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        if exec_mode is not None:
            info.mode = exec_mode
        elif info.isdir() or info.mode & 0o111:
            info.mode = 0o755
        else:
            info.mode = 0o644
        return info
    return reset


# -- running the suite on it -------------------------------------------------------------------------------


def suite_argv(bed: ExistingBed, reports_dir: Path, *pytest_args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider", "-p", "no:xdist",
            *bed.suite_options(), "--reports-dir", str(reports_dir), *pytest_args]


def suite_env() -> dict[str, str]:
    """The test process's environment without proxy variables: the client must dial 127.0.0.1 itself."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_ENV}
    env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    return env


def start_suite_on(bed: ExistingBed, reports_dir: Path, *pytest_args: str, stdout: Any = subprocess.PIPE,
                   stderr: Any = subprocess.STDOUT) -> subprocess.Popen:
    """The suite as a child process in a session of its own, for a test that interrupts it (`interrupt`), kills
    it with its children (`kill_outright`) or reads its output live. Run with `-s` to see the set-up steps
    ("istioctl install revision ...") as they happen."""
    sigint_reaches_children()
    return subprocess.Popen(suite_argv(bed, reports_dir, *pytest_args), cwd=PROJECT_ROOT, env=suite_env(),
                            stdout=stdout, stderr=stderr, text=True, start_new_session=True)


def kill_outright(proc: subprocess.Popen) -> int:
    """SIGKILL to the suite and every process it started (istioctl among them): no teardown runs."""
    os.killpg(proc.pid, signal.SIGKILL)
    return proc.wait(timeout=60)


def cleanup_dead_runs(bed: ExistingBed) -> subprocess.CompletedProcess:
    """`./run cleanup --all-dead` against the bed."""
    return subprocess.run([sys.executable, "-m", "multirev.cleanup", "--kubeconfig", str(bed.kubeconfig),
                           "--all-dead"], cwd=PROJECT_ROOT, env=suite_env(), capture_output=True, text=True,
                          timeout=600)


def read_until(proc: subprocess.Popen, text: str, timeout: float = 300.0) -> list[str]:
    """Lines of a `start_suite_on` child (stdout, stderr merged) up to the first holding `text`, or up to
    `timeout` seconds or the child's end; the caller checks whether the last line holds it."""
    assert proc.stdout is not None, "start the child with stdout=subprocess.PIPE"
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        seen.append(line.rstrip("\n"))
        if text in line or time.monotonic() > deadline:
            break
    return seen


def interrupt(proc: subprocess.Popen, timeout: float = 300.0) -> int:
    """Ctrl-C: SIGINT, then wait for pytest's session teardown (the existing backend's cleanup); kill after
    `timeout`. Returns the exit code."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class BedRun(SuiteRun):
    """A finished suite run: returncode, output, and the outcomes and report it recorded. Unpacks as
    `(returncode, output)`."""

    def __iter__(self):
        return iter((self.returncode, self.output))


def run_suite_on(bed: ExistingBed, reports_dir: Path, *pytest_args: str, timeout: float = SUITE_TIMEOUT) -> BedRun:
    """`pytest suites --backend existing ...` against the bed, to completion (at most `timeout` seconds)."""
    proc = subprocess.run(suite_argv(bed, reports_dir, *pytest_args), cwd=PROJECT_ROOT, env=suite_env(),
                          capture_output=True, text=True, timeout=timeout)
    report = read_report(reports_dir)
    outcomes = {t["nodeid"]: {**t, "feature": name, "message": t.get("message", "")}
                for name, feature in report["features"].items() for t in feature["tests"]}
    return BedRun(proc.returncode, proc.stdout + proc.stderr, outcomes, report)


def finish_listing_what_set_up_made(bed: ExistingBed, proc: subprocess.Popen, reports: Path, line: str,
                                    before: dict[Key, Obj]) -> tuple[list[Key], dict, str]:
    """Once the run prints `line` (set-up complete), pause it, list what it created since `before`, let it go on
    and finish: (what it created, its report, its output). Its exit code must be 0."""
    seen = read_until(proc, line)
    assert line in seen[-1], "\n".join(seen[-20:])
    proc.send_signal(signal.SIGSTOP)
    try:
        created = added(before, snapshot(bed.cluster))
    finally:
        proc.send_signal(signal.SIGCONT)
    assert proc.stdout is not None
    output = "\n".join(seen) + proc.stdout.read()
    assert proc.wait(timeout=900) == 0, output[-4000:]
    return created, read_report(reports), output


def assert_left_as_it_was(bed: ExistingBed, before: dict[Key, Obj], what: str, *,
                          leases_in: tuple[str, ...] = ()) -> None:
    """Every object of `before` as it was, nothing added since. managedFields are ignored, as issue 10 asks: each
    `istioctl install` re-applies the cluster's shared Istio CRDs (same content; their labels are given back), which
    adds bookkeeping entries and nothing else. Leases are not snapshotted (KWOK's and the API server's own move):
    `leases_in` names namespaces that must hold none (istiod writes some into its own)."""
    after = await_quiet(bed.cluster, timeout=120)
    changed = diff(without_managers(before), without_managers(after), foreign_only=True)
    assert changed == [], f"{what} changed what the run did not create:\n" + "\n".join(changed)
    survivors = added(before, after)
    assert survivors == [], f"{what} left what it created: {survivors}"
    for namespace in leases_in:
        leases = [lease["metadata"]["name"] for lease in bed.cluster.list(kinds.LEASE, namespace)]
        assert leases == [], f"{what} left Leases in {namespace}: {leases}"


def read_report(reports_dir: Path) -> dict:
    path = reports_dir / "conformance.json"
    return json.loads(path.read_text()) if path.exists() else {"features": {}}


# -- snapshots -----------------------------------------------------------------------------------------------
#
# What changes on the bed although nobody touched the object, measured with two raw snapshots 30 s apart
# (every field compared), 2026-11-30:
# - idle bed, with and without the foreign objects below (148 and 162 objects: Kubernetes' own RBAC,
#   kube-system and default objects, the KWOK node, the foreign namespace's objects and its KWOK pod):
#   nothing changed, not even a resourceVersion;
# - with istiods running (two revisions installed by istioctl, or one foreign minimal-profile revision):
#   the leader-election annotation of istiod's election ConfigMaps, the HorizontalPodAutoscalers' status
#   (and their managedFields: "kube-controller-manager Update status" appears ~30 s after install), and
#   Events (new ones, count/lastTimestamp of repeated ones) changed in every 30 s window;
# - during a whole `--backend existing` run (separate layout, control-plane tests) no pre-existing object
#   changed its resourceVersion or managedFields at all.
# Only those, and fields that merely restate another change, are ignored:

IGNORED_KINDS = {
    # Written by controllers and the kubelet about objects, not by anyone to them; repeated ones are rewritten
    # in place (count, lastTimestamp: seen every 30 s for the HPAs' FailedGetResourceMetric, as KWOK runs no
    # metrics server) and they expire by themselves (kube-apiserver --event-ttl, 1 h).
    "Event": "reports about objects, rewritten (count, lastTimestamp) and expired by the API server",
}
IGNORED_METADATA = {
    "resourceVersion": "bumped by every write, including status writes of controllers",
    # An HPA gained "kube-controller-manager Update status" ~30 s after install: status writers come and go.
    "managedFields": "timestamps and status writers move with controllers' status writes; compared as the set "
                     "of `manager operation` of non-status entries instead",
    "generation": "follows every spec change, which the diff shows itself",
    "creationTimestamp": "changes only when the object is re-created, which the uid shows",
    # An object someone asked to delete that lingers (finalizers, a Terminating namespace) must still show:
    # normalize() replaces the time by `metadata.beingDeleted: true`.
    "deletionTimestamp": "its time only; kept as metadata.beingDeleted",
    "deletionGracePeriodSeconds": "set together with deletionTimestamp",
    "selfLink": "no longer set since Kubernetes 1.20; dropped should an older server send it",
}
IGNORED_ANNOTATIONS = {
    # Leader election records (client-go tools/leaderelection/resourcelock, ConfigMapLock): istiod renews its
    # lease in istio-leader, istio-namespace-controller-election and istio-ip-autoallocate every few seconds;
    # the renewTime inside changed in every 30 s window.
    "control-plane.alpha.kubernetes.io/leader": "leader-election record, renewed every few seconds",
    # Not seen moving on the bed; ignored because they are derived, so they would only restate a change shown
    # elsewhere. The deployment controller's number of the Deployment's newest ReplicaSet moves when the pod
    # template changes, which the diff shows as a spec change.
    "deployment.kubernetes.io/revision": "deployment controller's rollout counter, follows template changes",
    # kube-controller-manager's TTL controller (pkg/controller/ttl) derives it from the number of nodes.
    "node.alpha.kubernetes.io/ttl": "TTL controller's cache hint, derived from the number of nodes",
}
# `status` is dropped from every object: controllers, the scheduler, KWOK and the API server write it (Pods'
# conditions, Deployments' and HPAs' replicas: the HPAs' moved untouched, see above; Namespaces' phase, CRDs'
# acceptedNames); the suite and istioctl write spec and metadata, which are compared whole.
#
# Kept on purpose, although one might expect them to move: kube-root-ca.crt (written once per namespace by the
# root-CA publisher; the bed's CA never rotates), istio-ca-root-cert (written once into every namespace an
# istiod watches: a foreign minimal-profile istiod without discoverySelectors wrote it into default, kube-system
# and foreign-team; a run's istiod writing one into a foreign namespace is a change the run caused, which outlives
# its teardown), and
# Secrets/ServiceAccounts (Kubernetes >= 1.24 makes no token Secret: none appeared). Leases are not in
# kinds.ALL and so not snapshotted: kube-node-lease/kwok-node-0 (KWOK's heartbeat) and kube-system/apiserver-*
# renewed spec.renewTime in every 30 s window; Endpoints and EndpointSlices did not change. Pass `of=` to
# snapshot more kinds (and expect those Leases to move).


class Key(NamedTuple):
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


def raw_snapshot(cluster: KubeCluster, of: Iterable[Kind] = kinds.ALL) -> dict[Key, Obj]:
    """Every object of the given kinds, cluster-wide, as the API server returns it."""
    found: dict[Key, Obj] = {}
    for kind in of:
        for obj in cluster.list(kind):
            meta = obj["metadata"]
            found[Key(kind.kind, meta.get("namespace") or "", meta["name"])] = obj
    return found


def normalize(obj: Obj) -> Obj:
    """The object without what changes untouched (see IGNORED_*); managedFields become the sorted set of
    `manager operation` outside the status subresource, so a run that re-applies a foreign object unchanged
    still shows (as a manager added)."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata") or {}
    managers = sorted({f"{m.get('manager', '?')} {m.get('operation', '?')}" for m in meta.get("managedFields") or []
                       if m.get("subresource") != "status"})
    if meta.get("deletionTimestamp"):
        meta["beingDeleted"] = True
    for name in IGNORED_METADATA:
        meta.pop(name, None)
    if managers:
        meta["managers"] = managers
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in IGNORED_ANNOTATIONS}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return out


def snapshot(cluster: KubeCluster, of: Iterable[Kind] = kinds.ALL) -> dict[Key, Obj]:
    """Every object of every kind in `of` (default kinds.ALL), cluster-wide, normalized (`normalize`); Events
    left out (IGNORED_KINDS)."""
    return {key: normalize(obj) for key, obj in raw_snapshot(cluster, of).items() if key.kind not in IGNORED_KINDS}


def without_managers(snap: dict[Key, Obj]) -> dict[Key, Obj]:
    """The snapshot compared as issue 10 asks: managedFields ignored altogether (not even who wrote)."""
    out = copy.deepcopy(snap)
    for obj in out.values():
        obj.get("metadata", {}).pop("managers", None)
    return out


def added(before: dict[Key, Obj], after: dict[Key, Obj]) -> list[Key]:
    """Objects in `after` that were not in `before`: what a run created and left behind."""
    return sorted(set(after) - set(before))


def diff(before: dict[Key, Obj], after: dict[Key, Obj], *, foreign_only: bool = False) -> list[str]:
    """One line per removed, re-created, changed or (unless `foreign_only`) added object, each change with
    its field paths. `foreign_only` restricts it to the objects of `before` (what the run did not create)."""
    lines = [f"removed: {key}" for key in sorted(set(before) - set(after))]
    for key in sorted(set(before) & set(after)):
        old, new = before[key], after[key]
        old_uid, new_uid = old["metadata"].get("uid"), new["metadata"].get("uid")
        changes = field_changes(_without_uid(old), _without_uid(new))
        if old_uid != new_uid:
            lines.append(f"re-created: {key} (uid {old_uid} -> {new_uid})" + (f": {'; '.join(changes)}"
                                                                               if changes else ""))
        elif changes:
            lines.append(f"changed: {key}: {'; '.join(changes)}")
    if not foreign_only:
        lines += [f"added: {key}" for key in added(before, after)]
    return lines


def _without_uid(obj: Obj) -> Obj:
    return {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "uid"}}


def field_changes(old: Any, new: Any, path: str = "", limit: int = 8) -> list[str]:
    """`path: old -> new` for each differing leaf, `path added/removed` for keys; lists of equal length are
    compared item by item, others whole. At most `limit` lines, then a count of the rest."""
    found: list[str] = []
    _walk(old, new, path, found)
    return found[:limit] + ([f"... {len(found) - limit} more"] if len(found) > limit else [])


def _walk(old: Any, new: Any, path: str, found: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in old:
                found.append(f"{where} added ({_short(new[key])})")
            elif key not in new:
                found.append(f"{where} removed (was {_short(old[key])})")
            else:
                _walk(old[key], new[key], where, found)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            _walk(a, b, f"{path}[{index}]", found)
    elif old != new:
        found.append(f"{path}: {_short(old)} -> {_short(new)}")


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= width else text[:width - 3] + "..."


# -- foreign objects ---------------------------------------------------------------------------------------

FOREIGN_MANAGER = "someone-else"  # the field manager foreign objects are created with (not the suite's)
FOREIGN_NAMESPACE = "foreign-team"


def foreign_objects(namespace: str = FOREIGN_NAMESPACE) -> list[Obj]:
    """Objects a cluster's owner might have, none of them the suite's: a namespace with a workload, its
    Service, ServiceAccount, ConfigMap, Secret, RBAC, and cluster-scoped RBAC and a ConfigMap in `default`."""
    labels = {"app": "foreign", "team": "someone-else"}
    meta = {"namespace": namespace, "labels": labels}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "foreign", **meta}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "foreign-settings", **meta},
         "data": {"setting": "keep me"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "foreign-secret", **meta}, "type": "Opaque",
         "stringData": {"token": "not-a-real-token"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "foreign", **meta},
         "spec": {"selector": {"app": "foreign"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "foreign", **meta},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "foreign"}},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"serviceAccountName": "foreign",
                                        "containers": [{"name": "app", "image": "example.invalid/foreign:1",
                                                        "command": ["/bin/sleep", "infinity"]}]}}}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "foreign", **meta},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "foreign", **meta},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "foreign"},
         "subjects": [{"kind": "ServiceAccount", "name": "foreign", "namespace": namespace}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "foreign-reader", "labels": labels},
         "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "foreign-reader", "labels": labels},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "foreign-reader"},
         "subjects": [{"kind": "ServiceAccount", "name": "foreign", "namespace": namespace}]},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "foreign-settings", "namespace": "default", "labels": labels},
         "data": {"setting": "keep me too"}},
    ]


def create(cluster: KubeCluster, obj: Obj, manager: str = FOREIGN_MANAGER) -> Obj:
    """POST as another field manager, without the run-id label the suite's own apply adds."""
    kind = kinds.of(obj)
    return cluster.api.call_api(
        kind.path(obj["metadata"].get("namespace")), "POST", query_params=[("fieldManager", manager)],
        header_params={"Content-Type": "application/json", "Accept": "application/json"}, body=obj,
        response_types_map={201: "object"}, auth_settings=["BearerToken"], _return_http_data_only=True,
        _preload_content=True, _request_timeout=(10.0, 60.0))


def populate_foreign(bed: ExistingBed, objects: Iterable[Obj] | None = None, *, settle: float = 60.0) -> list[Key]:
    """Create foreign objects (default `foreign_objects()`) and wait until what controllers add to them
    (the namespace's default ServiceAccount and kube-root-ca.crt, the Deployment's pod Ready) is there and
    nothing moves any more, so a snapshot taken next is the "before" of a run."""
    made = []
    for obj in objects if objects is not None else foreign_objects():
        create(bed.cluster, obj)
        meta = obj["metadata"]
        made.append(Key(obj["kind"], meta.get("namespace") or "", meta["name"]))
    await_quiet(bed.cluster, timeout=settle)
    return made


def await_quiet(cluster: KubeCluster, *, timeout: float = 60.0, window: float = 3.0) -> dict[Key, Obj]:
    """Until two snapshots `window` seconds apart are equal and every pod is Ready; the last snapshot."""
    clock = cluster.clock

    def quiet() -> Observation[dict[Key, Obj]]:
        first = snapshot(cluster)
        clock.sleep(window)
        second = snapshot(cluster)
        unready = [str(k) for k, o in raw_snapshot(cluster, [kinds.POD]).items() if not _ready(o)]
        moving = diff(first, second)
        return Observation(not moving and not unready, second,
                           "; ".join(moving[:3] + [f"not Ready: {', '.join(unready)}"] * bool(unready)))

    return wait_for("the bed to settle", quiet, clock=clock, timeout=timeout, interval=1)


def _ready(pod: Obj) -> bool:
    conditions = {c["type"]: c["status"] for c in (pod.get("status") or {}).get("conditions") or []}
    return conditions.get("Ready") == "True"


# -- a foreign Istio revision ---------------------------------------------------------------------------------


def install_foreign_revision(bed: ExistingBed, folder: Path, *, revision: str = "foreign",
                             namespace: str = "foreign-istio", version: str | None = None,
                             discovery_selectors: list[dict] | None = None) -> Completed:
    """Install an Istio revision the suite's run did not make (minimal profile: istiod only), with the local
    backend's own istioctl, as the cluster's owner would have; its istiod runs for real. The run's profile
    revisions must differ from `revision`, and its discoverySelectors must select none of the run's namespaces,
    or the existing backend refuses to start (multirev/footprint.py refusals)."""
    version = version or bed.versions[0]
    mesh = {"meshConfig": {"discoverySelectors": discovery_selectors}} if discovery_selectors is not None else {}
    iop = {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator",
           "metadata": {"name": f"installed-by-owner-{revision}", "namespace": namespace},
           "spec": {"profile": "minimal", "revision": revision, **mesh,
                    "values": {"global": {"istioNamespace": namespace}}}}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"iop-{revision}.yaml"
    path.write_text(yaml.safe_dump(iop, sort_keys=False))
    create(bed.cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    return bed.backend.istioctl(IstioVersion.parse(version)).install(path)
