"""The Istio webhook configurations a run's installs may change, recorded whole before the first install and put
back exactly at teardown (fixtures/mesh.py) and by `./run cleanup` (multirev/cleanup.py).

Why whole, not just "existed or not": a revisioned `istioctl install` on a cluster without a `default` tag webhook
makes one, and with it deactivates the cluster's `istio.io/rev=default` injector and writes its own
`istiod-default-validator` over the cluster's (istio@1.30.3: operator/pkg/install/install.go,
istioctl/pkg/tag/util.go PreviousInstallExists, istioctl/pkg/tag/generate.go DeactivateIstioInjectionWebhook). A
Helm-installed default revision has no tag webhook, so a run changes both; removing what the run made is not
enough, what it changed must be given back as it was.

Only what a writer sets is compared and given back (labels, annotations, the webhooks); the API server's own
bookkeeping (uid, resourceVersion, managedFields) is not the run's to restore, and the object keeps its uid.
"""

from __future__ import annotations

import base64
import copy
import json
import zlib
from dataclasses import dataclass
from typing import Any

from multirev.backends.base import Cluster
from multirev.istio import facts
from multirev.kube import kinds
from multirev.kube.kinds import Kind
from multirev.kube.objects import Obj, annotations_of, labels_of

WEBHOOK_KINDS = (kinds.MUTATING_WEBHOOK, kinds.VALIDATING_WEBHOOK)
# On a ConfigMap in the run record's namespace (multirev/runrecord.py): the webhook configuration it holds.
RECORD_LABEL = "conformance.multirev.io/webhook-config"
RECORD_KEY = "config.json.zlib.b64"
# Name prefixes of the webhook configurations Istio's charts render (istio@1.30.3: CHART/mutatingwebhook.yaml,
# validatingwebhookconfiguration.yaml, revision-tags-mwc.yaml; manifests/charts/default/templates/
# validatingwebhook.yaml for the default validator).
ISTIO_NAME_PREFIXES = ("istio-sidecar-injector", "istio-revision-tag-", "istio-validator-", facts.DEFAULT_VALIDATOR)


def kind_named(kind_name: str) -> Kind:
    return kinds.MUTATING_WEBHOOK if kind_name == kinds.MUTATING_WEBHOOK.kind else kinds.VALIDATING_WEBHOOK


def calls_into(hook: Obj, namespaces: set[str]) -> bool:
    """Whether every webhook of the configuration calls a Service in one of `namespaces`: a revision's and its tags'
    webhooks call its istiod in its own namespace (the tag's `-i`), a namesake revision's elsewhere call that one's."""
    services = [((w.get("clientConfig") or {}).get("service") or {}).get("namespace")
                for w in hook.get("webhooks") or []]
    return all(ns in namespaces for ns in services)  # one with no webhooks calls nothing of anyone's


def installs_may_touch(hook: Obj) -> bool:
    """An Istio injector, validator, tag or default webhook configuration: a revision's or tag's label, or a name
    Istio's charts give. Someone else's webhooks are never written by an install."""
    labels = labels_of(hook)
    return facts.REV_LABEL in labels or facts.TAG_LABEL in labels \
        or hook["metadata"]["name"].startswith(ISTIO_NAME_PREFIXES)


@dataclass(frozen=True)
class WebhookConfig:
    """What the run gives back of one webhook configuration."""

    kind: str
    name: str
    labels: dict[str, str]
    annotations: dict[str, str]
    webhooks: list[dict[str, Any]]

    @classmethod
    def of(cls, obj: Obj) -> WebhookConfig:
        return cls(obj.get("kind") or "", obj["metadata"]["name"], dict(labels_of(obj)), dict(annotations_of(obj)),
                   copy.deepcopy(obj.get("webhooks") or []))

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.name)

    def same_as(self, obj: Obj) -> bool:
        found = WebhookConfig.of({**obj, "kind": self.kind})
        return (found.labels, found.annotations, found.webhooks) == (self.labels, self.annotations, self.webhooks)

    def fields(self) -> dict[str, Any]:
        return {"metadata/labels": self.labels, "metadata/annotations": self.annotations, "webhooks": self.webhooks}

    def as_object(self) -> Obj:
        kind = kind_named(self.kind)
        return {"apiVersion": kind.api_version, "kind": kind.kind,
                "metadata": {"name": self.name, "labels": dict(self.labels), "annotations": dict(self.annotations)},
                "webhooks": copy.deepcopy(self.webhooks)}

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "name": self.name, "labels": self.labels,
                           "annotations": self.annotations, "webhooks": self.webhooks}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> WebhookConfig:
        data = json.loads(text)
        return cls(data["kind"], data["name"], dict(data["labels"]), dict(data["annotations"]), list(data["webhooks"]))


