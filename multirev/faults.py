"""Named faults of the simulated backend, and the small API for writing more.

A fault breaks one behaviour of the model by attaching functions to its hook points
(multirev/backends/simulated/hooks.py). ``must_fail`` lists the suite node ids (or node-id
prefixes) the fault must make fail; every other conformance test must still pass. ``must_fail_when``
adds tests that also fail when the canary's Istio version has a capability (multirev/istio/capabilities.py),
for faults whose consequences differ between Istio versions.

Writing a fault in a plugin file (load it with ``--sim-fault-plugin PATH``)::

    from multirev.faults import fault

    @fault("my-fault", "what it breaks", must_fail=["suites/test_injection.py::"])
    def install(hooks):
        hooks.add("proxy_image", lambda image, **ctx: image + "-broken")
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multirev.backends.simulated.hooks import Hooks
from multirev.errors import UsageError
from multirev.istio import trust
from multirev.istio.capabilities import CAPABILITIES
from multirev.istio.versions import IstioVersion

CAPABILITY_NAMES = frozenset(row.name for row in CAPABILITIES)


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    must_fail: tuple[str, ...]
    install: Callable[[Hooks], None]
    # Version-dependent cascades: capability name -> tests that also fail when the canary's Istio has it.
    must_fail_when: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def as_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "description": self.description, "must_fail": list(self.must_fail)}
        if self.must_fail_when:
            entry["must_fail_when"] = {cap: list(tests) for cap, tests in self.must_fail_when}
        return entry


REGISTRY: dict[str, Fault] = {}


def fault(name: str, description: str, *, must_fail: list[str],
          must_fail_when: dict[str, list[str]] | None = None) -> Callable[[Callable[[Hooks], None]], Callable]:
    def register(install: Callable[[Hooks], None]) -> Callable[[Hooks], None]:
        if name in REGISTRY:
            raise UsageError(f"fault '{name}' is defined twice")
        unknown = [cap for cap in (must_fail_when or {}) if cap not in CAPABILITY_NAMES]
        if unknown:
            raise UsageError(f"fault '{name}': unknown capability {', '.join(unknown)} in must_fail_when")
        when = tuple((cap, tuple(tests)) for cap, tests in (must_fail_when or {}).items())
        REGISTRY[name] = Fault(name, description, tuple(must_fail), install, when)
        return install
    return register


def load_plugin(path: Path) -> None:
    if not path.is_file():
        raise UsageError(f"--sim-fault-plugin {path}: no such file")
    spec = importlib.util.spec_from_file_location(f"multirev_fault_plugin_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise UsageError(f"--sim-fault-plugin {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"--sim-fault-plugin {path} failed to load: {type(exc).__name__}: {exc}") from exc


def resolve(names: list[str]) -> list[Fault]:
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise UsageError(f"unknown --sim-fault {', '.join(unknown)}; see --sim-list-faults")
    return [REGISTRY[n] for n in names]


# -- the catalog -------------------------------------------------------------------------------
# The canary revision is the second one the suite installs (install_order 2).
CONTROL_PLANE = "suites/test_control_planes.py::test_control_plane_installed_and_ready"
TAGS = "suites/test_revision_tags.py::test_revision_tag_maps_to_intended_revision"
NAMESPACE_TAGS = "suites/test_revision_tags.py::test_every_namespace_label_names_an_existing_tag_or_revision"
WEBHOOKS = "suites/test_webhooks.py::test_injector_webhooks_point_at_existing_services"
WEBHOOK_REVISIONS = "suites/test_webhooks.py::test_webhooks_call_their_own_revisions_istiod"
DEFAULT_VALIDATOR = "suites/test_webhooks.py::test_one_default_validator_calls_the_default_tags_revision"
INJECTION = "suites/test_injection.py::test_workloads_injected_by_intended_revision"
XDS = "suites/test_xds_push.py::test_config_pushed_only_by_own_istiod"
GATEWAY = "suites/test_gateway_traffic.py::test_gateway_serves_bookinfo_and_samples"
UNROUTED = "suites/test_gateway_traffic.py::test_unrouted_host_gets_404"
WEIGHTED = "suites/test_weighted_routing.py::test_reviews_weighted_split"
DISCOVERY = "suites/test_discovery_address.py::test_proxies_talk_to_own_istiod"
UPGRADE = "suites/test_canary_upgrade.py::test_canary_upgrade_and_rollback"
ANALYZE = "suites/test_analyze.py::test_analyze_reports_no_errors"
EGRESS = "suites/test_egress.py::test_egress_through_egress_gateway"
REAPPLY = "suites/test_reapply.py::test_reapplied_mesh_config_takes_effect"
UNINSTALL = "suites/test_uninstall.py::test_uninstall_one_revision_keeps_the_other"
DEFAULT_TAG_INJECTION = "suites/test_revision_tags.py::test_istio_injection_enabled_follows_the_default_tag"
UNLABELLED_VALIDATED = "suites/test_webhooks.py::test_config_without_revision_label_is_validated"
PURGE = "suites/test_uninstall.py::test_purge_leaves_nothing"
GATEWAY_API_OWNER = "suites/test_gateway_api.py::test_gateway_api_gateway_is_deployed_by_its_owner_alone"
GATEWAY_API_STATUS = "suites/test_gateway_api.py::test_gateway_api_status_is_written_by_its_owner"
GATEWAY_API_ROUTES = "suites/test_gateway_api.py::test_gateway_api_gateway_serves_its_own_routes"
GATEWAY_API_WEIGHTED = "suites/test_gateway_api.py::test_gateway_api_weighted_backend_refs"
GATEWAY_API_MOVE = "suites/test_gateway_api.py::test_gateway_api_gateway_follows_its_tag_under_traffic"
GATEWAY_API_PUSH = "suites/test_gateway_api.py::test_gateway_api_route_is_pushed_by_its_own_istiod_alone"
GATEWAY_API_UNLABELLED = "suites/test_gateway_api.py::test_gateway_api_unlabelled_gateway_follows_the_default_tag"


def both(test: str) -> list[str]:
    return [f"{test}[stable", f"{test}[canary"]


@fault("tag-webhook-wrong-namespace",
       "Every tag webhook made by `istioctl tag set` calls istiod in istio-system (as when -i is left out) "
       "although the revision runs elsewhere, so pod creation under the tag fails.",
       # No app pod can be created, so nothing behind the gateways answers and no proxy exists to ask; and
       # Bookinfo's DestinationRule subsets then select no pod, which `istioctl analyze` reports (IST0173).
       must_fail=[WEBHOOKS, WEBHOOK_REVISIONS, *both(INJECTION), *both(GATEWAY), *both(WEIGHTED), *both(DISCOVERY),
                  UPGRADE, *both(EGRESS), REAPPLY, UNINSTALL, *both(ANALYZE)],
       must_fail_when={"gateway-api-v1": [*both(GATEWAY_API_ROUTES), *both(GATEWAY_API_WEIGHTED), GATEWAY_API_MOVE]})
def _tag_webhook_wrong_namespace(hooks: Hooks) -> None:
    def point_elsewhere(webhook: dict, *, istio_namespace: str, **_: Any) -> dict:
        wrong = "istio-system" if istio_namespace != "istio-system" else "istio-missing"
        for entry in webhook.get("webhooks", []):
            entry["clientConfig"]["service"]["namespace"] = wrong
        return webhook
    hooks.add("tag_webhook", point_elsewhere)


@fault("tag-webhook-left-behind",
       "A second MutatingWebhookConfiguration for the canary tag, as `istioctl tag set --overwrite` with another -i "
       "leaves the first one behind (its name carries the -i namespace); both call the revision's own istiod.",
       must_fail=[WEBHOOKS])
def _tag_webhook_left_behind(hooks: Hooks) -> None:
    def leave_one_behind(objects: list, *, install_order: int, **_: Any) -> list:
        if install_order != 2:
            return objects
        copies = []
        for obj in objects:
            if obj["kind"] == "MutatingWebhookConfiguration":
                old = copy.deepcopy(obj)
                old["metadata"]["name"] = f"{obj['metadata']['name']}-before-overwrite"
                copies.append(old)
        return [*objects, *copies]
    hooks.add("tag_objects", leave_one_behind)


@fault("namespace-labelled-for-missing-tag",
       "Someone's namespace is labelled istio.io/rev=retired, a tag that no longer exists (removed, or never set), "
       "so no webhook injects its new pods.",
       must_fail=[NAMESPACE_TAGS])
def _namespace_labelled_for_missing_tag(hooks: Hooks) -> None:
    def add_orphan(objects: list, *, install_order: int, **_: Any) -> list:
        if install_order != 2:
            return objects
        return [*objects, {"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": "left-on-a-retired-tag", "labels": {"istio.io/rev": "retired"}}}]
    hooks.add("tag_objects", add_orphan)


@fault("injection-label-conflict",
       "Every namespace labelled istio.io/rev also keeps istio-injection=enabled, which wins and sends its pods "
       "to the default revision.",
       # The canary namespace's pods get the stable (default) revision, whose istiod does not see the canary
       # namespace's routing; and the upgrade cannot move a namespace whose legacy label overrides the tag.
       must_fail=[*both(INJECTION), f"{DISCOVERY}[canary]", f"{WEIGHTED}[canary", UPGRADE, f"{EGRESS}[canary]",
                  REAPPLY])
def _injection_label_conflict(hooks: Hooks) -> None:
    def keep_legacy_label(labels: dict, **_: Any) -> dict:
        return {**labels, "istio-injection": "enabled"} if "istio.io/rev" in labels else labels
    hooks.add("namespace_labels", keep_legacy_label)


@fault("proxy-version-skew",
       "The injector stamps a proxy image one patch release away from its control plane's version.",
       # The uninstall test also judges a pod created after the canary's removal, and it too runs the skewed proxy.
       must_fail=[*both(INJECTION), UPGRADE, UNINSTALL])
def _proxy_version_skew(hooks: Hooks) -> None:
    def skew(image: str, *, version: IstioVersion, **_: Any) -> str:
        other = version.patch - 1 if version.patch > 0 else version.patch + 1
        return image.rsplit(":", 1)[0] + f":{version.major}.{version.minor}.{other}"
    hooks.add("proxy_image", skew)


@fault("digest-pinned-proxy-of-other-version",
       "The injector pins the proxy image by digest (no tag names a version), and the proxy behind it reports a "
       "version one patch release away from its control plane's.",
       # Judged by what the proxy itself reports (`pilot-agent version --short`), wherever a pod is judged.
       must_fail=[*both(INJECTION), UPGRADE, UNINSTALL])
def _digest_pinned_proxy_of_other_version(hooks: Hooks) -> None:
    def by_digest(image: str, *, version: IstioVersion, **_: Any) -> str:
        return image.rsplit(":", 1)[0] + "@sha256:" + hashlib.sha256(f"proxyv2 {version}".encode()).hexdigest()

    def skewed(reported: str, **_: Any) -> str:
        version = IstioVersion.parse(reported)
        other = version.patch - 1 if version.patch > 0 else version.patch + 1
        return f"{version.major}.{version.minor}.{other}"
    hooks.add("proxy_image", by_digest)
    hooks.add("proxy_version", skewed)


@fault("istiod-never-ready",
       "The canary revision's istiod pods never become ready: its install times out and its injector cannot be "
       "called.",
       must_fail=[f"{CONTROL_PLANE}[canary]", f"{INJECTION}[canary]", f"{GATEWAY}[canary]", f"{WEIGHTED}[canary",
                  f"{DISCOVERY}[canary]", UPGRADE, f"{EGRESS}[canary]", REAPPLY],
       # The canary's Gateway API gateway gets no config, and the stable Gateway moved onto it serves nothing.
       must_fail_when={"gateway-api-v1": [f"{GATEWAY_API_ROUTES}[canary]", f"{GATEWAY_API_WEIGHTED}[canary]",
                                          GATEWAY_API_MOVE]})
def _istiod_never_ready(hooks: Hooks) -> None:
    hooks.add("istiod_ready", lambda ready, *, install_order, **_: ready and install_order != 2)


@fault("validator-webhook-missing",
       "`istioctl install` creates no ValidatingWebhookConfiguration for either revision.",
       # The uninstall test also judges the stable control plane whole after the canary's removal.
       must_fail=[*both(CONTROL_PLANE), UNINSTALL])
def _validator_missing(hooks: Hooks) -> None:
    def drop_validator(objects: list, **_: Any) -> list:
        return [o for o in objects if not (o["kind"] == "ValidatingWebhookConfiguration"
                                           and o["metadata"]["name"].startswith("istio-validator-"))]
    hooks.add("install_objects", drop_validator)


@fault("tag-points-at-other-revision",
       "`istioctl tag set` for the canary revision makes the tag reference the stable revision instead.",
       # The tag's webhook calls istiod-<stable> in the canary's namespace (-i), where it does not run.
       must_fail=[f"{TAGS}[canary]", WEBHOOKS, WEBHOOK_REVISIONS, f"{INJECTION}[canary]", f"{GATEWAY}[canary]",
                  f"{WEIGHTED}[canary", f"{DISCOVERY}[canary]", UPGRADE, f"{EGRESS}[canary]", REAPPLY],
       # The canary's Gateway, labelled with the tag, is the stable revision's then.
       must_fail_when={"gateway-api-v1": [f"{GATEWAY_API_OWNER}[canary]", f"{GATEWAY_API_STATUS}[canary]",
                                          f"{GATEWAY_API_ROUTES}[canary]", f"{GATEWAY_API_WEIGHTED}[canary]",
                                          GATEWAY_API_MOVE]})
def _tag_points_elsewhere(hooks: Hooks) -> None:
    def first_revision(revision: str, *, install_order: int, revisions: list[str], **_: Any) -> str:
        return revisions[0] if install_order == 2 and revisions else revision
    hooks.add("tag_revision", first_revision)


@fault("validator-calls-other-istiod",
       "The canary revision's ValidatingWebhookConfiguration calls the stable revision's istiod Service (a Service "
       "that exists; in the shared layout in the same namespace), so the stable control plane validates the canary's "
       "config.",
       must_fail=[WEBHOOK_REVISIONS])
def _validator_calls_other_istiod(hooks: Hooks) -> None:
    def call_first(objects: list, *, install_order: int, istiods: dict[int, tuple[str, str]], **_: Any) -> list:
        if install_order != 2 or 1 not in istiods:
            return objects
        name, namespace = istiods[1]
        for obj in objects:
            validator = obj["kind"] == "ValidatingWebhookConfiguration" and obj["metadata"]["name"].startswith(
                "istio-validator-")
            if validator:
                for entry in obj.get("webhooks", []):
                    entry["clientConfig"]["service"].update(name=name, namespace=namespace)
        return objects
    hooks.add("install_objects", call_first)


@fault("second-default-validator",
       "The canary's install leaves a second webhook configuration that validates Istio config without a revision "
       "label, calling the canary istiod, as a previous default revision's validator left active does (istio/istio "
       "PR #61669): that config is validated twice, by two control planes, while the default tag names the stable.",
       must_fail=[DEFAULT_VALIDATOR])
def _second_default_validator(hooks: Hooks) -> None:
    def add_second(objects: list, *, install_order: int, **_: Any) -> list:
        if install_order != 2:
            return objects
        own = next((o for o in objects if o["kind"] == "ValidatingWebhookConfiguration"
                    and o["metadata"]["name"].startswith("istio-validator-")), None)
        if own is None:
            return objects
        second = copy.deepcopy(own)
        second["metadata"]["name"] = f"{own['metadata']['name']}-default"
        for entry in second.get("webhooks", []):
            entry["objectSelector"] = {"matchExpressions": [{"key": "istio.io/rev", "operator": "DoesNotExist"}]}
        return [*objects, second]
    hooks.add("install_objects", add_second)


@fault("default-tag-skips-istio-injection",
       "The `default` tag's webhook the first install makes lacks its entry for namespaces labelled "
       "istio-injection=enabled (namespace.sidecar-injector.istio.io), as a hand-edited one would: pods there get no "
       "sidecar, while every namespace labelled istio.io/rev is still injected.",
       # The uninstall test asks the same question again once a revision is gone.
       must_fail=[DEFAULT_TAG_INJECTION, UNINSTALL])
def _default_tag_skips_istio_injection(hooks: Hooks) -> None:
    def drop_entry(objects: list, **_: Any) -> list:
        for obj in objects:
            if obj["kind"] == "MutatingWebhookConfiguration" \
                    and (obj["metadata"].get("labels") or {}).get("istio.io/tag") == "default":
                obj["webhooks"] = [w for w in obj.get("webhooks", [])
                                   if w["name"] != "namespace.sidecar-injector.istio.io"]
        return objects
    hooks.add("install_objects", drop_entry)


@fault("default-validator-misses-networking",
       "The default validator's rules leave out networking.istio.io, as a hand-narrowed one would: it still calls the "
       "default tag's istiod, but a VirtualService or DestinationRule that names no revision is never validated.",
       # The uninstall test asks the same question again once a revision is gone.
       must_fail=[UNLABELLED_VALIDATED, UNINSTALL])
def _default_validator_misses_networking(hooks: Hooks) -> None:
    def narrow(objects: list, **_: Any) -> list:
        for obj in objects:
            if obj["kind"] == "ValidatingWebhookConfiguration" \
                    and obj["metadata"]["name"] == "istiod-default-validator":
                for entry in obj.get("webhooks", []):
                    entry["rules"] = [{"apiGroups": ["security.istio.io"], "apiVersions": ["*"],
                                       "operations": ["CREATE", "UPDATE"], "resources": ["*"]}]
        return objects
    hooks.add("install_objects", narrow)


@fault("tag-webhook-object-entry-calls-other-istiod",
       "The canary tag webhook's object-selector entry (pods labelled istio.io/rev=<tag> in namespaces without the "
       "label) calls the stable revision's istiod Service, as a hand-patched webhook would: such pods are injected by "
       "the wrong control plane, while every pod of the suite's labelled namespaces is still injected correctly.",
       must_fail=[WEBHOOK_REVISIONS])
def _tag_object_entry_calls_other_istiod(hooks: Hooks) -> None:
    def call_first(webhook: dict, *, install_order: int, istiods: dict[int, tuple[str, str]], **_: Any) -> dict:
        if install_order != 2 or 1 not in istiods:
            return webhook
        name, namespace = istiods[1]
        for entry in webhook.get("webhooks", []):
            if entry["name"].startswith("rev.object."):
                entry["clientConfig"]["service"].update(name=name, namespace=namespace)
        return webhook
    hooks.add("tag_webhook", call_first)


# -- scenario faults (each fails its own check) ---------------------------------------------------------
@fault("other-istiod-pushes",
       "Both istiods push every config change, as if discoverySelectors did not isolate the control planes.",
       must_fail=both(XDS), must_fail_when={"gateway-api-v1": both(GATEWAY_API_PUSH)})
def _other_istiod_pushes(hooks: Hooks) -> None:
    hooks.add("push_targets", lambda targets, *, revisions, **_: list(revisions))


@fault("no-push-logged", "istiod applies config changes but logs no `Push debounce` line for them.",
       must_fail=both(XDS), must_fail_when={"gateway-api-v1": both(GATEWAY_API_PUSH)})
def _no_push_logged(hooks: Hooks) -> None:
    hooks.add("push_targets", lambda targets, **_: [])


def _leak_kind(kind: str) -> Callable[[Hooks], None]:
    """The stable (first) istiod also pushes config of one kind that only the canary's istiod should see."""
    def install(hooks: Hooks) -> None:
        def also_first(targets: list[str], *, key: str, revisions: list[str], **_: Any) -> list[str]:
            if key.startswith(f"{kind}/") and targets and revisions and revisions[0] not in targets:
                return [*targets, revisions[0]]
            return targets
        hooks.add("push_targets", also_first)
    return install


