"""The model's istioctl: interprets the very argv the Istioctl wrapper builds, per version.

Flags a version does not have are rejected the way cobra does (`Error: unknown flag: --x`), so a
wrapper that builds the wrong argv for a version fails here too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from multirev.backends.simulated.cluster import SimulatedCluster
from multirev.backends.simulated.mesh import MeshModel
from multirev.commands import Completed
from multirev.istio import facts
from multirev.istio.capabilities import supports
from multirev.istio.versions import IstioVersion
from multirev.kube import kinds
from multirev.kube.objects import labels_of

SIM_ISTIOCTL = re.compile(r"/simulated/istio-(?P<version>[^/]+)/bin/istioctl$")
READINESS_TIMEOUT = 300.0  # istioctl install --readiness-timeout default (operator/cmd/mesh/install.go)

# Root flags that take a value (istio@1.18.5:istioctl/cmd/root.go, istio@1.30.3:istioctl/pkg/cli/option.go).
ROOT_VALUE_FLAGS = {"--kubeconfig": "kubeconfig", "-c": "kubeconfig", "--context": "context",
                    "--istioNamespace": "istio_namespace", "-i": "istio_namespace",
                    "--namespace": "namespace", "-n": "namespace"}
COMMAND_FLAGS: dict[str, tuple[dict[str, str], set[str]]] = {
    # command: ({value flags}, {boolean flags})
    "version": ({}, {"--remote", "--short", "-s"}),
    "install": ({"-f": "filename", "--filename": "filename", "--set": "set", "-s": "set",
                 "--readiness-timeout": "readiness_timeout"}, {"-y", "--skip-confirmation", "--verify"}),
    "uninstall": ({"--revision": "revision", "-r": "revision", "-f": "filename"},
                  {"-y", "--skip-confirmation", "--purge", "--dry-run"}),
    "tag set": ({"--revision": "revision", "-r": "revision", "--webhook-name": "webhook_name"},
                {"-y", "--skip-confirmation", "--overwrite"}),
    "tag list": ({}, set()),
    "tag remove": ({}, {"-y", "--skip-confirmation"}),
    "proxy-config bootstrap": ({"-o": "output", "--output": "output"}, set()),
    "analyze": ({"--revision": "revision", "-r": "revision", "--istioNamespace": "istio_namespace",
                 "-i": "istio_namespace"}, {"--all-namespaces", "-A"}),
    "proxy-status": ({"--revision": "revision", "-r": "revision"}, set()),
}


def parse(version: IstioVersion, argv: list[str]) -> tuple[str, list[str], dict[str, str | bool]] | str:
    """Split argv into (command, positionals, flags), or return cobra's error text."""
    words: list[str] = []
    flags: dict[str, str | bool] = {}
    value_flags = dict(ROOT_VALUE_FLAGS)
    bool_flags: set[str] = set()
    command = ""
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("-"):
            words.append(token)
            if not command:
                joined = " ".join(words[:2])
                if joined in COMMAND_FLAGS or words[0] in COMMAND_FLAGS:
                    command = joined if joined in COMMAND_FLAGS else words[0]
                    vf, bf = COMMAND_FLAGS[command]
                    if command == "tag list" and supports(version, "tag-list-output-flag"):
                        vf = {**vf, "-o": "output", "--output": "output"}
                    value_flags.update(vf)
                    bool_flags |= bf
            i += 1
            continue
        name, _, inline = token.partition("=")
        if name in value_flags:
            if inline:
                flags[value_flags[name]] = inline
            else:
                if i + 1 >= len(argv):
                    return f"Error: flag needs an argument: {name}"
                flags[value_flags[name]] = argv[i + 1]
                i += 1
        elif name in bool_flags:
            flags[name.lstrip("-")] = inline != "false"
        else:
            return f"Error: unknown flag: {name}"
        i += 1
    if not command:
        return f'Error: unknown command "{words[0] if words else ""}" for "istioctl"'
    positionals = words[len(command.split()):]
    return command, positionals, flags


