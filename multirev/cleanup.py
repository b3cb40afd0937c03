"""Remove what a killed run left on a cluster it does not own.

The run record (multirev/runrecord.py) says what the run was going to make and what the cluster had before it.

`./run cleanup [--kubeconfig K] [--context C] (--run-id ID | --all-dead) [--dry-run]`

A record whose heartbeat is older than DEAD_AFTER (300 s), or that was written on this host by a process that no
longer exists, belongs to a dead run. Its objects are removed in the order that keeps the cluster usable at every
step: first the webhooks (an injector or validator whose istiod is gone fails every pod or config admission it
selects), then the tag Services, the revisions' own objects, the CA ConfigMaps the run's istiods wrote (once those
istiods are gone, else they write them back), everything else carrying the run-id label, the Istio CRDs if the
cluster had none (else their labels given back), the labels the run borrowed given back, the run's namespaces, and
the record last, so that a cleanup that is itself interrupted can be run again.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable

from multirev import webhook_record
from multirev.backends.base import Cluster
from multirev.backends.kube import KubeCluster, load_api_client, server_of, unreachable_cause
from multirev.clock import WallClock
from multirev.errors import TeardownIncomplete, UsageError, WaitTimeout
from multirev.footprint import ISTIO_CRD_SUFFIX, PUBLISHED_LABEL, PUBLISHED_NAMES, istiod_runtime
from multirev.istio import facts
from multirev.istio.namespace_controller import ISTIOD_LABELS
from multirev.kube import kinds
from multirev.kube.kinds import Kind
from multirev.kube.objects import Obj, labels_of
from multirev.paths import user_path
from multirev.plan import RUN_ID_LABEL
from multirev.runrecord import DEAD_AFTER, RunRecord, crd_specs, find, iso
from multirev.waits import Observation, wait_for

# Namespaced kinds the run applies itself, found by its run-id label (cluster-scoped: its namespaces).
RUN_LABELLED_KINDS = (*kinds.ISTIO_CONFIG, kinds.K8S_GATEWAY, kinds.HTTP_ROUTE, kinds.DEPLOYMENT, kinds.SERVICE,
                      kinds.SERVICEACCOUNT, kinds.CONFIGMAP,
                      kinds.SECRET)
# What `istioctl install` of a revision makes in its namespace and beside it, all labelled istio.io/rev=<revision>
# (facts.COMPONENT_LABEL's getOwnerLabels; CHART/*.yaml). CRDs carry it too but are the cluster's if it had any.


def run_labelled_kinds(*, installs: bool) -> tuple[Kind, ...]:
    """An --installed run makes no Secret (no `cacerts`, no Helm release), so it never lists them: the ClusterRole
    it runs under grants no Secret (manifests/rbac/certify-installed.yaml)."""
    return RUN_LABELLED_KINDS if installs else tuple(kind for kind in RUN_LABELLED_KINDS if kind is not kinds.SECRET)


REVISION_NAMESPACED_KINDS = (kinds.DEPLOYMENT, kinds.SERVICE, kinds.SERVICEACCOUNT, kinds.CONFIGMAP, kinds.SECRET,
                             kinds.ROLE, kinds.ROLE_BINDING, kinds.PDB, kinds.HPA, kinds.ISTIO_OPERATOR)
REVISION_CLUSTER_KINDS = (kinds.CLUSTER_ROLE, kinds.CLUSTER_ROLE_BINDING)
WEBHOOK_KINDS = (kinds.MUTATING_WEBHOOK, kinds.VALIDATING_WEBHOOK)
ISTIOD_GONE_TIMEOUT = 180.0
HELM_RELEASE_ANNOTATION = "meta.helm.sh/release-name"  # helm@v4.3.0: pkg/action/validate.go
HELM_NAMESPACE_ANNOTATION = "meta.helm.sh/release-namespace"
NAMESPACE_DELETE_TIMEOUT = 300.0
PUBLISHED_QUIET = 3  # consecutive checks, 1 s apart, with none of the run's CA ConfigMaps (as fixtures/mesh.py)


class Removal:
    """One dead run's removal: each object once, in order, a line for each (or, dry, only the lines)."""

    def __init__(self, cluster: Cluster, record: RunRecord, *, dry_run: bool) -> None:
        self.cluster = cluster
        self.record = record
        self.dry_run = dry_run
        self.lines: list[str] = []
        self._seen: set[tuple[str, str, str]] = set()

    def _say(self, done: str, would: str, what: str) -> None:
        self.lines.append(f"{would if self.dry_run else done} {what}")

    def delete(self, kind: Kind, obj: Obj) -> None:
        name, namespace = obj["metadata"]["name"], obj["metadata"].get("namespace") if kind.namespaced else None
        key = (kind.kind, namespace or "", name)
        if key in self._seen:
            if not self.dry_run:  # written back since (a CA ConfigMap): deleted again, already listed
                self.cluster.delete(kind, name, namespace)
            return
        self._seen.add(key)
        if self.dry_run or self.cluster.delete(kind, name, namespace):
            self._say("deleted", "would delete", f"{kind.kind} {namespace}/{name}" if namespace
                      else f"{kind.kind} {name}")

    def give_back(self, kind: Kind, name: str, prior: dict[str, str | None]) -> None:
        """Put the labels in `prior` back to those values (None: absent), if any differs now."""
        found = self.cluster.get(kind, name)
        if found is None:  # it existed before the run; not the run's to make again
            return
        now = labels_of(found)
        patch = {key: value for key, value in prior.items() if now.get(key) != value}
        if not patch:
            return
        if not self.dry_run:
            self.cluster.label(kind, name, patch)
        self._say("gave back labels of", "would give back labels of", f"{kind.kind} {name}")

    # -- the steps, in order -------------------------------------------------------------------------
    def webhooks(self) -> None:
        """Injector, validator and tag webhooks of the run's revisions that call into its control-plane namespaces (a
        tag's webhook carries the revision it points at; a namesake revision elsewhere is not the run's), then every
        Istio webhook configuration the record holds whole given back as it was (the default injector an install
        deactivated, the default validator it took over: multirev/webhook_record.py). A record without those copies
        (written before they were kept) keeps a `default` tag or default validator that existed."""
        recorded = webhook_record.read(self.cluster, self.record.namespace)
        existed = set(self.record.webhooks_before)
        namespaces = set(self.record.control_plane_namespaces)
        for kind in WEBHOOK_KINDS:
            hooks = [h for rev in sorted(self.record.revisions)
                     for h in self.cluster.list(kind, labels={facts.REV_LABEL: rev})]
            hooks += [h for tag in sorted({*self.record.tags, facts.DEFAULT_TAG})
                      for h in self.cluster.list(kind, labels={facts.TAG_LABEL: tag})
                      if labels_of(h).get(facts.REV_LABEL) in self.record.revisions]
            for hook in hooks:
                key = (kind.kind, hook["metadata"]["name"])
                if key in recorded or not webhook_record.calls_into(hook, namespaces):
                    continue
                default = labels_of(hook).get(facts.TAG_LABEL) == facts.DEFAULT_TAG \
                    or hook["metadata"]["name"] == facts.DEFAULT_VALIDATOR
                if not (default and key in existed):
                    self.delete(kind, hook)
        self.lines += webhook_record.give_back(self.cluster, recorded, dry_run=self.dry_run)

    def tag_services(self) -> None:
        """`istiod-revision-tag-<tag>` that `tag set` makes in the tag's namespace, for the run's tags and a
        `default` tag that did not exist before."""
        existed = {name for _, name in self.record.webhooks_before}
        tags = set(self.record.tags)
        if not any(facts.tag_webhook_name(facts.DEFAULT_TAG, ns) in existed
                   for ns in self.record.control_plane_namespaces):
            tags.add(facts.DEFAULT_TAG)
        for namespace in self.record.control_plane_namespaces:
            for tag in sorted(tags):
                service = self.cluster.get(kinds.SERVICE, facts.tag_service_name(tag), namespace)
                if service is not None and labels_of(service).get(facts.REV_LABEL) in self.record.revisions:
                    self.delete(kinds.SERVICE, service)

    def revision_objects(self) -> None:
        for revision in sorted(self.record.revisions):
            selector = {facts.REV_LABEL: revision}
            for namespace in self.record.control_plane_namespaces:
                for kind in REVISION_NAMESPACED_KINDS:
                    for obj in self.cluster.list(kind, namespace, labels=selector):
                        self.delete(kind, obj)
            # Cluster-scoped ones end in `-<revision>-<namespace>` (facts.cluster_scoped_suffix), so a namesake
            # revision's in another namespace is not taken.
            suffixes = tuple(facts.cluster_scoped_suffix(revision, ns) for ns in self.record.control_plane_namespaces)
            for kind in REVISION_CLUSTER_KINDS:
                for obj in self.cluster.list(kind, labels=selector):
                    if obj["metadata"]["name"].endswith(suffixes):
                        self.delete(kind, obj)

    def helm_releases(self) -> None:
        """What the run's Helm releases installed: Helm annotates every object with its release and namespace
        (helm@v4.3.0: pkg/action/validate.go setMetadataVisitor), gateway objects and CRDs among them, which carry
        no revision label. The releases' records are run-labelled (`run_labelled`). The CRDs only if the cluster
        had none: Helm's base release keeps them on uninstall, and a run on a cluster with them is refused."""
        for namespace, release in self.record.helm_releases:
            owned = {HELM_RELEASE_ANNOTATION: release, HELM_NAMESPACE_ANNOTATION: namespace}
            kinds_here = [(kind, namespace) for kind in REVISION_NAMESPACED_KINDS] + \
                         [(kind, None) for kind in (*REVISION_CLUSTER_KINDS, *WEBHOOK_KINDS)]
            if not self.record.crds_before:
                kinds_here.append((kinds.CRD, None))
            for kind, where in kinds_here:
                for obj in self.cluster.list(kind, where):
                    annotations = obj["metadata"].get("annotations") or {}
                    if all(annotations.get(key) == value for key, value in owned.items()):
                        self.delete(kind, obj)

    def published(self) -> None:
        """CA ConfigMaps in namespaces that had none before the run: its istiods wrote them. Deleted once those
        istiods are gone, and again until they stay gone (as fixtures/mesh.py _remove_published)."""
        if self.dry_run:
            for obj in self._published_added():
                self.delete(kinds.CONFIGMAP, obj)
            return
        self._await_istiods_gone()
        quiet = [0]

        def gone() -> Observation[None]:
            left = self._published_added()
            for obj in left:
                self.delete(kinds.CONFIGMAP, obj)
            quiet[0] = 0 if left else quiet[0] + 1
            return Observation(quiet[0] >= PUBLISHED_QUIET, None, "written back: " + ", ".join(
                f"{o['metadata']['namespace']}/{o['metadata']['name']}" for o in left) if left else "none")

        wait_for("the run's CA ConfigMaps to stay deleted", gone, clock=self.cluster.clock, timeout=60, interval=1)

    def published_in_borrowed(self) -> None:
        """--installed: CA ConfigMaps that appeared in namespaces the run borrowed, once their labels are back (the
        cluster's istiods, which keep running, then no longer write them there)."""
        borrowed = set(self.record.namespaces_before)
        for obj in self._published_added():
            if obj["metadata"]["namespace"] in borrowed:
                self.delete(kinds.CONFIGMAP, obj)

    def _published_added(self) -> list[Obj]:
        """Those in namespaces the run made are left to the `namespaces` step, which deletes them whole (as
        Footprint.published_added)."""
        before = set(self.record.published_before)
        made = {ns["metadata"]["name"]
                for ns in self.cluster.list(kinds.NAMESPACE, labels={RUN_ID_LABEL: self.record.run_id})}
        return [cm for cm in self.cluster.list(kinds.CONFIGMAP, labels=PUBLISHED_LABEL)
                if cm["metadata"]["name"] in PUBLISHED_NAMES and cm["metadata"]["namespace"] not in made
                and (cm["metadata"]["namespace"], cm["metadata"]["name"]) not in before]

    def _await_istiods_gone(self) -> None:
        """The run's istiod pods: its revisions' in its control-plane namespaces, never a namesake elsewhere."""
        def gone() -> Observation[None]:
            left = [f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
                    for namespace in self.record.control_plane_namespaces
                    for revision in sorted(self.record.revisions)
                    for pod in self.cluster.list(kinds.POD, namespace,
                                                 labels={**ISTIOD_LABELS, facts.REV_LABEL: revision})]
            return Observation(not left, None, f"still running: {', '.join(left)}")

        wait_for("the run's istiod pods to go", gone, clock=self.cluster.clock, timeout=ISTIOD_GONE_TIMEOUT)

    def istiod_runtime(self) -> None:
        """What the run's istiods wrote into their namespaces while they ran (leader-election locks, a self-signed
        CA: facts.istiod_runtime_names) and was not there before; after `published`, which awaited them gone."""
        before = set(self.record.runtime_before)
        for kind_name, namespace, name in istiod_runtime(self.cluster, self.record.control_plane_namespaces,
                                                         self.record.revisions):
            if (kind_name, namespace, name) not in before:
                self.delete(kinds.by_kind(kind_name), {"metadata": {"name": name, "namespace": namespace}})

    def run_labelled(self) -> None:
        selector = {RUN_ID_LABEL: self.record.run_id}
        installs = not self.record.installed
        for kind in (*run_labelled_kinds(installs=installs), *([kinds.ISTIO_OPERATOR] if installs else [])):
            for obj in self.cluster.list(kind, labels=selector):
                if obj["metadata"].get("namespace") != self.record.namespace:  # the record goes last
                    self.delete(kind, obj)

    def gateway_api_crds(self) -> None:
        """The Gateway API CRDs (and the standard channel's admission policy) a run installed because the cluster
        lacked them (--allow-destructive): labelled with its run id (fixtures/gateway_api.py install_crds); borrowed
        ones carry no such label and stay."""
        selector = {RUN_ID_LABEL: self.record.run_id}
        for kind in (kinds.VALIDATING_ADMISSION_POLICY_BINDING, kinds.VALIDATING_ADMISSION_POLICY, kinds.CRD):
            for obj in self.cluster.list(kind, labels=selector):
                self.delete(kind, obj)

    def crds(self) -> None:
        """The Istio CRDs are the run's if the cluster had none; else their spec (kept beside the record: a newer
        install re-applies its own) and their labels, which every install rewrites, are given back. Taken only
        when still labelled with one of the run's revisions (each install re-applies them with its owner labels,
        facts.COMPONENT_LABEL): a cleanup days after the run must not take the CRDs, and with them every Istio
        object, of an Istio installed since."""
        if not self.record.crds_before:
            for crd in self.cluster.list(kinds.CRD):
                if crd["metadata"]["name"].endswith(ISTIO_CRD_SUFFIX) \
                        and labels_of(crd).get(facts.REV_LABEL) in self.record.revisions:
                    self.delete(kinds.CRD, crd)
            return
        specs = crd_specs(self.cluster, self.record.run_id)
        for name, prior in sorted(self.record.crds_before.items()):
            found = self.cluster.get(kinds.CRD, name)
            spec = specs.get(name)
            if found is not None and spec is not None and (found.get("spec") or {}) != spec:
                if not self.dry_run:
                    self.cluster.replace_spec(kinds.CRD, name, spec)
                self._say("gave back the spec of", "would give back the spec of", f"{kinds.CRD.kind} {name}")
            added = set(labels_of(found)) - set(prior) if found else set()
            self.give_back(kinds.CRD, name, {**dict.fromkeys(added), **prior})

    def borrowed_labels(self) -> None:
        for name, labels in sorted(self.record.namespaces_before.items()):
            keys = self.record.label_keys_the_run_sets(name)
            self.give_back(kinds.NAMESPACE, name, {key: labels.get(key) for key in sorted(keys)})

    def namespaces(self) -> None:
        """The run's namespaces, each awaited until gone (not Terminating)."""
        record = self.record.namespace
        own = [ns for ns in self.cluster.list(kinds.NAMESPACE, labels={RUN_ID_LABEL: self.record.run_id})
               if ns["metadata"]["name"] != record]
        for namespace in own:
            self.delete(kinds.NAMESPACE, namespace)
        self._await_gone([ns["metadata"]["name"] for ns in own])

    def webhooks_given_back(self) -> None:
        """The last word on the webhook configurations: each recorded one as it was (a step that failed above, or
        an istiod that patched one since, shows here and keeps the record)."""
        if not self.dry_run:
            problems = webhook_record.still_different(self.cluster,
                                                      webhook_record.read(self.cluster, self.record.namespace))
            if problems:
                raise TeardownIncomplete("; ".join(problems))

    def record_itself(self) -> None:
        """Last, and only when every step before it finished: a cleanup that failed can be run again."""
        self.delete(kinds.NAMESPACE, {"metadata": {"name": self.record.namespace}})
        self._await_gone([self.record.namespace])

    def _await_gone(self, names: list[str]) -> None:
        if self.dry_run or not names:
            return

        def gone() -> Observation[None]:
            left = [n for n in names if self.cluster.get(kinds.NAMESPACE, n) is not None]
            return Observation(not left, None, f"still terminating: {', '.join(left)}")

        wait_for(f"namespaces {', '.join(names)} to be deleted", gone, clock=self.cluster.clock,
                 timeout=NAMESPACE_DELETE_TIMEOUT)