for _kind, _plural in (("DestinationRule", "destinationrules"), ("Gateway", "gateways"),
                       ("ServiceEntry", "serviceentries")):
    fault(f"stable-istiod-pushes-canary-{_plural}",
          f"The stable istiod also reads and pushes the canary's {_kind}s (discoverySelectors and the istio.io/rev "
          f"filter leak for that kind only), while every other kind stays isolated.",
          must_fail=[f"{XDS}[canary-{_kind}]"])(_leak_kind(_kind))


@fault("gateway-selects-nothing",
       "The canary's samples Gateway selects no gateway pods, so its nginx/echo routes are never served.",
       must_fail=[f"{GATEWAY}[canary]"])
def _gateway_selects_nothing(hooks: Hooks) -> None:
    def no_pods(selector: dict, *, gateway: str, install_order: int, **_: Any) -> dict:
        return {**selector, "istio": "no-such-gateway"} if gateway == "samples-gateway" and install_order == 2 \
            else selector
    hooks.add("gateway_selector", no_pods)


@fault("gateway-port-mismatch",
       "The canary's samples Gateway declares server port 9090, which no gateway Service port or listener uses.",
       must_fail=[f"{GATEWAY}[canary]"])
def _gateway_port_mismatch(hooks: Hooks) -> None:
    def wrong_port(number: int, *, gateway: str, install_order: int, **_: Any) -> int:
        return 9090 if gateway == "samples-gateway" and install_order == 2 else number
    hooks.add("gateway_server_port", wrong_port)