Recorded = dict[tuple[str, str], WebhookConfig]


def survey(cluster: Cluster) -> Recorded:
    """Every Istio webhook configuration on the cluster, whole."""
    found: Recorded = {}
    for kind in WEBHOOK_KINDS:
        for hook in cluster.list(kind):
            if installs_may_touch(hook):
                config = WebhookConfig.of({**hook, "kind": kind.kind})
                found[config.key] = config
    return found


def configmap(record_namespace: str, config: WebhookConfig) -> Obj:
    """The record's copy of one webhook configuration (caBundles make them too large for the record's annotation)."""
    short = "mwc" if config.kind == kinds.MUTATING_WEBHOOK.kind else "vwc"
    packed = base64.b64encode(zlib.compress(config.to_json().encode(), 9)).decode()
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"{short}-{config.name}"[:253], "namespace": record_namespace,
                         "labels": {RECORD_LABEL: "true"},
                         "annotations": {RECORD_LABEL: f"{config.kind}/{config.name}"}},
            "data": {RECORD_KEY: packed}}


def read(cluster: Cluster, record_namespace: str) -> Recorded:
    found: Recorded = {}
    for cm in cluster.list(kinds.CONFIGMAP, record_namespace, labels={RECORD_LABEL: "true"}):
        packed = (cm.get("data") or {}).get(RECORD_KEY)
        if packed:
            config = WebhookConfig.from_json(zlib.decompress(base64.b64decode(packed)).decode())
            found[config.key] = config
    return found


def services_gone(cluster: Cluster, config: WebhookConfig) -> list[str]:
    """`namespace/name` of each Service the configuration's webhooks call that no longer exists."""
    called = sorted({(s.get("namespace") or "", s.get("name") or "") for w in config.webhooks
                     if (s := (w.get("clientConfig") or {}).get("service"))})
    return [f"{ns}/{name}" for ns, name in called if cluster.get(kinds.SERVICE, name, ns) is None]


def give_back(cluster: Cluster, recorded: Recorded, *, dry_run: bool = False) -> list[str]:
    """Put every recorded webhook configuration back as it was: re-created if gone, its labels, annotations and
    webhooks replaced in place if changed. One line for each it gave back (dry: would). One whose istiod Service is
    gone is not put back (a revision of the run's name that --allow-destructive let it install over and remove):
    its webhooks, which fail closed, would refuse every pod or config they select; a line says so."""
    lines = []
    for key in sorted(recorded):
        before = recorded[key]
        kind = kind_named(before.kind)
        if gone := services_gone(cluster, before):
            lines.append(f"did not give back {before.kind} {before.name}: it calls Service {', '.join(gone)}, "
                         "which is gone")
            continue
        found = cluster.get(kind, before.name)
        if found is None:
            if not dry_run:
                cluster.create(before.as_object())
            lines.append(f"{'would re-create' if dry_run else 're-created'} {before.kind} {before.name}")
        elif not before.same_as(found):
            if not dry_run:
                cluster.replace_fields(kind, before.name, before.fields())
            lines.append(f"{'would give back' if dry_run else 'gave back'} {before.kind} {before.name}")
    return lines


def still_different(cluster: Cluster, recorded: Recorded) -> list[str]:
    """Recorded webhook configurations that are not as they were (after a give-back: what could not be put back)."""
    problems = []
    for key in sorted(recorded):
        before = recorded[key]
        if services_gone(cluster, before):
            continue  # not to be put back (give_back says why)
        found = cluster.get(kind_named(before.kind), before.name)
        if found is None:
            problems.append(f"{before.kind} {before.name} existed before the run and is gone")
        elif not before.same_as(found):
            problems.append(f"{before.kind} {before.name} is not as it was before the run")
    return problems