def remove_run(cluster: Cluster, record: RunRecord, *, dry_run: bool = False) -> list[str]:
    """Remove what the run of `record` left, in order; one line per object removed (dry: that would be). Every step
    runs even when one before it failed; then the record stays, and TeardownIncomplete names each failed step (the
    lines so far on its `lines`), so that the same command can be run again."""
    removal = Removal(cluster, record, dry_run=dry_run)
    if record.installed:
        # --installed: the revisions are the cluster's. What the run made is run-labelled; the labels it borrowed go
        # back before the CA ConfigMaps the cluster's istiods wrote into those namespaces because of them.
        steps = [removal.run_labelled, removal.borrowed_labels, removal.published_in_borrowed, removal.namespaces]
    else:
        steps = [removal.webhooks, removal.tag_services, removal.revision_objects, removal.helm_releases,
                 removal.published, removal.istiod_runtime, removal.run_labelled, removal.gateway_api_crds,
                 removal.crds, removal.borrowed_labels, removal.namespaces, removal.webhooks_given_back]
    problems = []
    for removal_step in steps:
        try:
            removal_step()
        except Exception as exc:  # the steps after it still run; the record stays for the next try
            problems.append(f"{removal_step.__name__.replace('_', ' ')}: {type(exc).__name__}: {exc}")
    if problems:
        failed = TeardownIncomplete(f"the record of run {record.run_id} stays, as not everything was removed or "
                                    f"given back: {'; '.join(problems)}")
        failed.lines = removal.lines  # type: ignore[attr-defined]
        raise failed
    removal.record_itself()
    return removal.lines