@fault("gateway-503", "The canary ingress gateway answers every routed request with 503 no healthy upstream.",
       must_fail=[f"{GATEWAY}[canary]", f"{WEIGHTED}[canary"],
       must_fail_when={"gateway-api-v1": [f"{GATEWAY_API_ROUTES}[canary]", f"{GATEWAY_API_WEIGHTED}[canary]",
                                          GATEWAY_API_MOVE]})
def _gateway_503(hooks: Hooks) -> None:
    from multirev.backends.base import HttpResponse

    def unavailable(response: Any, *, install_order: int, **_: Any) -> Any:
        routed = response.status != 404
        return HttpResponse(503, {"server": "istio-envoy"}, "no healthy upstream") if install_order == 2 and routed \
            else response
    hooks.add("gateway_response", unavailable)


@fault("weights-ignored", "Routes split evenly across their destinations, whatever the weights say.",
       must_fail=[f"{WEIGHTED}[stable-50-10-40]", f"{WEIGHTED}[canary-50-10-40]"])
def _weights_ignored(hooks: Hooks) -> None:
    hooks.add("route_weights", lambda weights, **_: [1] * len(weights))


@fault("weights-skewed", "Three-way splits move 10 points from the first destination to the second.",
       must_fail=[f"{WEIGHTED}[stable-50-10-40]", f"{WEIGHTED}[canary-50-10-40]"])
