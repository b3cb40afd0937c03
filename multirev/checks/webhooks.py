"""Does every Istio injector webhook call a Service that exists?

A tag set without `-i <namespace>` points at istio-system while istiod runs elsewhere; pod
creation then fails with `service "istiod-<rev>" not found` (istio@1.30.3:istioctl/pkg/tag/generate.go).
"""

from __future__ import annotations

from multirev.istio import facts
from multirev.kube.objects import Obj, labels_of, name_of, namespace_of


def check_webhook_services(webhooks: list[Obj], services: list[Obj]) -> list[str]:
    existing = {(namespace_of(s), name_of(s)) for s in services}
    where = {}
    for svc in services:
        where.setdefault(name_of(svc), []).append(namespace_of(svc))
    problems = []
    for config in webhooks:
        labels = labels_of(config)
        for entry in config.get("webhooks", []):
            service = (entry.get("clientConfig") or {}).get("service")
            if not service:
                continue  # URL-based webhooks (remote clusters) are out of scope
            key = (service["namespace"], service["name"])
            if key in existing:
                continue
            runs_in = where.get(service["name"])
            hint = f"; {service['name']} runs in {', '.join(sorted(runs_in))}" if runs_in else ""
            fix = ""
            if facts.TAG_LABEL in labels and runs_in:
                fix = (f"; fix: istioctl tag set {labels[facts.TAG_LABEL]} --revision {labels.get(facts.REV_LABEL)} "
                       f"-i {sorted(runs_in)[0]} --overwrite")
            problems.append(f"MutatingWebhookConfiguration {name_of(config)} webhook {entry['name']} calls Service "
                            f"{service['namespace']}/{service['name']}, which does not exist{hint}{fix}")
    return problems
