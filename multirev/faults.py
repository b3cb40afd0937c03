"""Named faults of the simulated backend, and the small API for writing more.

A fault breaks one behaviour of the model by attaching functions to its hook points
(multirev/backends/simulated/hooks.py). ``must_fail`` lists the suite node ids (or node-id
prefixes) the fault must make fail; every other conformance test must still pass.

Writing a fault in a plugin file (load it with ``--sim-fault-plugin PATH``)::

    from multirev.faults import fault

    @fault("my-fault", "what it breaks", must_fail=["suites/test_injection.py::"])
    def install(hooks):
        hooks.add("proxy_image", lambda image, **ctx: image + "-broken")
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multirev.backends.simulated.hooks import Hooks
from multirev.errors import UsageError
from multirev.istio.versions import IstioVersion


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    must_fail: tuple[str, ...]
    install: Callable[[Hooks], None]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "must_fail": list(self.must_fail)}


REGISTRY: dict[str, Fault] = {}


def fault(name: str, description: str, *, must_fail: list[str]) -> Callable[[Callable[[Hooks], None]], Callable]:
    def register(install: Callable[[Hooks], None]) -> Callable[[Hooks], None]:
        if name in REGISTRY:
            raise UsageError(f"fault '{name}' is defined twice")
        REGISTRY[name] = Fault(name, description, tuple(must_fail), install)
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
WEBHOOKS = "suites/test_webhooks.py::test_injector_webhooks_point_at_existing_services"
INJECTION = "suites/test_injection.py::test_workloads_injected_by_intended_revision"


@fault("tag-webhook-wrong-namespace",
       "Every tag webhook made by `istioctl tag set` calls istiod in istio-system (as when -i is left out) "
       "although the revision runs elsewhere, so pod creation under the tag fails.",
       must_fail=[WEBHOOKS, f"{INJECTION}[stable]", f"{INJECTION}[canary]"])
def _tag_webhook_wrong_namespace(hooks: Hooks) -> None:
    def point_elsewhere(webhook: dict, *, istio_namespace: str, **_: Any) -> dict:
        wrong = "istio-system" if istio_namespace != "istio-system" else "istio-missing"
        for entry in webhook.get("webhooks", []):
            entry["clientConfig"]["service"]["namespace"] = wrong
        return webhook
    hooks.add("tag_webhook", point_elsewhere)


@fault("injection-label-conflict",
       "Every namespace labelled istio.io/rev also keeps istio-injection=enabled, which wins and sends its pods "
       "to the default revision.",
       must_fail=[f"{INJECTION}[stable]", f"{INJECTION}[canary]"])
def _injection_label_conflict(hooks: Hooks) -> None:
    def keep_legacy_label(labels: dict, **_: Any) -> dict:
        return {**labels, "istio-injection": "enabled"} if "istio.io/rev" in labels else labels
    hooks.add("namespace_labels", keep_legacy_label)


@fault("proxy-version-skew",
       "The injector stamps a proxy image one patch release away from its control plane's version.",
       must_fail=[f"{INJECTION}[stable]", f"{INJECTION}[canary]"])
def _proxy_version_skew(hooks: Hooks) -> None:
    def skew(image: str, *, version: IstioVersion, **_: Any) -> str:
        other = version.patch - 1 if version.patch > 0 else version.patch + 1
        return image.rsplit(":", 1)[0] + f":{version.major}.{version.minor}.{other}"
    hooks.add("proxy_image", skew)


@fault("istiod-never-ready",
       "The canary revision's istiod pods never become ready: its install times out and its injector cannot be "
       "called.",
       must_fail=[f"{CONTROL_PLANE}[canary]", f"{INJECTION}[canary]"])
def _istiod_never_ready(hooks: Hooks) -> None:
    hooks.add("istiod_ready", lambda ready, *, install_order, **_: ready and install_order != 2)


@fault("validator-webhook-missing",
       "`istioctl install` of the canary revision creates no ValidatingWebhookConfiguration.",
       must_fail=[f"{CONTROL_PLANE}[canary]"])
def _validator_missing(hooks: Hooks) -> None:
    def drop_validator(objects: list, *, install_order: int, **_: Any) -> list:
        if install_order != 2:
            return objects
        return [o for o in objects if not (o["kind"] == "ValidatingWebhookConfiguration"
                                           and o["metadata"]["name"].startswith("istio-validator-"))]
    hooks.add("install_objects", drop_validator)


@fault("tag-points-at-other-revision",
       "`istioctl tag set` for the canary revision makes the tag reference the stable revision instead.",
       must_fail=[f"{TAGS}[canary]", WEBHOOKS, f"{INJECTION}[canary]"])
def _tag_points_elsewhere(hooks: Hooks) -> None:
    def first_revision(revision: str, *, install_order: int, revisions: list[str], **_: Any) -> str:
        return revisions[0] if install_order == 2 and revisions else revision
    hooks.add("tag_revision", first_revision)