def _weights_skewed(hooks: Hooks) -> None:
    def skew(weights: list[int], **_: Any) -> list[int]:
        if len(weights) != 3:
            return weights
        total = sum(weights) or 1
        step = total // 10
        return [weights[0] - step, weights[1] + step, weights[2]]
    hooks.add("route_weights", skew)


@fault("requests-fail-during-rollout",
       "In-mesh requests fail (503) one time in ten while a namespace's deployments are rolling out.",
       must_fail=[UPGRADE])
def _requests_fail_during_rollout(hooks: Hooks) -> None:
    from multirev.backends.base import HttpResponse
    counter = {"n": 0}

    def flaky(response: Any, *, rollout_in_progress: bool, **_: Any) -> Any:
        if not rollout_in_progress:
            return response
        counter["n"] += 1
        return HttpResponse(503, {"server": "istio-envoy"}, "upstream connect error") if counter["n"] % 10 == 0 \
            else response
    hooks.add("mesh_response", flaky)


@fault("stale-discovery-after-restart",
       "Pods restarted onto the canary revision keep talking to the stable istiod.",
       must_fail=[UPGRADE])
def _stale_discovery(hooks: Hooks) -> None:
    def stale(address: str, *, install_order: int, restarted: bool, addresses: dict[int, str], **_: Any) -> str:
        return addresses.get(1, address) if restarted and install_order == 2 else address
    hooks.add("proxy_discovery_address", stale)