def dead_runs(cluster: Cluster, *, now: float | None = None) -> list[RunRecord]:
    moment = time.time() if now is None else now
    return [record for record in find(cluster) if record.dead(moment)]


def cleanup_command(run_id: str | None, connection: list[str]) -> str:
    return shlex.join(["./run", "cleanup", *connection, *(["--run-id", run_id] if run_id else ["--all-dead"])])


def describe(record: RunRecord, now: float) -> str:
    return (f"run {record.run_id} (started {iso(record.started)} on {record.host}, pid {record.pid}; last heartbeat "
            f"{record.silent_for(now):.0f} s ago)")


def refuse_or_remove_dead_runs(cluster: Cluster, *, allow_destructive: bool, connection: list[str],
                               now: float | None = None, say: Callable[[str], None] | None = None) -> None:
    """Before a run on a cluster it does not own: a dead run's objects would collide with this run's or be judged
    as its own. Refused in one line naming the command that removes them; with --allow-destructive removed here."""
    moment = time.time() if now is None else now
    dead = dead_runs(cluster, now=moment)
    if not dead:
        return
    if not allow_destructive:
        first = dead[0]
        more = f" (and {len(dead) - 1} more dead runs: `{cleanup_command(None, connection)}`)" if len(dead) > 1 else ""
        raise UsageError(f"{describe(first, moment)} was killed and left its objects on this cluster; remove them "
                         f"with `{cleanup_command(first.run_id, connection)}`, or pass --allow-destructive to remove "
                         f"them before this run{more}")
    report = say or _say
    for record in dead:
        report(f"[multirev] removing what {describe(record, moment)} left")
        for line in remove_run(cluster, record):
            report(f"[multirev]   {line}")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _cluster(kubeconfig: str | None, context: str | None) -> Cluster:
    """As ExistingBackend.preflight: the kubeconfig, then one request with a short limit (one line if it fails)."""
    api = load_api_client(kubeconfig, context)
    cluster = KubeCluster(api, WallClock())
    try:
        cluster.kubernetes_version(timeout=(5.0, 10.0))
    except Exception as exc:
        where = kubeconfig or "the default kubeconfig"
        raise UsageError(f"cannot reach the cluster at {server_of(api)} ({where}"
                         f"{f', context {context}' if context else ''}): {unreachable_cause(exc)}") from exc
    return cluster


