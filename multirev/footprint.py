"""What a run may touch on a cluster it does not own, and how it gives back what it borrowed.

The rules, per kind (docs/backends.md, "What the run owns"):

- **Namespaces.** One the run creates carries the run-id label and is deleted at the end. One that existed
  is never deleted and never gets the run-id label: the labels the run needs (the revision tag, a
  discovery label) are set with a merge patch and put back to their exact prior values at the end. An app
  namespace that exists is refused unless --allow-destructive (the run labels it for injection and puts
  its workloads in it); a control plane's namespace that exists is used as it is (istioctl installs into
  it; that is what a cluster with Istio looks like).
- **Objects the run applies** (workloads, Istio config, `cacerts`): created with the run-id label. One that
  exists and that this run did not create is refused, also with --allow-destructive: the run would
  overwrite it and could not give it back.
- **What istioctl makes** is handled in fixtures/mesh.py: revisions and tags of the profile's names that
  exist are refused unless --allow-destructive; what the run's installs add (the `default` tag and
  default validator where there were none, CRDs on a cluster without any) is removed at the end.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from multirev.backends.base import Cluster
from multirev.errors import UsageError
from multirev.istio import facts
from multirev.istio.namespace_controller import ISTIOD_LABELS, SCOPING_SETTING, Istiod, mesh_config_map, revision_of
from multirev.kube import kinds
from multirev.kube.objects import Obj, labels_of
from multirev.plan import RUN_ID_LABEL, MeshPlan
from multirev.webhook_record import RECORD_LABEL as WEBHOOK_RECORD_LABEL
from multirev.webhook_record import Recorded, WebhookConfig, installs_may_touch

ISTIO_CRD_SUFFIX = ".istio.io"
# istiod's namespace controller writes istio-ca-root-cert and istio-ca-crl, labelled so, into every namespace it
# watches (pilot/pkg/serviceregistry/kube/controller/namespacecontroller.go@1.18.5 and @1.30.3, configMapLabel).
PUBLISHED_LABEL = {"istio.io/config": "true"}
PUBLISHED_NAMES = ("istio-ca-root-cert", "istio-ca-crl")


@dataclass
class Footprint:
    """The cluster as the run found it, and the labels it borrowed on namespaces it did not create."""

    run_id: str
    namespaces_before: dict[str, dict[str, str]]  # every namespace that existed -> its labels
    webhooks_before: set[tuple[str, str]]  # (kind, name) of every webhook configuration that existed
    crds_before: dict[str, dict[str, str]] = field(default_factory=dict)  # Istio CRDs that existed -> labels
    crd_specs_before: dict[str, dict] = field(default_factory=dict)  # and -> their spec
    published_before: set[tuple[str, str]] = field(default_factory=set)  # (namespace, name) of istiod's ConfigMaps
    borrowed: dict[str, dict[str, str | None]] = field(default_factory=dict)  # namespace -> prior label values
    # (kind, namespace, name) of what istiods write at run time that existed (facts.istiod_runtime_names)
    runtime_before: set[tuple[str, str, str]] = field(default_factory=set)
    # every Istio webhook configuration, whole: the installs may change them (multirev/webhook_record.py)
    webhook_configs_before: Recorded = field(default_factory=dict)

    @classmethod
    def survey(cls, cluster: Cluster, plan: MeshPlan) -> Footprint:
        """What the run reads before it creates anything: namespaces, webhook configurations and CRDs (their names,
        labels and Istio ones whole), CA ConfigMaps by their label, and what istiods write at run time in the plan's
        control-plane namespaces only (istiod_runtime)."""
        run_id = plan.run_id
        namespaces = {ns["metadata"]["name"]: dict(labels_of(ns)) for ns in cluster.list(kinds.NAMESPACE)}
        hooks = [{**hook, "kind": kind.kind} for kind in (kinds.MUTATING_WEBHOOK, kinds.VALIDATING_WEBHOOK)
                 for hook in cluster.list(kind)]
        webhooks = {(hook["kind"], hook["metadata"]["name"]) for hook in hooks}
        istio_hooks = {config.key: config for config in map(WebhookConfig.of, filter(installs_may_touch, hooks))}
        istio_crds = [crd for crd in cluster.list(kinds.CRD) if crd["metadata"]["name"].endswith(ISTIO_CRD_SUFFIX)]
        crds = {crd["metadata"]["name"]: dict(labels_of(crd)) for crd in istio_crds}
        specs = {crd["metadata"]["name"]: copy.deepcopy(crd.get("spec") or {}) for crd in istio_crds}
        published = {(cm["metadata"]["namespace"], cm["metadata"]["name"])
                     for cm in cluster.list(kinds.CONFIGMAP, labels=PUBLISHED_LABEL)}
        control_planes = sorted({p.plane.namespace for p in plan.planes})
        # --installed: the istiods are the cluster's, and what they write stays theirs (nor is their CA read).
        runtime = set() if plan.installed else set(istiod_runtime(cluster, control_planes))
        return cls(run_id, namespaces, webhooks, crds, specs, published, runtime_before=runtime,
                   webhook_configs_before=istio_hooks)

    @property
    def had_istio(self) -> bool:
        """Istio CRDs or Istio webhook configurations existed before the run: a purge would take them."""
        return bool(self.crds_before or self.webhook_configs_before)

    def purge_refusal(self) -> str:
        """What `istioctl uninstall --purge` would delete of the cluster's own, as one line."""
        crds = sorted(self.crds_before)
        hooks = sorted(name for _, name in self.webhook_configs_before)
        what = []
        if crds:
            what.append(f"its {len(crds)} Istio CRDs (e.g. {crds[0]}), and with them every Istio resource in every "
                        "namespace")
        if hooks:
            what.append(f"its Istio webhook configurations ({', '.join(hooks[:4])}"
                        f"{f' and {len(hooks) - 4} more' if len(hooks) > 4 else ''})")
        return (f"refused: the cluster had Istio before this run, and `istioctl uninstall --purge` would delete "
                f"{' and '.join(what)}, which the run could not give back; pass --allow-purge to permit it")

    def forget_istio(self, cluster: Cluster) -> None:
        """After a purge the user allowed: what the cluster had of Istio is gone on purpose, so nothing of it is given
        back (a webhook configuration put back would call an istiod the purge removed), neither at teardown nor by
        `./run cleanup` (its copies beside the record go too)."""
        self.crds_before.clear()
        self.crd_specs_before.clear()
        self.webhook_configs_before.clear()
        from multirev.runrecord import record_namespace  # runrecord builds on this module

        record = record_namespace(self.run_id)
        for cm in cluster.list(kinds.CONFIGMAP, record, labels={WEBHOOK_RECORD_LABEL: "true"}):
            cluster.delete(kinds.CONFIGMAP, cm["metadata"]["name"], record)

    def existed(self, namespace: str) -> bool:
        return namespace in self.namespaces_before

    def owns(self, obj: Obj) -> bool:
        return labels_of(obj).get(RUN_ID_LABEL) == self.run_id

    def use_namespace(self, cluster: Cluster, name: str, labels: dict[str, str]) -> None:
        """Create the namespace as the run's own, or set `labels` on one that existed, remembering their values."""
        if not self.existed(name):
            cluster.apply({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": name, "labels": {**labels, RUN_ID_LABEL: self.run_id}}})
            return
        prior = self.borrowed.setdefault(name, {})
        for key in labels:
            prior.setdefault(key, self.namespaces_before[name].get(key))
        cluster.label(kinds.NAMESPACE, name, dict(labels))

    def refuse_foreign(self, cluster: Cluster, obj: Obj) -> None:
        """Before applying `obj`: one of that kind and name that this run did not create is not the run's to change."""
        meta = obj["metadata"]
        kind = kinds.of(obj)
        found = cluster.get(kind, meta["name"], meta.get("namespace"))
        if found is not None and not self.owns(found):
            where = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
            raise UsageError(f"{kind.kind} {where} already exists and this run did not create it; the run does not "
                             "overwrite objects it did not create (not even with --allow-destructive): remove it "
                             "or run with other namespaces")

    def refusals(self, cluster: Cluster, plan: MeshPlan, *, allow_destructive: bool) -> list[str]:
        """Why the plan may not run here, as one-line reasons (empty: it may). Always: an istiod the run did not
        install that watches the run's namespaces. Without --allow-destructive also: app namespaces, revisions or
        tags of the plan's names that exist, and Istio CRDs of another version than the run installs (each install
        re-applies its own Base CRDs)."""
        # First: --allow-destructive cannot lift it, so it is the one to fix before anything else.
        problems = self.foreign_istiod_refusals(cluster, plan)
        if plan.profile.installer == "helm" and self.crds_before:
            # Helm installs only objects no other release or tool owns (helm@v4.3.0: pkg/action/validate.go
            # existingResourceConflict), and Istio's CRDs are in the base chart: its install would fail half-way.
            problems.append(f"--installer helm: the cluster already has Istio's CRDs (e.g. {min(self.crds_before)}), "
                            "which the run's Helm base release would have to own; run with --installer istioctl here")
        if allow_destructive:
            return problems
        existing = [ns for ns in plan.workload_namespaces if self.existed(ns)]
        if existing:
            problems.append(f"namespace {', '.join(existing)} already exists in this cluster; the run would label it "
                            "for injection and put its workloads in it; pass --allow-destructive to let it (labels "
                            "are put back afterwards and the namespace is never deleted), or name other namespaces "
                            "in the profile")
        if plan.installed:
            return problems  # the revisions, tags and CRDs are the cluster's and stay as they are
        for plane in plan.planes:
            if cluster.list(kinds.MUTATING_WEBHOOK, labels={facts.REV_LABEL: plane.plane.revision}):
                problems.append(f"revision {plane.plane.revision} already exists in this cluster and this run did "
                                "not create it; pass --allow-destructive to let the run modify it")
            if cluster.list(kinds.MUTATING_WEBHOOK, labels={facts.TAG_LABEL: plane.plane.tag}):
                problems.append(f"revision tag {plane.plane.tag} already exists in this cluster and this run did not "
                                "create it; pass --allow-destructive to let the run move it (and remove it at the end)")
        # Each install re-applies its own version's CRDs. Two versions rewrite them whatever they were; one version
        # leaves CRDs of its own version as they are. Builds from source all say the chart's placeholder, so for
        # them only the one version (not its label) tells.
        versions = sorted({str(p.plane.version) for p in plan.planes})
        writes = {facts.crd_version_label(p.plane.version) for p in plan.planes}
        for name, labels in sorted(self.crds_before.items()):
            found = labels.get(facts.CRD_VERSION_LABEL)
            if len(versions) > 1 or {found} != writes:
                origin = f"are from Istio {found}" if found else f"carry no {facts.CRD_VERSION_LABEL}"
                if found == facts.CHART_PLACEHOLDER_VERSION:
                    origin = f"carry the chart's placeholder version {found} (a build from source)"
                problems.append(f"the cluster's Istio CRDs (e.g. {name}) {origin}, and the run's installs would "
                                f"rewrite them as {' and then '.join(versions)}; pass --allow-destructive to allow it "
                                "(they are put back at the end)")
                break
        return problems

    def labels_during_run(self, plan: MeshPlan) -> dict[str, list[dict[str, str]]]:
        """The namespaces whose `istio-ca-root-cert` the run depends on -> each set of labels they carry during the
        run. App namespaces: their proxies verify istiod with it; the control planes' own: the trust check reads
        it there (multirev/observe.py published_roots). A namespace that exists keeps its own labels."""
        base = {name: {**self.namespaces_before.get(name, {RUN_ID_LABEL: self.run_id}),
                       "kubernetes.io/metadata.name": name}  # the API server sets it on every namespace
                for plane in plan.planes for name in (plane.plane.namespace, *plane.plane.app_namespaces)}
        during: dict[str, list[dict[str, str]]] = {}
        for plane in plan.planes:  # both planes' discovery labels where they share a namespace (shared layout)
            ns = plane.plane.namespace
            base[ns] = {**base[ns], **plane.discovery_labels}
        for ns in {plane.plane.namespace for plane in plan.planes}:
            during[ns] = [base[ns]]
        for plane in plan.planes:
            for app in plane.plane.app_namespaces:
                during[app] = [{**base[app], **plane.injection_labels, **plane.discovery_labels}]
        stable, canary = plan.plane("stable"), plan.plane("canary")
        if stable.uses_discovery_selectors:
            # The canary upgrade relabels the stable app namespace: both discovery labels while it moves, then the
            # target's (suites/test_canary_upgrade.py move).
            moving = stable.plane.app_namespaces[0]
            both = {k: v for k, v in {**during[moving][0], **canary.discovery_labels}.items()
                    if k not in stable.injection_labels}
            during[moving] += [{**both, facts.REV_LABEL: canary.plane.tag},
                               {**{k: v for k, v in both.items() if k not in stable.discovery_labels},
                                facts.REV_LABEL: canary.plane.tag}]
        return during

    def foreign_istiod_refusals(self, cluster: Cluster, plan: MeshPlan) -> list[str]:
        """An istiod the run did not install that watches one of the run's namespaces writes its own root into
        their `istio-ca-root-cert` (multirev/istio/namespace_controller.py), and it and the run's istiods write it
        back over each other: the run's proxies and its trust check would get whichever wrote last. Nothing the run
        may change fixes that, so it is refused with or without --allow-destructive."""
        # A revision of the plan's own names that exists is refused, or with --allow-destructive installed over.
        own = {(p.plane.namespace, p.plane.revision) for p in plan.planes}
        during = self.labels_during_run(plan)
        problems = []
        deployments = cluster.list(kinds.DEPLOYMENT, labels=ISTIOD_LABELS)
        for deployment in sorted(deployments, key=lambda d: (d["metadata"]["namespace"], d["metadata"]["name"])):
            namespace = deployment["metadata"]["namespace"]
            if (namespace, revision_of(deployment)) in own:
                continue
            istiod = Istiod.of(deployment, cluster.get(kinds.CONFIGMAP, mesh_config_map(revision_of(deployment)),
                                                       namespace))
            written = sorted(ns for ns, label_sets in during.items()
                             if any(istiod.watches(ns, labels) for labels in label_sets))
            if not written:
                continue
            mesh = f"ConfigMap {istiod.namespace}/{istiod.config_map}"
            if istiod.selectors is None:
                why = f"watches every namespace ({mesh} sets no discoverySelectors)"
                fix = "give it discoverySelectors that select none of them"
            elif not istiod.honours_selectors:
                minor = ".".join(map(str, istiod.minor or ()))
                why = (f"watches every namespace (Istio {minor}'s namespace controller ignores discoverySelectors "
                       f"unless {SCOPING_SETTING}=true)")
                fix = (f"set {SCOPING_SETTING}=true on it" if istiod.minor and istiod.minor >= (1, 16)
                       else "upgrade it") + " and give it discoverySelectors that select none of them"
            else:
                why = f"its discoverySelectors ({mesh}) select them"
                fix = "change its discoverySelectors, or name namespaces in the profile that they do not select"
            problems.append(
                f"istiod Deployment {istiod.namespace}/{istiod.name} (revision {istiod.revision}) was not installed by "
                f"this run and {why}: it would write its own root into istio-ca-root-cert in the run's namespaces "
                f"{', '.join(written)} over the run's istiods' roots, and the run's proxies and the canary upgrade's "
                f"trust check would read whichever was written last; {fix}, or run on a cluster without it "
                "(--allow-destructive does not permit this)")
        return problems

    def give_back(self, cluster: Cluster) -> list[str]:
        """Put every borrowed namespace's labels back to their values before the run, and the Istio CRDs that existed
        as they were, spec and labels (each `istioctl install` re-applies its own version's Base CRDs and relabels
        them as its own); problems as text."""
        problems = []
        for name, prior in self.crds_before.items():
            crd = cluster.get(kinds.CRD, name)
            if crd is None:
                problems.append(f"CustomResourceDefinition {name} existed before the run and is gone")
                continue
            spec = self.crd_specs_before.get(name)
            if spec is not None and (crd.get("spec") or {}) != spec:
                cluster.replace_spec(kinds.CRD, name, spec)
            now = labels_of(crd)
            if now != prior:
                cluster.label(kinds.CRD, name, {**dict.fromkeys(set(now) - set(prior)), **prior})
        for name, prior in self.borrowed.items():
            if cluster.get(kinds.NAMESPACE, name) is None:
                problems.append(f"namespace {name} existed before the run and is gone")
                continue
            cluster.label(kinds.NAMESPACE, name, dict(prior))
        return problems

    def runtime_added(self, cluster: Cluster, namespaces: list[str], revisions: set[str]) -> list[tuple[str, str, str]]:
        """What the run's istiods wrote at run time into these namespaces (control planes' own) that was not there."""
        return sorted(set(istiod_runtime(cluster, namespaces, revisions)) - self.runtime_before)

    def published_added(self, cluster: Cluster) -> list[tuple[str, str]]:
        """istiod-written CA ConfigMaps in namespaces that existed before the run and had none: the run's istiods
        wrote them. Those in namespaces the run made go with the namespace, whoever wrote them (a cluster's istiod
        watching `istio-injection=enabled` namespaces writes into the run's injection probe: suites/scenario.py)."""
        now = {(cm["metadata"]["namespace"], cm["metadata"]["name"])
               for cm in cluster.list(kinds.CONFIGMAP, labels=PUBLISHED_LABEL)
               if cm["metadata"]["name"] in PUBLISHED_NAMES and cm["metadata"]["namespace"] in self.namespaces_before}
        return sorted(now - self.published_before)

    def webhooks_added(self, cluster: Cluster) -> list[tuple[str, str]]:
        now = {(kind.kind, hook["metadata"]["name"]) for kind in (kinds.MUTATING_WEBHOOK, kinds.VALIDATING_WEBHOOK)
               for hook in cluster.list(kind)}
        return sorted(now - self.webhooks_before)


def istiod_runtime(cluster: Cluster, namespaces: list[str],
                   revisions: set[str] | None = None) -> list[tuple[str, str, str]]:
    """(kind, namespace, name) of the objects istiods write at run time (facts.istiod_runtime_names) that exist in
    `namespaces` (the control planes'), of any revision's naming unless `revisions` is given. ConfigMaps and Leases
    are listed in those namespaces alone; the one Secret, istiod's self-signed CA, is read by name: the run never
    lists Secrets (docs/backends.md, "What the run reads")."""
    def named(name: str) -> bool:
        if revisions is not None:
            return name in facts.istiod_runtime_names(revisions)
        return name in facts.istiod_runtime_names(set()) or any(name.startswith(f"{eid}-")
                                                                for eid in facts.ISTIOD_ELECTION_IDS)
    found = []
    for namespace in namespaces:
        for kind in (kinds.CONFIGMAP, kinds.LEASE):
            for obj in cluster.list(kind, namespace):
                if named(obj["metadata"]["name"]):
                    found.append((kind.kind, namespace, obj["metadata"]["name"]))
        if cluster.get(kinds.SECRET, facts.ISTIOD_CA_SECRET, namespace) is not None:
            found.append((kinds.SECRET.kind, namespace, facts.ISTIOD_CA_SECRET))
    return found