@fault("tag-webhook-unlabelled",
       "Tag webhooks lose their istio.io/tag label (as a label-stripping policy would do): injection still works, "
       "but `istioctl tag list` no longer shows the tags, and from 1.21 `tag remove` cannot find them, so "
       "uninstalling leaves them behind.",
       # An istiod knows its tags by that label (pkg/revisions/tag_watcher.go), so none takes a Gateway labelled
       # with a tag.
       must_fail=both(TAGS), must_fail_when={"tag-strips-operator-labels": [UNINSTALL, PURGE],
                                             "gateway-api-v1": [*both(GATEWAY_API_OWNER), *both(GATEWAY_API_STATUS),
                                                                *both(GATEWAY_API_ROUTES), *both(GATEWAY_API_WEIGHTED),
                                                                GATEWAY_API_MOVE]})
def _tag_webhook_unlabelled(hooks: Hooks) -> None:
    def strip(webhook: dict, **_: Any) -> dict:
        webhook["metadata"]["labels"].pop("istio.io/tag", None)
        return webhook
    hooks.add("tag_webhook", strip)


@fault("catch-all-route", "A stray catch-all route makes both gateways answer 200 for hosts nothing should route.",
       must_fail=both(UNROUTED), must_fail_when={"gateway-api-v1": both(GATEWAY_API_ROUTES)})