def chosen_records(cluster: Cluster, run_id: str | None, now: float) -> list[RunRecord]:
    """The one dead run asked for (refusing an alive or unknown one), or every dead run."""
    records = find(cluster)
    if run_id is None:
        return [r for r in records if r.dead(now)]
    record = next((r for r in records if r.run_id == run_id), None)
    if record is None:
        raise UsageError(f"no run record for run id {run_id} on this cluster (no Namespace labelled "
                         f"conformance.multirev.io/record=true with {RUN_ID_LABEL}={run_id}); nothing to clean up")
    if not record.dead(now):
        raise UsageError(f"{describe(record, now)} is alive: its record is dead only {DEAD_AFTER:.0f} s after its "
                         "last heartbeat or once its process is gone; stop that run, or wait")
    return [record]


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./run cleanup", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", default=None, help="the cluster's kubeconfig (default: the usual one)")
    parser.add_argument("--context", default=None, help="kubeconfig context")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-id", default=None, help="the dead run to remove")
    which.add_argument("--all-dead", action="store_true", help=f"every run silent for {DEAD_AFTER:.0f} s")
    parser.add_argument("--dry-run", action="store_true", help="list what would be removed, change nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = argument_parser().parse_args(argv)
    try:
        cluster = _cluster(str(user_path(args.kubeconfig)) if args.kubeconfig else None, args.context)
        now = time.time()
        records = chosen_records(cluster, args.run_id, now)
        if not records:
            _say("no dead run's record on this cluster")
        for record in records:
            _say(f"{'would remove' if args.dry_run else 'removing'} what {describe(record, now)} left")
            try:
                lines = remove_run(cluster, record, dry_run=args.dry_run)
            except TeardownIncomplete as incomplete:
                for line in getattr(incomplete, "lines", []):
                    print(line, flush=True)
                raise
            for line in lines:
                print(line, flush=True)
    except (UsageError, WaitTimeout) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