class SimulatedIstioctl:
    def __init__(self, cluster: SimulatedCluster, mesh: MeshModel) -> None:
        self.cluster = cluster
        self.mesh = mesh

    def handles(self, argv: list[str]) -> bool:
        return bool(argv) and SIM_ISTIOCTL.search(argv[0]) is not None

    def run(self, argv: list[str]) -> Completed:
        match = SIM_ISTIOCTL.search(argv[0])
        assert match
        version = IstioVersion.parse(match.group("version"))
        parsed = parse(version, argv[1:])
        if isinstance(parsed, str):
            return Completed(argv, 1, "", parsed + "\n")
        command, args, flags = parsed
        handler = getattr(self, "_" + command.replace(" ", "_").replace("-", "_"))
        out, err, code = handler(version, args, flags)
        return Completed(argv, code, out, err)

    # -- commands -------------------------------------------------------------------------------
    def _version(self, version: IstioVersion, args: list[str], flags: dict) -> tuple[str, str, int]:
        text = f"client version: {version}" if supports(version, "client-version-prefix") else str(version)
        return text + "\n", "", 0

    def _install(self, version: IstioVersion, args: list[str], flags: dict) -> tuple[str, str, int]:
        filename = flags.get("filename")
        if not filename:
            return "", "Error: an IstioOperator file is required (-f)\n", 1
        try:
            iop = yaml.safe_load(Path(str(filename)).read_text())
        except (OSError, yaml.YAMLError) as exc:
            return "", f"Error: could not read {filename}: {exc}\n", 1
        if not isinstance(iop, dict) or iop.get("kind") != "IstioOperator":
            return "", f"Error: {filename} is not an IstioOperator\n", 1
        revision = self.mesh.install(iop, version)
        if revision.install_error is not None:
            # A refused object fails the install after the objects before it exist (istiod too, when a gateway
            # Service is refused); the component's CLI name: istio@1.30.3:operator/pkg/component/component.go
            # userFacingComponentNames (1.18.5: operator/pkg/name/name.go).
            component, failure = revision.install_error
            cli_name = {"Base": "Istio core", "Pilot": "Istiod", "IngressGateways": "Ingress gateways",
                        "EgressGateways": "Egress gateways"}.get(component, "Unknown")
            final = failure if supports(version, "install-error-detail") else "errors occurred during operation"
            return "", f"✘ {cli_name} encountered an error: {failure}\nError: failed to install manifests: {final}\n", 1
        if not self.mesh.wait_ready(revision, READINESS_TIMEOUT):
            # istio@1.18.5:operator/pkg/helmreconciler/wait.go, apply.go; istio@1.30.3:operator/pkg/install/
            # wait.go, install.go; the progress line: operator/pkg/util/progress/progress.go (both tags).
            failure = (f"failed to wait for resource: resources not ready after 5m0s: context deadline exceeded\n"
                       f"  Deployment/{revision.namespace}/{facts.istiod_name(revision.name)} "
                       f"(containers with unready status: [discovery])")
            final = failure if supports(version, "install-error-detail") else "errors occurred during operation"
            return "", f"✘ Istiod encountered an error: {failure}\nError: failed to install manifests: {final}\n", 1
        # Component names: istio@1.18.5:operator/pkg/name/name.go; icons: istio@1.23.0:operator/pkg/name/name.go.
        components = [("Istio core", "⛵️"), ("Istiod", "🧠"), ("Ingress gateways", "🛬")]
        egress = ((iop.get("spec") or {}).get("components") or {}).get("egressGateways") or []
        if any(g.get("enabled") for g in egress):
            components.append(("Egress gateways", "🛫"))
        icons = supports(version, "install-progress-icons")
        lines = [f"✔ {name} installed" + (f" {icon}" if icons else "") for name, icon in components]
        return "\n".join([*lines, "✔ Installation complete"]) + "\n", "", 0

    def _uninstall(self, version: IstioVersion, args: list[str], flags: dict) -> tuple[str, str, int]:
        """--revision removes objects labelled istio.io/rev=<rev> whose operator.istio.io/component is one of the
        revision's components (not Base); --purge removes everything labelled operator.istio.io/component, CRDs
        included. Objects `tag set` made without those labels (1.21+) stay either way (istio@1.18.5:operator/pkg/
        helmreconciler/prune.go; istio@1.30.3:operator/pkg/uninstall/prune.go, operator/cmd/mesh/uninstall.go)."""
        store = self.cluster.store
        saved_iops = supports(version, "installed-state-iop")
        if flags.get("purge"):
            # < 1.21 also every IstioOperator (istio@1.18.5:operator/pkg/helmreconciler/prune.go getIstioOperatorCR)
            doomed = [o for o in store.all() if facts.COMPONENT_LABEL in labels_of(o)
                      or (saved_iops and o.get("kind") == kinds.ISTIO_OPERATOR.kind)]
        elif flags.get("revision"):
            rev = str(flags["revision"])
            if rev not in self.mesh.revisions:
                return "", "Error: could not find target revision\n", 1
            doomed = [o for o in store.all() if labels_of(o).get(facts.REV_LABEL) == rev
                      and labels_of(o).get(facts.COMPONENT_LABEL) in facts.REVISION_PRUNED_COMPONENTS]
            if supports(version, "uninstall-selects-owning-resource"):
                owner = self._uninstall_owner(flags.get("filename"))
                doomed = [o for o in doomed if all(labels_of(o).get(k) == v for k, v in owner.items())]
            if saved_iops:
                doomed += [o for o in store.list(kinds.ISTIO_OPERATOR)
                           if o["metadata"]["name"] == facts.installed_state_name_pruned(rev)]
        else:
            return "", ("Error: at least one of the --revision (or --set revision=<revision>), --filename or "
                        "--purge flags must be set\n"), 1
        mode = "purge" if flags.get("purge") else "revision"
        doomed = self.cluster.hooks.apply("uninstall_targets", doomed, mode=mode, revision=flags.get("revision"),
                                          all_objects=store.all())
        for obj in doomed:
            self.cluster.delete(kinds.of(obj), obj["metadata"]["name"], obj["metadata"].get("namespace"))
        if self.cluster.hooks.has("uninstall_namespace_labels"):
            for namespace in store.list(kinds.NAMESPACE):
                labels = labels_of(namespace)
                kept = self.cluster.hooks.apply("uninstall_namespace_labels", dict(labels),
                                                name=namespace["metadata"]["name"], mode=mode,
                                                revision=flags.get("revision"))
                if kept != labels:
                    self.cluster.label(kinds.NAMESPACE, namespace["metadata"]["name"],
                                       {k: kept.get(k) for k in {*labels, *kept}})
        if mode == "revision":
            rev = str(flags["revision"])
            # The revision is gone once its istiod is (a 1.24+ uninstall may have selected nothing).
            if not any(labels_of(o).get(facts.REV_LABEL) == rev and labels_of(o).get(facts.COMPONENT_LABEL) == "Pilot"
                       for o in store.all()):
                self.mesh.revisions.pop(rev, None)
        else:
            self.mesh.revisions.clear()
        return "✔ Uninstall complete\n", "", 0

    @staticmethod
    def _uninstall_owner(filename: object) -> dict[str, str]:
        """The owning-resource labels a 1.24+ revision uninstall selects: metadata.name and metadata.namespace of
        the given IstioOperator merged over the default profile's (namespace istio-system, no name)
        (istio@1.30.3:operator/cmd/mesh/uninstall.go; manifests/profiles/default.yaml; operator/pkg/uninstall/
        prune.go GetPrunedResources adds a label only when the value is not empty)."""
        meta = {"namespace": facts.DEFAULT_ISTIO_NAMESPACE}
        if filename:
            doc = yaml.safe_load(Path(str(filename)).read_text()) or {}
            meta.update({k: v for k, v in (doc.get("metadata") or {}).items() if k in ("name", "namespace") and v})
        owner = {facts.OWNING_RESOURCE_NAMESPACE_LABEL: meta["namespace"]}
        if meta.get("name"):
            owner[facts.OWNING_RESOURCE_LABEL] = meta["name"]
        return owner

    def _tag_set(self, version: IstioVersion, args: list[str], flags: dict) -> tuple[str, str, int]:
        if len(args) != 1 or not flags.get("revision"):
            return "", "Error: must provide a tag for modification and --revision\n", 1
        tag, revision_name = args[0], str(flags["revision"])
        istio_ns = str(flags.get("istio_namespace") or facts.DEFAULT_ISTIO_NAMESPACE)
        store = self.cluster.store
        rev_hooks = [w for w in store.list(kinds.MUTATING_WEBHOOK, labels={facts.REV_LABEL: revision_name})
                     if facts.TAG_LABEL not in labels_of(w)]
        if not rev_hooks or revision_name not in self.mesh.revisions:
            what = "MutatingWebhookConfiguration or Service" if supports(version, "tag-service") \
                else "MutatingWebhookConfiguration"
            return "", f'Error: cannot modify tag: cannot find {what} with revision "{revision_name}"\n', 1
        # Neither --overwrite nor the `default` tag is checked against revision names (istio@1.30.3:
        # istioctl/pkg/tag/generate.go checkTagNameCollidesWithRevisionName): `tag set default --revision default`
        # points the tag at the control plane installed without a revision.
        if tag in self.mesh.revisions and not flags.get("overwrite") and tag != facts.DEFAULT_TAG:
            return "", (f'Error: cannot create revision tag "{tag}": found existing control plane revision '
                        "with same name\n"), 1
        existing = store.list(kinds.MUTATING_WEBHOOK, labels={facts.TAG_LABEL: tag})
        if existing and not flags.get("overwrite"):
            return "", f'Error: revision tag "{tag}" already exists, and --overwrite is false\n', 1
        revision = self.mesh.revisions[revision_name]
        ordered = sorted(self.mesh.revisions.values(), key=lambda r: r.install_order)
        target = self.cluster.hooks.apply("tag_revision", revision_name, tag=tag,
                                          install_order=revision.install_order,
                                          revisions=[r.name for r in ordered])
        revision = self.mesh.revisions.get(target, revision)
        objects = [self.cluster.hooks.apply("tag_webhook", obj, tag=tag, revision=revision.name,
                                            istio_namespace=istio_ns, install_order=revision.install_order,
                                            istiods=self.mesh.istiods())
                   if obj["kind"] == "MutatingWebhookConfiguration" else obj
                   for obj in self.mesh.tag_objects(tag, revision, istio_ns, user_managed=True)]
        for obj in self.cluster.hooks.apply("tag_objects", objects, tag=tag, revision=revision.name,
                                            istio_namespace=istio_ns, install_order=revision.install_order):
            if obj["kind"] == "Service" and store.get(kinds.NAMESPACE, istio_ns) is None:
                # The tag's Service goes to the -i namespace; istioctl 1.31 against a real API server failed
                # so when that namespace does not exist (tests/local, tag set without -i).
                return "", ("Error: failed to apply tag webhook MutatingWebhookConfiguration to cluster: failed to "
                            f'apply tag manifests to cluster: patch: namespaces "{istio_ns}" not found\n'), 1
            self.cluster.apply(obj)
        return facts.tag_created_message(tag, revision_name) + "\n", "", 0

    def _tag_list(self, version: IstioVersion, args: list[str], flags: dict) -> tuple[str, str, int]:
        store = self.cluster.store
        rows: list[tuple[str, str, str]] = []
        tagged_revisions = set()
        for hook in store.list(kinds.MUTATING_WEBHOOK):
            labels = labels_of(hook)
            if facts.TAG_LABEL not in labels:
                continue
            tag, rev = labels[facts.TAG_LABEL], labels.get(facts.REV_LABEL, "")
            using = [n["metadata"]["name"] for n in store.list(kinds.NAMESPACE)
                     if labels_of(n).get(facts.REV_LABEL) == tag]
            rows.append((tag, rev, ",".join(using)))
            tagged_revisions.add(rev)
        if supports(version, "tag-list-shows-untagged"):
            for rev in sorted({labels_of(h).get(facts.REV_LABEL, "") for h in store.list(kinds.MUTATING_WEBHOOK)
                               if facts.REV_LABEL in labels_of(h)} - tagged_revisions):
                using = [n["metadata"]["name"] for n in store.list(kinds.NAMESPACE)
                         if labels_of(n).get(facts.REV_LABEL) == rev]
                rows.append(("", rev, ",".join(using)))
        if not rows:
            return facts.tag_list_empty_message(version) + "\n", "", 0
        table = [facts.TAG_LIST_HEADER, *sorted(rows)]
        widths = [max(len(r[i]) for r in table) for i in range(3)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table]
        return "\n".join(lines) + "\n", "", 0

    def _proxy_config_bootstrap(self, version: IstioVersion, args: list[str], flags: dict) -> tuple[str, str, int]:
        """`proxy-config bootstrap <pod>.<ns> -o json`: bootstrap.node.metadata.PROXY_CONFIG.discoveryAddress
        (tests/integration/pilot/revisions/revision_tag_test.go reads the same field)."""
        if not args or "." not in args[0]:
            return "", "Error: pod name must be given as <pod>.<namespace>\n", 1
        pod_name, namespace = args[0].split(".", 1)
        pod = self.cluster.store.get(kinds.POD, pod_name, namespace)
        if pod is None:
            return "", f'Error: pods "{pod_name}" not found\n', 1
        spec = pod["spec"]
        proxies = [c for c in spec.get("containers", []) + spec.get("initContainers", [])
                   if c["name"] == facts.PROXY_CONTAINER]
        if not proxies:
            return "", f"Error: {pod_name}.{namespace} has no istio-proxy container\n", 1
        env = {e["name"]: e.get("value", "") for e in proxies[0].get("env", [])}
        proxy_config = json.loads(env.get("PROXY_CONFIG", "{}"))
        node_id = f"sidecar~10.244.0.1~{pod_name}.{namespace}~{namespace}.svc.cluster.local"
        bootstrap = {"bootstrap": {"node": {"id": node_id,
                                            "metadata": {"PROXY_CONFIG": proxy_config,
                                                         "ISTIO_VERSION": facts.image_version(proxies[0]["image"])}}}}
        return json.dumps(bootstrap, indent=2) + "\n", "", 0

    def _proxy_status(self, version: IstioVersion, args: list[str], flags: dict) -> tuple[str, str, int]:
        """Header per version: NAME CLUSTER CDS LDS EDS RDS ECDS ISTIOD VERSION (1.18/1.19),
        NAME CLUSTER ISTIOD VERSION SUBSCRIBED TYPES (1.29/1.30) (istioctl/pkg/proxystatus)."""
        revision = str(flags.get("revision") or "")
        istio_ns = str(flags.get("istio_namespace") or facts.DEFAULT_ISTIO_NAMESPACE)
        istiods = self.cluster.store.list(kinds.POD, istio_ns, labels={"app": "istiod", facts.REV_LABEL:
                                                                       revision or "default"})
        if not any(self.cluster.is_ready(p) for p in istiods):
            # istio@1.30.3: istioctl/pkg/multixds/gather.go ControlPlaneNotFoundError
            return "", f'Error: no running Istio pods in "{istio_ns}"\n', 1
        rows = []
        for pod in self.cluster.store.list(kinds.POD):
            annotations = pod["metadata"].get("annotations") or {}
            if revision and annotations.get(facts.REV_ANNOTATION) != revision:
                continue
            if facts.SIDECAR_STATUS_ANNOTATION not in annotations:
                continue
            rev = annotations[facts.REV_ANNOTATION]
            name = f"{pod['metadata']['name']}.{pod['metadata']['namespace']}"
            rows.append((name, f"{facts.istiod_name(rev)}-0", rev))
        if supports(version, "proxy-status-subscribed-types"):
            lines = ["NAME  CLUSTER  ISTIOD  VERSION  SUBSCRIBED TYPES"]
            lines += [f"{n}  Kubernetes  {i}  {version}  4 (CDS,LDS,EDS,RDS)" for n, i, _ in rows]
        else:
            lines = ["NAME  CLUSTER  CDS  LDS  EDS  RDS  ECDS  ISTIOD  VERSION"]
            lines += [f"{n}  Kubernetes  SYNCED  SYNCED  SYNCED  SYNCED  NOT SENT  {i}  {version}" for n, i, _ in rows]
        return "\n".join(lines) + "\n", "", 0

    def _analyze(self, version: IstioVersion, args: list[str], flags: dict) -> tuple[str, str, int]:
        """Clean: `✔ No validation issues found when analyzing namespace: <ns>.` on stderr, exit 0; error-level
        findings `Error [IST0101] (VirtualService <ns>/<name>) ...` exit 79 (istioctl/pkg/analyze)."""
        namespace = str(flags.get("namespace") or "default")
        findings = self.mesh.analyze(namespace, str(flags.get("revision") or "default"))
        if not findings:
            return "", f"\u2714 No validation issues found when analyzing namespace: {namespace}.\n", 0
        return "\n".join(findings) + "\n", "", 79 if any(f.startswith("Error") for f in findings) else 0

    def _tag_remove(self, version: IstioVersion, args: list[str], flags: dict) -> tuple[str, str, int]:
        tag = args[0] if args else ""
        store = self.cluster.store
        webhooks = store.list(kinds.MUTATING_WEBHOOK, labels={facts.TAG_LABEL: tag})
        # Webhooks by label wherever they are, Services only in `-i` (istio@1.30.3: istioctl/pkg/tag/tag.go removeTag,
        # util.go GetWebhooksWithTag, GetServicesWithTag).
        istio_ns = str(flags.get("istio_namespace") or facts.DEFAULT_ISTIO_NAMESPACE)
        services = store.list(kinds.SERVICE, istio_ns, labels={facts.TAG_LABEL: tag}) \
            if supports(version, "tag-service") else []
        if not webhooks and not services:
            # istio@1.18.5:istioctl/cmd/tag.go; istio@1.30.3:istioctl/pkg/tag/tag.go removeTag
            what = "MutatingWebhookConfiguration or Service" if supports(version, "tag-service") \
                else "MutatingWebhookConfiguration"
            return "", f'Error: cannot remove tag "{tag}": cannot find {what} for tag\n', 1
        for hook in webhooks:
            self.cluster.delete(kinds.MUTATING_WEBHOOK, hook["metadata"]["name"])
        if supports(version, "tag-remove-deletes-validator"):
            for hook in store.list(kinds.VALIDATING_WEBHOOK, labels={facts.TAG_LABEL: tag}):
                self.cluster.delete(kinds.VALIDATING_WEBHOOK, hook["metadata"]["name"])
        for svc in services:
            self.cluster.delete(kinds.SERVICE, svc["metadata"]["name"], svc["metadata"]["namespace"])
        return f"Revision tag {tag} removed\n", "", 0