def _catch_all(hooks: Hooks) -> None:
    from multirev.backends.base import HttpResponse

    def catch_all(response: Any, **_: Any) -> Any:
        return HttpResponse(200, {"server": "istio-envoy"}, "catch-all") if response.status == 404 else response
    hooks.add("gateway_response", catch_all)


@fault("canary-samples-leak-into-stable-gateway",
       "The stable gateway also serves the canary's samples Gateway and VirtualService, as when the stable istiod "
       "reads the canary's namespace and the Gateway's selector names no revision: `/echo` with the canary's samples "
       "Host is routed there instead of getting 404 (and answers 503, without the canary's DestinationRule subset).",
       # A request for a Host nothing routes still gets 404 (it lands in Bookinfo's "*" virtual host): only the
       # canary's own host and path show the leak. The stable gateway's own routes are unchanged.
       must_fail=[f"{UNROUTED}[stable]"])
def _canary_samples_leak(hooks: Hooks) -> None:
    leaked = {"Gateway": "samples-gateway", "VirtualService": "samples"}  # manifests/sample-apps/nginx-echo.yaml

    def also_canarys(objects: list, *, install_order: int, kind: str, unseen: list, **_: Any) -> list:
        if install_order != 1:
            return objects
        extra = [copy.deepcopy(o) for o in unseen if o["metadata"]["name"] == leaked.get(kind)]
        for gateway in (o for o in extra if kind == "Gateway"):
            gateway["spec"]["selector"] = {k: v for k, v in gateway["spec"]["selector"].items() if k != "istio.io/rev"}
        return [*objects, *extra]
    hooks.add("gateway_config", also_canarys)


@fault("dangling-gateway-reference",
       "The in-mesh echo VirtualService also names a gateway that does not exist (istioctl analyze IST0101).",
       must_fail=both(ANALYZE))
def _dangling_gateway(hooks: Hooks) -> None:
    def dangle(obj: dict, **_: Any) -> dict:
        if obj["kind"] == "VirtualService" and obj["metadata"]["name"] == "echo-sample-mesh":
            obj["spec"]["gateways"] = ["mesh", "missing-gateway"]
        return obj
    hooks.add("istio_config", dangle)


@fault("egress-bypasses-gateway",
       "The egress VirtualService loses its mesh route, so sidecars send external traffic straight out.",
       must_fail=both(EGRESS))
def _egress_bypass(hooks: Hooks) -> None:
    def bypass(obj: dict, **_: Any) -> dict:
        if obj["kind"] == "VirtualService" and obj["metadata"]["name"] == "external-via-egress":
            obj["spec"]["gateways"] = [g for g in obj["spec"].get("gateways", []) if g != "mesh"]
            obj["spec"]["http"] = [r for r in obj["spec"].get("http", [])
                                   if not any("mesh" in (m.get("gateways") or []) for m in r.get("match") or [])]
        return obj
    hooks.add("istio_config", bypass)


@fault("registry-allows-any", "istiod runs with outboundTrafficPolicy ALLOW_ANY whatever meshConfig says.",
       must_fail=both(EGRESS))
def _allow_any(hooks: Hooks) -> None:
    hooks.add("mesh_config", lambda config, **_: {**config, "outboundTrafficPolicy": {"mode": "ALLOW_ANY"}})


@fault("mesh-config-not-reapplied",
       "Re-running `istioctl install -f` keeps the revision's previous meshConfig.",
       must_fail=[REAPPLY])
def _not_reapplied(hooks: Hooks) -> None:
    hooks.add("mesh_config", lambda config, *, previous, **_: previous if previous is not None else config)


@fault("uninstall-leaves-cluster-scoped",
       "`istioctl uninstall --revision` leaves the revision's cluster-scoped objects (webhooks, cluster roles).",
       must_fail=[UNINSTALL])
def _leaves_cluster_scoped(hooks: Hooks) -> None:
    def namespaced_only(doomed: list, *, mode: str, **_: Any) -> list:
        return [o for o in doomed if o["metadata"].get("namespace")] if mode == "revision" else doomed
    hooks.add("uninstall_targets", namespaced_only)


@fault("uninstall-breaks-other",
       "`istioctl uninstall --revision` also deletes the other revision's ingress gateway.",
       must_fail=[UNINSTALL])
def _breaks_other(hooks: Hooks) -> None:
    def and_the_gateways(doomed: list, *, mode: str, revision: str, all_objects: list, **_: Any) -> list:
        if mode != "revision":
            return doomed
        gateways = [o for o in all_objects if o["kind"] == "Deployment"
                    and (o["metadata"].get("labels") or {}).get("operator.istio.io/component") == "IngressGateways"]
        return doomed + gateways
    hooks.add("uninstall_targets", and_the_gateways)


def _uninstall_also(select: Callable[[dict, str], bool]) -> Callable[[Hooks], None]:
    """`uninstall --revision` also deletes the objects of all_objects that `select(obj, revision)` picks."""
    def install(hooks: Hooks) -> None:
        def more(doomed: list, *, mode: str, revision: str, all_objects: list, **_: Any) -> list:
            if mode != "revision":
                return doomed
            chosen = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in doomed}
            return doomed + [o for o in all_objects if select(o, revision)
                             and (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) not in chosen]
        hooks.add("uninstall_targets", more)
    return install


def _labels(obj: dict) -> dict:
    return obj["metadata"].get("labels") or {}


@fault("uninstall-prunes-base",
       "`istioctl uninstall --revision` also prunes Base: the CRDs carry the revision of the last install (the "
       "canary's), so they go, and the API server deletes every Istio config object with them.",
       must_fail=[UNINSTALL])
def _prunes_base(hooks: Hooks) -> None:
    _uninstall_also(lambda o, revision: o["kind"] == "CustomResourceDefinition"
                    and _labels(o).get("istio.io/rev") == revision)(hooks)


@fault("uninstall-removes-other-configmaps",
       "`istioctl uninstall --revision` also deletes the other revision's ConfigMaps (mesh config, injector "
       "templates), selecting ConfigMaps by component alone.",
       must_fail=[UNINSTALL])
def _removes_configmaps(hooks: Hooks) -> None:
    _uninstall_also(lambda o, revision: o["kind"] == "ConfigMap"
                    and _labels(o).get("operator.istio.io/component") == "Pilot")(hooks)


@fault("uninstall-removes-other-service",
       "`istioctl uninstall --revision` also deletes the other revision's istiod Service (selected by app=istiod), so "
       "its webhooks call a Service that is gone and new pods in its namespaces cannot be created.",
       must_fail=[UNINSTALL])
def _removes_service(hooks: Hooks) -> None:
    _uninstall_also(lambda o, revision: o["kind"] == "Service" and _labels(o).get("app") == "istiod"
                    and "istio.io/tag" not in _labels(o))(hooks)


@fault("uninstall-removes-other-tags",
       "`istioctl uninstall --revision` also removes every revision tag's webhook (selected by istio.io/tag), so the "
       "other revision's tags are gone and new pods in its namespaces are not injected.",
       must_fail=[UNINSTALL])
def _removes_tags(hooks: Hooks) -> None:
    _uninstall_also(lambda o, revision: o["kind"] == "MutatingWebhookConfiguration"
                    and "istio.io/tag" in _labels(o))(hooks)


@fault("uninstall-unlabels-other-namespaces",
       "`istioctl uninstall --revision` also strips istio.io/rev from every namespace, not only those of the removed "
       "revision: the other control plane is intact, but new pods in its app namespaces are no longer injected.",
       must_fail=[UNINSTALL])
def _unlabels_namespaces(hooks: Hooks) -> None:
    def strip(labels: dict, *, mode: str, **_: Any) -> dict:
        return {k: v for k, v in labels.items() if k != "istio.io/rev"} if mode == "revision" else labels
    hooks.add("uninstall_namespace_labels", strip)


@fault("purge-leaves-crds", "`istioctl uninstall --purge` leaves Istio's CRDs behind.", must_fail=[PURGE])
def _purge_leaves_crds(hooks: Hooks) -> None:
    def keep_crds(doomed: list, *, mode: str, **_: Any) -> list:
        return [o for o in doomed if o["kind"] != "CustomResourceDefinition"] if mode == "purge" else doomed
    hooks.add("uninstall_targets", keep_crds)


@fault("dns-capture-off",
       "Injected proxies do not capture DNS (meshConfig.defaultConfig.proxyMetadata lost ISTIO_META_DNS_CAPTURE), so "
       "a host only a ServiceEntry knows does not resolve.",
       must_fail=both(EGRESS))
def _dns_capture_off(hooks: Hooks) -> None:
    hooks.add("proxy_metadata", lambda metadata, **_: {k: v for k, v in metadata.items()
                                                        if k != "ISTIO_META_DNS_CAPTURE"})


@fault("trust-roots-differ",
       "The canary control plane signs with a root of its own (e.g. its `cacerts` made from another root), so its "
       "workloads and the stable ones cannot complete mTLS.",
       # The stable Gateway moved onto the canary's proxy cannot reach the stable productpage either.
       must_fail=[UPGRADE], must_fail_when={"gateway-api-v1": [GATEWAY_API_MOVE]})
def _trust_roots_differ(hooks: Hooks) -> None:
    other = trust.self_signed_root("unrelated root CA")

    hooks.add("ca_root", lambda root, *, install_order, **_: other if install_order == 2 else root)


@fault("productpage-cannot-reach-its-backends",
       "productpage's calls to details and reviews fail (503), as with a Sidecar that lets its proxy reach only "
       "istiod's namespace: the page still renders, with an error where each backend's part belongs.",
       must_fail=[GATEWAY, WEIGHTED, UNINSTALL], must_fail_when={"gateway-api-v1": [GATEWAY_API_ROUTES]})
def _productpage_cannot_reach_its_backends(hooks: Hooks) -> None:
    from multirev.backends.base import HttpResponse

    def refused(response: Any, *, source_app: str, url: str, **_: Any) -> Any:
        if source_app == "productpage" and ("//details" in url or "//reviews" in url):
            return HttpResponse(503, {"server": "envoy"}, "upstream connect error or disconnect/reset before headers")
        return response
    hooks.add("mesh_response", refused)


# -- Gateway API under two revisions (issue 28); the feature runs where the run's minors are built with a v1 module --

@fault("gateway-api-both-deploy", "Every istiod deploys every Gateway of class istio, as if each owned it.",
       # The stable Gateway, rendered last by the canary, is served by the canary's Envoy, which (discoverySelectors)
       # never sees the stable namespace's routes.
       must_fail=[], must_fail_when={"gateway-api-v1": [GATEWAY_API_OWNER, GATEWAY_API_MOVE, GATEWAY_API_UNLABELLED,
                                                         f"{GATEWAY_API_ROUTES}[stable]",
                                                         f"{GATEWAY_API_WEIGHTED}[stable]"]})
def _gateway_api_both_deploy(hooks: Hooks) -> None:
    hooks.add("gateway_api_owners", lambda owners, *, revisions, **_: sorted(
        revisions, key=lambda r: r.install_order) if owners else owners)


@fault("gateway-api-non-owner-writes-status",
       "The istiod that does not own an HTTPRoute writes its status too, as it sees it: no parent of its own.",
       must_fail=[], must_fail_when={"gateway-api-v1": [GATEWAY_API_STATUS]})
def _gateway_api_non_owner_writes_status(hooks: Hooks) -> None:
    hooks.add("gateway_api_foreign_status_writers", lambda writers, *, others, **_: [*writers, *others])


@fault("gateway-api-routes-vanish-after-tag-move",
       "A Gateway API gateway deployed by another revision than the one that first deployed it gets no routes "
       "(istio/istio#56321).",
       must_fail=[], must_fail_when={"gateway-api-v1": [GATEWAY_API_MOVE]})
def _gateway_api_routes_vanish(hooks: Hooks) -> None:
    hooks.add("gateway_api_routes", lambda routes, *, moved, **_: [] if moved else routes)


@fault("gateway-api-hostnames-ignored", "A Gateway API gateway routes by its HTTPRoutes' paths whatever the Host.",
       must_fail=[], must_fail_when={"gateway-api-v1": [GATEWAY_API_ROUTES]})
def _gateway_api_hostnames_ignored(hooks: Hooks) -> None:
    hooks.add("gateway_api_routes", lambda routes, **_: [
        {**route, "spec": {**route["spec"], "hostnames": []}} for route in routes])


@fault("gateway-api-unlabelled-gateway-taken-by-newest",
       "A Gateway that names no revision is taken by the revision installed last, whatever the `default` tag says.",
       must_fail=[], must_fail_when={"gateway-api-v1": [GATEWAY_API_UNLABELLED]})
def _gateway_api_unlabelled_taken_by_newest(hooks: Hooks) -> None:
    def newest(owners: list, *, obj: dict, revisions: list, **_: Any) -> list:
        named = (obj["metadata"].get("labels") or {}).get("istio.io/rev")
        if named or obj.get("kind") != "Gateway" or not revisions:
            return owners
        return [max(revisions, key=lambda r: r.install_order)]
    hooks.add("gateway_api_owners", newest)


@fault("stable-istiod-pushes-canary-httproutes",
       "The stable istiod also pushes the VirtualServices derived from the canary's HTTPRoutes.",
       must_fail=[], must_fail_when={"gateway-api-v1": [f"{GATEWAY_API_PUSH}[canary]"]})
def _stable_pushes_canary_httproutes(hooks: Hooks) -> None:
    def also_first(targets: list[str], *, key: str, revisions: list[str], **_: Any) -> list[str]:
        if "~istio-autogenerated-k8s-gateway~" in key and targets and revisions and revisions[0] not in targets:
            return [*targets, revisions[0]]
        return targets
    hooks.add("push_targets", also_first)


@fault("gateway-api-weights-skewed", "HTTPRoute backendRefs move 10 points from the first backend to the second.",
       must_fail=[], must_fail_when={"gateway-api-v1": [f"{GATEWAY_API_WEIGHTED}[stable]",
                                                         f"{GATEWAY_API_WEIGHTED}[canary]"]})
def _gateway_api_weights_skewed(hooks: Hooks) -> None:
    def skew(weights: list[int], **_: Any) -> list[int]:
        step = (sum(weights) or 1) // 10
        return [weights[0] - step, weights[1] + step, *weights[2:]] if len(weights) >= 2 else weights
    hooks.add("http_route_weights", skew)
